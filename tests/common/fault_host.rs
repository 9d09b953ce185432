//! The fault campaign's faults of the agent's host (`tests/fault_campaign.rs`): the journal's disk
//! full (and its busy variant), the wall clock stepped forward and back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fault_report::FaultReport;
use crate::faults::{self, Agent, FakeClock, converge};
use crate::{CONVERGE_WITHIN, Campaign, SHOW_WITHIN, agent_run};

/// (5) The journal's disk full: a ballast file fills the tmpfs holding the agent's state while AD
/// changes. The agent must stop writing, say why, keep running (no exit, no poisoned store), hold
/// the changes back, and once the ballast is gone resume and converge; `journal verify` passes.
pub async fn disk_full(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "journal-disk-full",
        "a ballast file fills the tmpfs (256 MiB) of the agent's state while AD changes; removed after the agent refused twice",
    );
    if let Some(why) = &c.state.not_mounted {
        r.skipped = Some(format!("the agent's state is not on a tmpfs: {why}"));
        return vec![r];
    }
    let mut from = c.agent.log().len();
    // The busy variant (off by default, docs/lab.md § Fault campaign): the disk taken to zero in
    // one step while the agent is writing; the delay is the fault's timing, an input.
    let busy_ms = std::env::var("CLOUDSYNC_FAULT_DISK_BUSY_MS").ok().map(|v| {
        v.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("CLOUDSYNC_FAULT_DISK_BUSY_MS must be a number, not {v:?}"))
    });
    if let Some(ms) = busy_ms {
        r.injected.push_str(&format!(
            "; busy variant: filled {ms} ms after a wave of 6 changes"
        ));
        r.changes += c.changes(6).len();
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let ballast = c.state.fill();
    r.detail("ballastMiB", ballast / (1024 * 1024));
    r.detail("freeBytesWithBallast", c.state.available());
    // One change whose arrival is checked by hand, and the driver's.
    let probe = c.some_user().expect("an in-scope user");
    let title = format!("disk full {}", c.w.next());
    let dn = c.w.slots[probe].dn();
    c.dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: title\ntitle: {title}\n-\n"
    ));
    r.changes += 1 + c.changes(3).len();
    const REFUSED: &str = "The journal cannot take the pass's events now";
    if busy_ms.is_some() {
        // A sled store that met the full disk mid-write stops the agent, saying why; the service
        // manager (Restart=on-failure) starts it again, and so does this test.
        let start = Instant::now();
        while c.agent.exited().is_none()
            && !c.agent.log().get(from..).unwrap_or("").contains(REFUSED)
            && start.elapsed() < SHOW_WITHIN
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if supervise(c, &mut r, from) {
            from = c.agent.log().len();
        }
    }
    let said = c
        .agent
        .wait_log(
            from,
            SHOW_WITHIN,
            "the agent refusing to write twice",
            |l| l.matches(REFUSED).count() >= 2,
        )
        .await;
    let log = c.agent.log();
    let tail = log.get(from..).unwrap_or("");
    r.detail(
        "agentSaid",
        tail.lines()
            .find(|l| l.contains(REFUSED))
            .unwrap_or("")
            .to_owned(),
    );
    r.check("the agent said why it stopped writing", said.map(|_| ()));
    r.check(
        "nothing was poisoned",
        if tail.contains("poisoned") {
            Err(faults::last_lines(tail, 10))
        } else {
            Ok(())
        },
    );
    r.check(
        "the daemon runs while the disk is full",
        c.agent
            .exited()
            .map_or(Ok(()), |s| Err(format!("it exited: {s}"))),
    );
    let upn = c.w.slots[probe].upn.clone();
    let held = c.cloud_title(&upn).await;
    r.check(
        "the change was held back",
        if held.as_deref() == Some(title.as_str()) {
            Err(format!(
                "{upn} has the title set during the full disk already"
            ))
        } else {
            Ok(())
        },
    );
    c.state.empty();
    if busy_ms.is_some() {
        // Converged, with the agent restarted whenever it exits (as its service manager would).
        let start = Instant::now();
        loop {
            let slice = converge(&c.dc, &c.t, &c.w, Duration::from_secs(5)).await;
            if let Ok(took) = slice {
                r.seconds_to_converge = Some(start.elapsed().as_secs_f64().max(took.as_secs_f64()));
                break;
            }
            supervise(c, &mut r, from);
            if start.elapsed() > CONVERGE_WITHIN {
                r.failures.push(slice.unwrap_err());
                break;
            }
        }
    } else {
        c.converge(&mut r).await;
    }
    c.after(&mut r);
    // The journal after the fault: stopped cleanly, verified, started again.
    let status = c.agent.stop();
    r.check(
        "a clean stop after the fault",
        match status {
            Some(s) if s.success() => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let verify = agent_run::agent(
        &[
            "journal",
            "verify",
            c.state.path.join("journal").to_str().unwrap(),
        ],
        &[],
    );
    r.detail("journalVerify", agent_run::text(&verify).trim().to_owned());
    r.check(
        "journal verify passes",
        if verify.status.success() {
            Ok(())
        } else {
            Err(agent_run::text(&verify))
        },
    );
    let clock = FakeClock(c.clock.0.clone());
    c.agent = Agent::start(
        &c.state.path.join("agent.toml"),
        &c.state.outside().join("agent.log"),
        &clock,
    );
    vec![r]
}

/// When the agent has exited: records how (it must be a failure exit, so that `Restart=on-failure`
/// restarts it, and say why) and starts it again, as its service manager would. True if it did.
fn supervise(c: &mut Campaign, r: &mut FaultReport, from: usize) -> bool {
    let Some(status) = c.agent.exited() else {
        return false;
    };
    let log = c.agent.log();
    let reason = log
        .get(from..)
        .unwrap_or("")
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
        .to_owned();
    let n = r.details["restarts"].as_u64().unwrap_or(0) + 1;
    r.detail("restarts", n);
    r.detail(&format!("exit{n}"), format!("{status}: {reason}"));
    r.check(
        "a stop on the full disk is a failure exit that says why",
        if status.success() || reason.is_empty() {
            Err(format!(
                "{status}, {reason:?}: a service manager would not restart it"
            ))
        } else {
            Ok(())
        },
    );
    let clock = FakeClock(c.clock.0.clone());
    c.agent = Agent::start(
        &c.state.path.join("agent.toml"),
        &c.state.outside().join("agent.log"),
        &clock,
    );
    true
}

/// Unix seconds of the agent's last log line (its timestamps come from the stepped clock).
fn last_agent_stamp(log: &str) -> Option<i64> {
    log.lines().rev().find_map(|l| {
        let ts = l.split_whitespace().next()?;
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    })
}

/// Unix seconds of the agent's status file's `generated_at` (its clock when it last wrote it).
fn status_stamp(path: &std::path::Path) -> Option<i64> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let ts = v["generated_at"].as_str().or(v["generatedAt"].as_str())?;
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// (6) The agent's wall clock (only the agent's: the DC and the tenant keep the real one) stepped
/// 2 h forward, then 2 h back (4 h in one step), then to the real time; AD changes at each step.
/// After each: converged, and the lease still the agent's and live.
pub async fn clock_steps(c: &mut Campaign) -> Vec<FaultReport> {
    let mut out = Vec::new();
    for (name, offset) in [
        ("agent-clock-forward-2h", 7200i64),
        ("agent-clock-back-2h", -7200),
    ] {
        let mut r = FaultReport::new(
            name,
            format!(
                "the agent's wall clock stepped to real time {offset:+} s (libfaketime; monotonic clock untouched)"
            ),
        );
        let lease_before = c.lease().await;
        let from = c.agent.log().len();
        c.clock.set(offset);
        // The step took before AD changes: the agent's status file is stamped with its clock.
        let status = c.state.path.join("agent-status.json");
        let start = Instant::now();
        let stepped = loop {
            let seen = status_stamp(&status).map(|s| s - unix_now());
            if seen.is_some_and(|s| (s - offset).abs() < 600) {
                break Ok(());
            }
            if start.elapsed() > SHOW_WITHIN {
                break Err(format!(
                    "the status file's clock is {seen:?} s off real time, not {offset:+}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        r.check("the agent's clock was stepped", stepped);
        r.changes = c.changes(4).len();
        c.converge(&mut r).await;
        let stamped =
            last_agent_stamp(c.agent.log().get(from..).unwrap_or("")).map(|s| s - unix_now());
        r.detail("agentLogClockOffsetSeconds", stamped);
        let lease_after = c.lease().await;
        r.detail("leaseEpochBefore", lease_before.as_ref().map(|l| l.1));
        r.detail("leaseEpochAfter", lease_after.as_ref().map(|l| l.1));
        r.check(
            "the lease is the agent's and live",
            match &lease_after {
                Some((holder, _, true)) if *holder == c.agent_id => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        let tail = c.agent.log().get(from..).unwrap_or("").to_owned();
        let worrying: Vec<&str> = tail
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        r.detail("agentWarnings", worrying.len());
        r.detail("agentFirstWarning", worrying.first().copied().unwrap_or(""));
        c.after(&mut r);
        out.push(r);
    }
    c.clock.set(0);
    out
}
