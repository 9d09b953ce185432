//! Agent health reaches the tenant and `cloudsync agent status`: deletes staged by the agent's delete
//! threshold show as "Delete threshold exceeded" on the tenant's configuration (through heartbeats of
//! the real binary) and in `agent status` (exit code 2), and clear after `agent allow-deletes` or a
//! `ForceDeletes` restart handed to a running `agent run`.
//!
//! The domain's DC is deliberately unreachable (`ldaps://127.0.0.1:1`): the AD feed fails and retries,
//! while projection, push and heartbeats — what these tests are about — work against the real tenant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cloudsync_agent::projection::store::{ProjectionStore, StagedDelete};
use cloudsync_api::ops::{ObjectKind, Operation};
use serde_json::{Value, json};
use tenant_fixture::{HIA, TENANT_ID, TenantFixture};

const DOMAIN: &str = "corp.example.test";

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(args)
        .env("CLOUDSYNC_ADMIN_PASSWORD", HIA.1)
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An agent configuration with an unreachable DC, registered with the tenant; returns its path.
fn registered_agent(t: &TenantFixture, dir: &Path) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[metrics]
listen = "127.0.0.1:0"
[agent]
journal_dir = "{journal}"
shutdown_grace_secs = 2
[domains.corp]
dns_name = "{DOMAIN}"
url = "ldaps://127.0.0.1:1"
ca_file = "{tca}"
bind_dn = "svc-sync@{DOMAIN}"
password = "unused"
notifications = false
[tenant]
url = "{turl}"
ca_file = "{tca}"
tenant_id = "{TENANT_ID}"
credentials_file = "{creds}"
[push]
heartbeat_interval_secs = 1
projection_tick_ms = 100
"#,
            journal = dir.join("state/journal").display(),
            turl = t.url,
            tca = t.dir.path().join("ca.pem").display(),
            creds = dir.join("credentials.json").display(),
        ),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let o = cli(&["agent", "register", "--config", cfg, "--admin-upn", HIA.0]);
    assert!(o.status.success(), "register: {}", text(&o));
    path
}

fn configuration_id(dir: &Path) -> String {
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.join("credentials.json")).unwrap()).unwrap();
    creds["configurations"][DOMAIN].as_str().unwrap().to_owned()
}

/// Stages `n` user deletes in projection's store, as the runner does when the threshold trips.
fn stage_deletes(dir: &Path, n: u64) {
    let projection = dir.join("state/projection");
    let store = ProjectionStore::open(&projection).unwrap();
    let staged: Vec<StagedDelete> = (1..=n)
        .map(|i| StagedDelete {
            domain: DOMAIN.into(),
            origin_seq: i,
            operation: Operation::Delete {
                kind: ObjectKind::User,
                source_anchor: format!("anchor-{i}"),
                version: i,
            },
        })
        .collect();
    store.stage(&staged).unwrap();
    drop(store);
    // sled releases its lock asynchronously: wait until the next process can take it.
    let db = std::fs::File::open(projection.join("db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.try_lock().is_err() {
        assert!(Instant::now() < deadline, "projection's store stays locked");
        std::thread::sleep(Duration::from_millis(20));
    }
    db.unlock().unwrap();
}

async fn health(t: &TenantFixture, admin: &str, id: &str) -> Value {
    t.get_json(admin, format!("/api/v1/configurations/{id}"))
        .await["health"]
        .clone()
}

/// `agent status --json`: (exit code, report).
fn status(cfg: &str) -> (i32, Value) {
    let o = cli(&["agent", "status", "--config", cfg, "--json"]);
    let code = o.status.code().unwrap();
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status printed no JSON ({e}): {}", text(&o)));
    (code, report)
}

async fn wait_for_health(t: &TenantFixture, admin: &str, id: &str, want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(t, admin, id).await;
        if &h == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "configuration health stayed {h}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_deletes_reach_the_tenant_and_allow_deletes_clears_them() {
    // This process opens the agent's stores too: with the binary's umask, so the files sled creates
    // here are 0600 and the next agent command does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = registered_agent(&t, dir.path());
    let cfg = config.to_str().unwrap();
    let id = configuration_id(dir.path());
    let admin = t.user_token(HIA).await;
    assert_eq!(health(&t, &admin, &id).await, json!({"state": "healthy"}));

    // Nothing staged: status is all well, exit 0.
    let (code, report) = status(cfg);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["source"], "databases");
    assert_eq!(report["domains"][0]["stagedDeletes"], 0);
    assert_eq!(
        report["registration"]["configurations"][DOMAIN],
        id.as_str()
    );

    stage_deletes(dir.path(), 3);
    let (code, report) = status(cfg);
    assert_eq!(code, 2, "staged deletes set exit bit 2: {report:#}");
    assert_eq!(report["domains"][0]["stagedDeletes"], 3);
    assert_eq!(report["domains"][0]["deleteThresholdExceeded"], true);
    let o = cli(&["agent", "status", "--config", cfg]);
    assert!(
        text(&o).contains("Delete threshold exceeded") && text(&o).contains("allow-deletes"),
        "{}",
        text(&o)
    );

    // One sync-once cycle (its AD pass fails: the DC is unreachable) heartbeats with the staged count.
    let o = cli(&[
        "agent",
        "sync-once",
        "--config",
        cfg,
        "--push-timeout-secs",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(1), "the AD pass fails: {}", text(&o));
    assert_eq!(
        health(&t, &admin, &id).await,
        json!({"state": "deleteThresholdExceeded", "deletes": 3})
    );
    let listed = t.get_json(&admin, "/api/v1/configurations").await;
    assert_eq!(
        listed["value"][0]["health"]["state"],
        "deleteThresholdExceeded"
    );
    let page = t.portal_page(HIA, "/").await;
    assert!(
        page.contains("Delete threshold exceeded (3 deletes)"),
        "the portal shows it"
    );

    // The admin releases them locally: pushed, then a heartbeat clears the state on the tenant.
    let o = cli(&["agent", "allow-deletes", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("released 3 staged deletes"),
        "{}",
        text(&o)
    );
    assert_eq!(health(&t, &admin, &id).await, json!({"state": "healthy"}));
    let (code, report) = status(cfg);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        report["push"]["pending"], 0,
        "the released deletes were acknowledged"
    );
}

/// Kills the daemon on drop (SIGTERM first, so it stops the way a service manager stops it).
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_agent_reports_staged_deletes_and_a_force_deletes_restart_releases_them() {
    // This process opens the agent's stores too: with the binary's umask, so the files sled creates
    // here are 0600 and the next agent command does not refuse them (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = registered_agent(&t, dir.path());
    let cfg = config.to_str().unwrap();
    let id = configuration_id(dir.path());
    let admin = t.user_token(HIA).await;
    stage_deletes(dir.path(), 2);

    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_cloudsync"))
            .args(["agent", "run", "--config", cfg])
            .env("CLOUDSYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_health(
        &t,
        &admin,
        &id,
        &json!({"state": "deleteThresholdExceeded", "deletes": 2}),
    )
    .await;

    // The daemon holds the databases: status reads its status file.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, report) = loop {
        let o = cli(&["agent", "status", "--config", cfg, "--json"]);
        if o.status.code() != Some(1) {
            break (
                o.status.code().unwrap(),
                serde_json::from_slice::<Value>(&o.stdout).unwrap(),
            );
        }
        assert!(
            Instant::now() < deadline,
            "no status from the daemon: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["source"], "daemon", "{report:#}");
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["domains"][0]["stagedDeletes"], 2);
    use std::os::unix::fs::PermissionsExt;
    let file = dir.path().join("state/agent-status.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The tenant admin restarts with ForceDeletes; the agent releases on its next heartbeat and
    // reports the release at once.
    let r = t
        .client
        .post(t.at(&format!("/api/v1/configurations/{id}/restart")))
        .bearer_auth(&admin)
        .json(&json!({"scopes": ["ForceDeletes"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for_health(&t, &admin, &id, &json!({"state": "healthy"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, report) = status(cfg);
        if code == 0 {
            assert_eq!(report["domains"][0]["stagedDeletes"], 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status stayed {code}: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(daemon);
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(
        log.contains("Staged deletes released by a restart."),
        "{log}"
    );
}
