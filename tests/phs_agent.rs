//! Password hash sync through the real binary (`agent sync-once`) against a lab DC, as the non-admin
//! sync account over MS-DRSR: with `fips.enforce = true` the feed still runs, PHS does not, and the
//! log names the setting that allows it; with `[phs] enabled = true` every seeded user gets a
//! `PasswordHashChanged` event whose OrgId string verifies against the seed's password; no NT hash
//! reaches the journal's files; a password reset in AD gives exactly one new event, for that user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cloudsync_agent::event::Event;
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::phs::OrgIdHash;
use common::lab::{self, LabDc};

fn sync_once(config: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["agent", "sync-once", "--config", config.to_str().unwrap()])
        .env("CLOUDSYNC_LOG", "info")
        .output()
        .unwrap();
    eprintln!(
        "--- sync-once stdout:\n{}--- stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// All events in the journal at `dir` from `from` on (the binary has exited, so it is closed).
fn events(dir: &Path, from: u64) -> Vec<Event> {
    let journal = Journal::open(dir, JournalOptions::default()).unwrap();
    journal.read(from).map(|r| r.unwrap().event).collect()
}

fn hash_events(events: &[Event]) -> Vec<([u8; 16], String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PasswordHashChanged {
                guid, org_id_hash, ..
            } => Some((guid.0, org_id_hash.clone())),
            _ => None,
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sync_once_journals_salted_hashes_follows_resets_and_yields_to_fips() {
    // This process opens the agent's stores too: with the binary's umask, so the files sled creates
    // here are 0600 and the next agent command does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let base = ldap_support::config_toml(&dc, &journal_dir, "");
    let config = dir.path().join("agent.toml");

    // 1. FIPS policy enforced: exit 0, the feed ran, PHS did not, and the log says how to allow it.
    std::fs::write(
        &config,
        format!("{base}\n[fips]\nenforce = true\n\n[phs]\nenabled = true\n"),
    )
    .unwrap();
    let out = sync_once(&config);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warn = stderr
        .lines()
        .find(|l| l.contains("fips.allow_md5_for_password_hash_sync"))
        .unwrap_or_else(|| panic!("no FIPS message in:\n{stderr}"));
    assert!(warn.contains("WARN"), "{warn}");
    let fed = events(&journal_dir, 0);
    assert!(
        fed.iter()
            .filter(|e| matches!(e, Event::ObjectUpserted { .. }))
            .count()
            > lab::TEMPLATE_USERS
    );
    assert!(hash_events(&fed).is_empty());

    // 2. PHS on: one salted string per user, verifying against the seeded password.
    std::fs::write(&config, format!("{base}\n[phs]\nenabled = true\n")).unwrap();
    let out = sync_once(&config);
    assert!(out.status.success());
    let names = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(dc.sam_by_guid());
    let all = events(&journal_dir, 0);
    let hashes = hash_events(&all);
    let mut seeded = 0;
    for (guid, s) in &hashes {
        let Some(sam) = names.get(guid) else { continue };
        if !(sam.starts_with("user") || sam.starts_with("staff")) {
            continue;
        }
        let h: OrgIdHash = s.parse().unwrap();
        assert_eq!((h.iterations(), h.salt().len()), (1000, 10));
        // The full check is slow in a debug build: a sample of 20.
        if seeded < 20 {
            assert!(h.matches(&NtHash::from_password(&lab::seeded_password(sam))));
            assert!(!h.matches(&NtHash::from_password("Init!Pass99999")));
        }
        seeded += 1;
    }
    assert_eq!(seeded, lab::TEMPLATE_USERS + lab::STAFF_USERS);

    // 3. A reset in AD: the next sync-once journals one new string, for that user only.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(7),
        lab::unicode_pwd_base64("Reset!Pass0007")
    ));
    let before = Journal::open(&journal_dir, JournalOptions::default())
        .unwrap()
        .last_seq()
        .unwrap();
    let out = sync_once(&config);
    assert!(out.status.success());
    let delta = hash_events(&events(&journal_dir, before + 1));
    assert_eq!(delta.len(), 1, "{delta:?}");
    assert_eq!(names[&delta[0].0], "user00007");
    let h: OrgIdHash = delta[0].1.parse().unwrap();
    assert!(h.matches(&NtHash::from_password("Reset!Pass0007")));
    assert!(!h.matches(&NtHash::from_password(&lab::seeded_password("user00007"))));

    // DESIGN invariant 4: no NT hash (raw or hex) in any journal file.
    let bytes = common::all_bytes(&journal_dir);
    let mut passwords: Vec<String> = (1..=50)
        .map(|i| lab::seeded_password(&format!("user{i:05}")))
        .collect();
    passwords.push("Reset!Pass0007".into());
    for pw in passwords {
        let nt = NtHash::from_password(&pw);
        assert!(
            !contains(&bytes, nt.expose()),
            "raw NT hash of {pw} on disk"
        );
        assert!(!contains(&bytes, hex::encode(nt.expose()).as_bytes()));
        assert!(!contains(&bytes, hex::encode_upper(nt.expose()).as_bytes()));
    }
}

fn stderr_lines(child: &mut Child) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let Ok(json) = serde_json::from_str(&line) else {
                continue;
            };
            if tx.send(json).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next log record with this message, within `within`.
fn next_record(
    rx: &mpsc::Receiver<serde_json::Value>,
    message: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if v["fields"]["message"] == message => return v,
            Ok(_) => {}
            Err(e) => panic!("no {message:?} within {within:?}: {e}"),
        }
    }
}

/// `agent run` with an interval of an hour: after the first cycle, only the feed's password-change
/// signal can start another one, so a reset that is journaled proves the wiring.
#[test]
fn the_daemon_runs_a_cycle_when_the_feed_sees_a_password_change() {
    // This process opens the agent's stores too: with the binary's umask, so the files sled creates
    // here are 0600 and the next agent command does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let config = dir.path().join("agent.toml");
    let base = ldap_support::config_toml(&dc, &journal_dir, "poll_interval_secs = 3600\n");
    std::fs::write(
        &config,
        format!("{base}\n[phs]\nenabled = true\ninterval_secs = 3600\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args([
            "--log-json",
            "--log",
            "cloudsync=info",
            "agent",
            "run",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let done = "Password hash sync cycle done.";
    // The first cycle and the feed's initial read run side by side; wait for both (either order),
    // so the reset below arrives as a delta of both.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut first, mut fed) = (None, false);
    while first.is_none() || !fed {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = lines
            .recv_timeout(left)
            .expect("first cycle and initial read");
        match v["fields"]["message"].as_str() {
            Some(m) if m == done => first = Some(v),
            Some("Pass appended events.") => fed = true,
            _ => {}
        }
    }
    let first = first.unwrap();
    assert!(
        first["fields"]["hashes"].as_u64().unwrap()
            >= (lab::TEMPLATE_USERS + lab::STAFF_USERS) as u64,
        "{first}"
    );
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(9),
        lab::unicode_pwd_base64("Reset!Pass0009")
    ));
    let second = next_record(&lines, done, Duration::from_secs(60));
    assert_eq!(second["fields"]["hashes"], 1, "{second}");

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");

    // The journal: the feed's PasswordChanged for user00009 comes before its new salted string.
    let all = events(&journal_dir, 0);
    let names = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(dc.sam_by_guid());
    let changed = all
        .iter()
        .position(
            |e| matches!(e, Event::PasswordChanged { guid, .. } if names.get(&guid.0).is_some_and(|n| n == "user00009")),
        )
        .expect("the feed journaled the password change");
    let after = hash_events(&all[changed..]);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(names[&after[0].0], "user00009");
    let h: OrgIdHash = after[0].1.parse().unwrap();
    assert!(h.matches(&NtHash::from_password("Reset!Pass0009")));
}
