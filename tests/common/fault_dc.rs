//! The fault campaign's domain-controller faults (`tests/fault_campaign.rs`): Samba stopped, Samba
//! frozen, a DirSync cookie the DC rejects.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use cloudsync_agent::event::SourceKind;
use cloudsync_agent::journal::{Checkpoint, Journal, JournalOptions};

use crate::common::lab::LabDc;
use crate::fault_report::FaultReport;
use crate::faults::{self, Agent, FakeClock};
use crate::{Campaign, SHOW_WITHIN};

/// The Samba master's pid (its process group: `lab.sh start` runs it under setsid).
fn samba_pgid(dc: &LabDc) -> String {
    std::fs::read_to_string(dc.dir.join("samba.pid"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Lines of the agent's log since `from` that report a failed pass.
fn pass_failures(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("Pass failed"))
        .map(str::to_owned)
        .collect()
}

/// (4) Samba stopped (SIGTERM, as `lab.sh stop`) until the agent has failed a pass, then started
/// again; and Samba frozen (SIGSTOP of its process group) for longer than every timeout the agent
/// has (LDAP connect 3 s, operation 5 s, DRSR 5 s), then SIGCONT.
pub async fn samba(c: &mut Campaign) -> Vec<FaultReport> {
    let mut stop = FaultReport::new(
        "samba-stopped",
        "Samba stopped until the agent failed a pass, then started again",
    );
    let mut changes = c.changes(3).len();
    let from = c.agent.log().len();
    c.dc.stop();
    let down = c
        .agent
        .wait_log(
            from,
            SHOW_WITHIN,
            "a failed pass while Samba is down",
            |l| !pass_failures(l).is_empty(),
        )
        .await;
    stop.check("the agent noticed", down.map(|_| ()));
    c.dc.start_again();
    changes += c.changes(3).len();
    stop.changes = changes;
    stop.detail(
        "agentSaid",
        pass_failures(c.agent.log().get(from..).unwrap_or(""))
            .first()
            .cloned()
            .unwrap_or_default(),
    );
    let said = pass_failures(c.agent.log().get(from..).unwrap_or(""));
    stop.check(
        "the agent's error says the DC is gone",
        if said
            .iter()
            .any(|l| l.contains("was closed") || l.contains("nothing listens"))
        {
            Ok(())
        } else {
            Err(format!("its pass failures say: {said:?}"))
        },
    );
    c.converge(&mut stop).await;
    c.after(&mut stop);

    let freeze_for = Duration::from_secs(
        faults::LDAP_OPERATION_TIMEOUT_SECS
            .max(faults::LDAP_CONNECT_TIMEOUT_SECS)
            .max(faults::PHS_TIMEOUT_SECS)
            + 7,
    );
    let mut freeze = FaultReport::new(
        "samba-frozen",
        format!(
            "Samba's process group SIGSTOPped for {}s (every agent timeout is at most 5 s), then SIGCONT",
            freeze_for.as_secs()
        ),
    );
    let mut changes = c.changes(3).len();
    let pgid = samba_pgid(&c.dc);
    let from = c.agent.log().len();
    let frozen = Instant::now();
    let ok = Command::new("kill")
        .args(["-STOP", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -STOP -{pgid}");
    let noticed = c
        .agent
        .wait_log(
            from,
            freeze_for + SHOW_WITHIN,
            "a failed pass while Samba is frozen",
            |l| !pass_failures(l).is_empty(),
        )
        .await;
    while frozen.elapsed() < freeze_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ok = Command::new("kill")
        .args(["-CONT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -CONT -{pgid}");
    freeze.detail(
        "frozenSeconds",
        (frozen.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    let said = pass_failures(c.agent.log().get(from..).unwrap_or(""));
    freeze.detail("agentSaid", said.first().cloned().unwrap_or_default());
    freeze.check("the agent noticed", noticed.map(|_| ()));
    freeze.check(
        "the agent's error names the timeout",
        if said.iter().any(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("did not answer within the configured timeout")
        }) {
            Ok(())
        } else {
            Err(format!("its pass failures say: {said:?}"))
        },
    );
    changes += c.changes(3).len();
    freeze.changes = changes;
    c.converge(&mut freeze).await;
    c.after(&mut freeze);
    vec![stop, freeze]
}

/// (7) A DirSync cookie the DC rejects: the agent stopped, AD changed, a garbage cookie stored as
/// the domain's checkpoint, the agent started again. It must re-read the domain in full and
/// converge, deletes made while it was down included.
pub async fn cookie_rejected(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "dirsync-cookie-rejected",
        "the agent stopped, AD changed, its DirSync checkpoint replaced by a cookie the DC rejects, the agent started again",
    );
    let status = c.agent.stop();
    r.check(
        "a clean stop",
        match status {
            Some(s) if s.success() => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    r.changes = c.changes(4).len();
    {
        // As the agent does: sled's files must stay private, or the agent refuses to start.
        cloudsync_private_fs::restrict_umask();
        let journal =
            Journal::open(&c.state.path.join("journal"), JournalOptions::default()).unwrap();
        journal
            .append(
                Vec::new(),
                Some(Checkpoint {
                    domain: c.dc.dns_domain.clone(),
                    source: SourceKind::LdapDirSync,
                    // Version byte 1, flags 0, then not an MSDS blob (tests/ldap_feed.rs).
                    data: b"\x01\x00garbage-cookie".to_vec(),
                }),
            )
            .unwrap();
    }
    let from = c.agent.log().len();
    let clock = FakeClock(c.clock.0.clone());
    c.agent = Agent::start(
        &c.state.path.join("agent.toml"),
        &c.state.outside().join("agent.log"),
        &clock,
    );
    let resync = c
        .agent
        .wait_log(
            from,
            SHOW_WITHIN,
            "the rejected cookie and a full resync",
            |l| l.contains("The server rejected the DirSync cookie; starting a full resync."),
        )
        .await;
    r.check("the agent noticed the rejected cookie", resync.map(|_| ()));
    c.converge(&mut r).await;
    // The pass after the rejection read the whole domain (the template alone holds 1,000 users).
    let log = c.agent.log();
    let entries = log
        .get(from..)
        .unwrap_or("")
        .lines()
        .find(|l| l.contains("Pass appended events."))
        .and_then(|l| l.split("entries=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    r.detail("entriesReRead", entries);
    r.check(
        "the agent re-read the domain in full",
        match entries {
            Some(n) if n >= crate::common::lab::TEMPLATE_USERS as u64 => Ok(()),
            other => Err(format!(
                "the pass after the rejection read {other:?} entries"
            )),
        },
    );
    c.after(&mut r);
    vec![r]
}
