//! `cloudsync tenant serve` stops on SIGTERM within a deadline, also with batches in flight, and
//! what it acknowledged is on disk when it starts again (the final flush and close of its sled
//! database are bounded, so the process cannot hang in the database's drop).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/push.rs"]
mod push_fixture;

use std::sync::Arc;
use std::time::Duration;

use cloudsync_agent::push::{self, Outbox, PushConfig, PushStatus, synthetic};
use push_fixture::{DOMAIN, PushTenant, successes, wait_until};
use tokio_util::sync::CancellationToken;

const SIGTERM: i32 = 15;

/// A tenant with a registered agent and a configuration, and `push::run` sending `n` synthetic
/// user creates to it from an outbox of its own.
struct Pushing {
    tenant: PushTenant,
    rx: tokio::sync::watch::Receiver<PushStatus>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<push::PushSummary, push::PushError>>,
    _outbox_dir: tempfile::TempDir,
}

async fn start_pushing(n: u64, cfg: PushConfig) -> Pushing {
    let tenant = PushTenant::start(&[]);
    let creds = tenant.register_agent().await;
    let config = tenant.create_config().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(&dir.path().join("outbox")).unwrap());
    outbox
        .enqueue(synthetic::users(config, 0..n, DOMAIN), None)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(PushStatus::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(push::run(
        outbox,
        tenant.push_client(&creds),
        cfg,
        cancel.clone(),
        tx,
    ));
    Pushing {
        tenant,
        rx,
        cancel,
        task,
        _outbox_dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_batches_in_flight_exits_in_time_with_its_state_flushed() {
    let cfg = PushConfig {
        max_batch_ops: 100,
        ..PushConfig::default()
    };
    let Pushing {
        mut tenant,
        rx,
        cancel,
        task: pushing,
        _outbox_dir,
    } = start_pushing(20_000, cfg).await;
    // Some batches acknowledged, more in flight: then SIGTERM.
    wait_until(Duration::from_secs(60), "acknowledged batches", || {
        rx.borrow().ops_acknowledged >= 1_000
    })
    .await;
    let acknowledged = rx.borrow().ops_acknowledged;
    let status = tokio::task::spawn_blocking(move || {
        let status = tenant.signal_and_wait(SIGTERM, Duration::from_secs(30));
        (tenant, status)
    })
    .await
    .unwrap();
    let (mut tenant, status) = status;
    let status = status.unwrap_or_else(|| {
        panic!(
            "tenant serve did not exit within 30 s of SIGTERM:\n{}",
            tenant.log()
        )
    });
    assert!(status.success(), "{status:?}:\n{}", tenant.log());
    cancel.cancel();
    let _ = pushing.await;

    // Started again on the same state: everything acknowledged before the signal is there.
    tenant.start_again();
    let applied = successes(&tenant.all_logs().await);
    assert!(
        applied.len() as u64 >= acknowledged,
        "{} objects on disk, {acknowledged} acknowledged before SIGTERM",
        applied.len()
    );
}

/// The push bench's hang, on the real binary: the state directory removed under a serving tenant
/// that holds written data (as the bench removed its tenants' directories), then SIGTERM. The
/// final flush cannot complete; the process must still exit within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_the_state_directory_is_gone_still_exits_in_time() {
    let Pushing {
        mut tenant,
        rx,
        cancel,
        task: pushing,
        _outbox_dir,
    } = start_pushing(2_000, PushConfig::default()).await;
    wait_until(
        Duration::from_secs(60),
        "every operation acknowledged",
        || rx.borrow().ops_acknowledged >= 2_000,
    )
    .await;
    cancel.cancel();
    let _ = pushing.await;
    std::fs::remove_dir_all(tenant.path("state")).unwrap();
    let (tenant, status) = tokio::task::spawn_blocking(move || {
        let status = tenant.signal_and_wait(SIGTERM, Duration::from_secs(30));
        (tenant, status)
    })
    .await
    .unwrap();
    assert!(
        status.is_some(),
        "tenant serve did not exit within 30 s of SIGTERM with its state directory gone:\n{}",
        tenant.log()
    );
}
