//! A tenant's `Watermark` restart makes a running agent re-read AD: against the lab DC and the real
//! tenant, `agent run` receives the restart in a heartbeat, runs its next pass as a full read
//! (`ResyncStarted { reason: Requested }` … `ResyncCompleted`) and acknowledges the restart only then.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync_agent::event::{Event, ResyncReason};
use cloudsync_agent::journal::Journal;
use common::lab::LabDc;
use serde_json::{Value, json};
use tenant_fixture::{HIA, TENANT_ID, TenantFixture};

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(args)
        .env("CLOUDSYNC_ADMIN_PASSWORD", HIA.1)
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap()
}

fn resyncs(journal: &std::path::Path) -> Vec<(u64, Event)> {
    let j = Journal::open_existing(journal).unwrap();
    let events = ldap_support::events_from(&j, 1);
    events
        .into_iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::ResyncStarted { .. } | Event::ResyncCompleted { .. }
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watermark_restart_makes_the_running_agent_re_read_the_domain() {
    // This process opens the journal too: with the binary's umask, so the files sled creates here
    // are 0600 and `agent run` does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("state/journal");
    let config = dir.path().join("agent.toml");
    let toml = format!(
        "{}notifications = false\n[tenant]\nurl = {:?}\nca_file = {:?}\ntenant_id = {TENANT_ID:?}\ncredentials_file = {:?}\n[push]\nheartbeat_interval_secs = 1\nprojection_tick_ms = 100\n",
        ldap_support::config_toml(&dc, &journal, ""),
        t.url,
        t.dir.path().join("ca.pem").display().to_string(),
        dir.path().join("credentials.json").display().to_string(),
    );
    std::fs::write(&config, toml).unwrap();
    let cfg = config.to_str().unwrap();
    let o = cli(&["agent", "register", "--config", cfg, "--admin-upn", HIA.0]);
    assert!(o.status.success(), "{o:?}");
    let o = cli(&["agent", "sync-once", "--config", cfg]);
    assert!(o.status.success(), "{o:?}");
    let before = resyncs(&journal);
    assert!(
        matches!(
            before.as_slice(),
            [
                (
                    _,
                    Event::ResyncStarted {
                        reason: ResyncReason::Initial,
                        ..
                    }
                ),
                (_, Event::ResyncCompleted { .. })
            ]
        ),
        "one initial read: {before:?}"
    );

    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    let id = creds["configurations"][dc.dns_domain.to_ascii_lowercase()]
        .as_str()
        .unwrap()
        .to_owned();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["agent", "run", "--config", cfg])
        .env("CLOUDSYNC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    let admin = t.user_token(HIA).await;
    let r = t
        .client
        .post(t.at(&format!("/api/v1/configurations/{id}/restart")))
        .bearer_auth(&admin)
        .json(&json!({"scopes": ["Watermark"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // The restart stays pending on the tenant until the agent acknowledges it: ask as the agent.
    let token = t
        .client_token(
            creds["clientId"].as_str().unwrap(),
            creds["clientSecret"].as_str().unwrap(),
        )
        .await
        .unwrap();
    let beat = t.at(&format!(
        "/api/v1/agents/{}/heartbeat",
        creds["agentId"].as_str().unwrap()
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer: Value = t
            .client
            .post(&beat)
            .bearer_auth(&token)
            .json(&json!({"version": "test"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["pendingRestarts"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never acknowledged the restart:\n{}",
            std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "agent run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = resyncs(&journal);
    assert_eq!(
        after.len(),
        4,
        "a second read, started and completed: {after:?}"
    );
    assert!(
        matches!(
            &after[2].1,
            Event::ResyncStarted {
                reason: ResyncReason::Requested,
                ..
            }
        ),
        "{after:?}"
    );
    assert!(
        matches!(&after[3].1, Event::ResyncCompleted { .. }),
        "{after:?}"
    );
    let j = Journal::open_existing(&journal).unwrap();
    let reread = ldap_support::events_from(&j, after[2].0 + 1)
        .iter()
        .filter(|(s, e)| *s < after[3].0 && matches!(e, Event::ObjectUpserted { .. }))
        .count();
    assert!(
        reread > 10,
        "the re-read carries the domain's objects again: {reread}"
    );
}
