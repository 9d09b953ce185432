//! The agent binary against the lab DC: SIGKILL during the initial sync loses and duplicates nothing
//! after a restart; `agent run` resumes by itself after Samba restarts and exits 0 on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cloudsync_agent::event::{Attribute, Event};
use cloudsync_agent::journal::{Journal, JournalOptions};
use common::lab::LabDc;
use ldap_support::{bare, config_toml, events_from, guids_by_dn};

fn agent(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
    cmd.args(args);
    cmd
}

fn write_config(dc: &LabDc, dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let journal = dir.join("journal");
    let text = config_toml(dc, &journal, extra).replace(
        "[agent]\n",
        "[agent]\nmemory_budget_kib = 64\nshutdown_grace_secs = 10\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn synced_objects(dc: &LabDc) -> usize {
    dc.search_count(
        "(&(|(objectClass=user)(objectClass=group)(objectClass=contact)(objectClass=organizationalUnit))(!(objectClass=computer)))",
    )
}

#[test]
fn sigkill_during_the_initial_sync_then_restart_keeps_every_object_once() {
    // This process opens the agent's stores too: with the binary's umask, so the files sled creates
    // here are 0600 and the next agent command does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dc, dir.path(), "");
    let config_arg = config.to_str().unwrap();

    // Kill the agent at several points of its initial sync.
    for delay_ms in [30u64, 120, 250, 400] {
        let mut child = agent(&["agent", "sync-once", "--config", config_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // A change made while the agent is down must not be lost.
    let u5 = dc.user_dn(5);
    dc.ldif_admin(&format!(
        "dn: {u5}\nchangetype: modify\nreplace: title\ntitle: After the kill\n"
    ));
    let status = agent(&["agent", "sync-once", "--config", config_arg])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let status = agent(&["agent", "sync-once", "--config", config_arg])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    let events = events_from(&journal, 0);
    let completed = events
        .iter()
        .rposition(|(_, e)| matches!(e, Event::ResyncCompleted { .. }))
        .expect("a completed full read");
    let started = events[..completed]
        .iter()
        .rposition(|(_, e)| matches!(e, Event::ResyncStarted { .. }))
        .unwrap();
    let mut per_guid: HashMap<_, usize> = HashMap::new();
    for (_, e) in &events[started..completed] {
        if let Event::ObjectUpserted {
            guid,
            full_image: true,
            ..
        } = e
        {
            *per_guid.entry(*guid).or_default() += 1;
        }
    }
    assert!(
        per_guid.values().all(|n| *n == 1),
        "an object was read twice in one full read"
    );
    assert_eq!(per_guid.len(), synced_objects(&dc));

    // The title is in the last full read or in a delta after it.
    let guid5 = guids_by_dn(&events)[&u5.to_ascii_lowercase()];
    let title = Attribute::text("title", &["After the kill"]);
    assert!(
        bare(&events[started..]).iter().any(|e| matches!(e,
            Event::ObjectUpserted { guid, attributes, .. } if *guid == guid5 && attributes.contains(&title))),
        "the change made while the agent was down is missing"
    );
}

fn spawn_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no log line containing {needle:?} within {within:?}: {e}"),
        }
    }
}

#[test]
fn the_daemon_resumes_after_a_samba_restart_and_exits_0_on_sigterm() {
    // This process opens the agent's stores too: with the binary's umask, so the files sled creates
    // here are 0600 and the next agent command does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    let mut dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dc, dir.path(), "poll_interval_secs = 1\n");
    let mut child = agent(&[
        "--log-json",
        "--log",
        "cloudsync=debug",
        "agent",
        "run",
        "--config",
        config.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = spawn_lines(&mut child);
    wait_for_line(&lines, "Pass appended events.", Duration::from_secs(60));

    let (u6, u7) = (dc.user_dn(6), dc.user_dn(7));
    dc.ldif_admin(&format!(
        "dn: {u6}\nchangetype: modify\nreplace: title\ntitle: Before\n"
    ));
    wait_for_line(&lines, "Pass appended events.", Duration::from_secs(30));

    dc.restart();
    dc.ldif_admin(&format!(
        "dn: {u7}\nchangetype: modify\nreplace: title\ntitle: After\n"
    ));
    wait_for_line(&lines, "Pass appended events.", Duration::from_secs(90));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
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

    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    let events = events_from(&journal, 0);
    let guids = guids_by_dn(&events);
    for (dn, title) in [(&u6, "Before"), (&u7, "After")] {
        let guid = guids[&dn.to_ascii_lowercase()];
        let want = vec![Attribute::text("title", &[title])];
        assert!(
            bare(&events).iter().any(|e| matches!(e,
                Event::ObjectUpserted { guid: g, attributes, full_image: false, .. } if *g == guid && *attributes == want)),
            "title {title} of {dn} is missing"
        );
    }
}
