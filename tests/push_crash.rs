//! Crash and shutdown of a real agent process (`cloudsync push drive`) against a real tenant:
//! SIGKILL between sending a batch and checkpointing applies nothing twice after restart; SIGTERM
//! stops taking batches, lets those in flight finish, and leaves the checkpoint exactly there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/push.rs"]
mod push_fixture;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync_agent::push::{Outbox, synthetic};
use push_fixture::{
    AgentCreds, PushTenant, TENANT_ID, assert_exactly_once, successes, write_secret,
};

fn spawn_agent(
    tenant: &PushTenant,
    agent: &AgentCreds,
    config: uuid::Uuid,
    outbox: &Path,
    n: u64,
) -> Child {
    let secret = tenant.path("agent-secret");
    write_secret(&secret, &agent.client_secret);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(tenant.path("agent.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args([
            "push",
            "drive",
            "--url",
            &tenant.url,
            "--tenant-id",
            TENANT_ID,
        ])
        .args([
            "--client-id",
            &agent.client_id,
            "--configuration",
            &config.to_string(),
        ])
        .arg("--client-secret-file")
        .arg(&secret)
        .arg("--ca")
        .arg(tenant.path("ca.pem"))
        .arg("--outbox")
        .arg(outbox)
        .args([
            "--synthetic",
            &n.to_string(),
            "--batch-size",
            "100",
            "--in-flight",
            "4",
        ])
        .args(["--backoff-base-ms", "300"])
        .env("CLOUDSYNC_LOG", "cloudsync=debug,info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn cloudsync push drive")
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "agent did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn checkpoint(outbox: &Path) -> u64 {
    Outbox::open(outbox).unwrap().checkpoint().unwrap()
}

/// Seq of synthetic user n is n + 1 (one enqueue into an empty outbox).
fn applied_beyond(logs: &[cloudsync_api::logs::LogEntry], checkpoint: u64) -> usize {
    successes(logs)
        .keys()
        .filter_map(|a| a.strip_prefix("synth-")?.parse::<u64>().ok())
        .filter(|n| n + 1 > checkpoint)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_send_and_checkpoint_applies_nothing_twice() {
    const N: u64 = 3000;
    // Dropped connections: the tenant applies a batch but its answer is lost, so the agent holds
    // applied-but-unacknowledged batches (backing off before resending) for a long window.
    let tenant = PushTenant::start(&[]);
    let agent = tenant.register_agent().await;
    let config = tenant.create_config().await;
    tenant
        .set_faults(serde_json::json!({"dropRate": 0.3, "latencyMs": 20}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mut kills_in_window = 0;
    for round in 0..5u64 {
        let mut child = spawn_agent(&tenant, &agent, config, &outbox, N);
        tokio::time::sleep(Duration::from_millis(600 + 150 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let cp = checkpoint(&outbox);
        let logs = tenant.all_logs().await;
        let beyond = applied_beyond(&logs, cp);
        eprintln!("round {round}: checkpoint {cp}, applied beyond it {beyond}");
        if beyond > 0 {
            kills_in_window += 1;
        }
        let twice = successes(&logs).into_values().filter(|c| *c > 1).count();
        assert_eq!(twice, 0, "an object was applied twice after round {round}");
        if cp == N {
            break;
        }
    }
    assert!(
        kills_in_window > 0,
        "no kill landed between send and checkpoint"
    );
    let mut child = spawn_agent(&tenant, &agent, config, &outbox, N);
    assert!(wait_exit(&mut child, Duration::from_secs(300)).success());
    assert_eq!(checkpoint(&outbox), N);
    assert_exactly_once(&tenant.all_logs().await, N);
    let replays = tenant.log().matches("Batch replayed").count();
    assert!(
        replays > 0,
        "resent batches must have been answered from the stored results"
    );
    eprintln!("kills in the window: {kills_in_window}, replayed batches: {replays}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_batches_and_checkpoints_exactly_there() {
    const N: u64 = 3000;
    let tenant = PushTenant::start(&["--latency-ms", "400"]);
    let agent = tenant.register_agent().await;
    let config = tenant.create_config().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mut child = spawn_agent(&tenant, &agent, config, &outbox, N);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(send_signal(pid, libc::SIGTERM), 0);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "graceful exit, got {status}");
    let cp = checkpoint(&outbox);
    assert!(cp > 0 && cp < N, "stopped part-way: {cp}");
    let applied = successes(&tenant.all_logs().await);
    // Exactly the acknowledged prefix was applied: nothing in flight was abandoned.
    assert_eq!(applied.len() as u64, cp);
    assert!((0..cp).all(|n| applied.get(&synthetic::anchor(n)) == Some(&1)));
}

fn send_signal(pid: i32, signal: i32) -> i32 {
    // std has no API to send SIGTERM; the `kill` utility does it without unsafe code here.
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    if status.success() { 0 } else { -1 }
}
