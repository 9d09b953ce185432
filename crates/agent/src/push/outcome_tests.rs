//! Server-supplied delays on tokio's paused clock: a per-item `retryAfterSeconds` or a
//! `Retry-After` header of any size holds sends for at most `max_server_delay`, never panics, and
//! the same stored answer handled again (a replay after a restart) gives the same bounded hold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::super::batcher::{Item, build};
use super::super::client::CallError;
use super::super::outbox::Outbox;
use super::super::pusher::Pusher;
use super::super::{PushConfig, PushStatus};
use crate::control::tenant_client::{Credentials, TenantClient, TlsOptions};
use cloudsync_api::ops::{
    BatchResponse, ObjectKind, OpError, OpResult, OpStatus, Operation, Upsert,
};

fn pusher(dir: &tempfile::TempDir, cap: Duration) -> Pusher {
    let outbox = Arc::new(Outbox::open(&dir.path().join("outbox")).expect("outbox"));
    let creds = Credentials {
        base_url: "https://127.0.0.1:9".into(),
        token_endpoint: "/t/oauth2/v2.0/token".into(),
        client_id: "c".into(),
        client_secret: zeroize::Zeroizing::new("s".into()),
        scope: "api://x/.default".into(),
    };
    let client = TenantClient::new(creds, &TlsOptions::default(), Duration::from_secs(1))
        .expect("client (never called)");
    let cfg = PushConfig {
        max_server_delay: cap,
        ..PushConfig::default()
    };
    let (tx, _rx) = watch::channel(PushStatus::default());
    Pusher::new(outbox, Arc::new(client), cfg, tx).expect("pusher")
}

fn upsert(anchor: &str) -> Operation {
    Operation::Upsert(Upsert {
        kind: ObjectKind::User,
        source_anchor: anchor.into(),
        version: 1,
        on_premises: Default::default(),
        attributes: BTreeMap::new(),
    })
}

fn throttled_answer(batch_id: Uuid, n: usize, seconds: u64, replayed: bool) -> BatchResponse {
    BatchResponse {
        batch_id,
        replayed,
        results: (0..n)
            .map(|index| OpResult {
                index,
                status: OpStatus::Error,
                object_id: None,
                error: Some(OpError::throttled(seconds)),
            })
            .collect(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_huge_per_item_retry_after_holds_for_the_cap_and_a_replay_does_the_same() {
    let cap = Duration::from_secs(3600);
    for seconds in [u64::MAX, i64::MAX as u64, 10_u64.pow(15), 3601] {
        // The first answer, then the same stored answer again (what a restart gets replayed).
        for replayed in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut p = pusher(&dir, cap);
            let now = Instant::now();
            let items = vec![Item::new(1, Uuid::nil(), upsert("a"), now)];
            let batch = build(Uuid::nil(), items).expect("batch");
            let answer = throttled_answer(batch.id, 1, seconds, replayed);
            p.apply_results(batch, answer);
            assert_eq!(
                p.hold_until,
                Some(now + cap),
                "{seconds} s, replayed {replayed}"
            );
            let due = p.pending.next_due().expect("requeued");
            // The op backoff's jitter may add up to its base on top of the hold.
            assert!(
                due >= now + cap && due <= now + cap + Duration::from_secs(1),
                "{due:?}"
            );
            assert_eq!(p.status.borrow().ops_retried, 1);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_honest_retry_after_is_honoured_exactly_and_the_clock_gets_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = pusher(&dir, Duration::from_secs(3600));
    let now = Instant::now();
    let batch = build(
        Uuid::nil(),
        vec![Item::new(1, Uuid::nil(), upsert("a"), now)],
    )
    .expect("batch");
    let answer = throttled_answer(batch.id, 1, 22, false);
    p.apply_results(batch, answer);
    let hold = p.hold_until.expect("held");
    assert_eq!(hold, now + Duration::from_secs(22));
    tokio::time::sleep_until(hold).await;
    assert_eq!(Instant::now() - now, Duration::from_secs(22));
}

#[tokio::test(start_paused = true)]
async fn a_whole_call_retry_after_is_capped_by_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = Duration::from_secs(2);
    let mut p = pusher(&dir, cap);
    let now = Instant::now();
    let batch = build(
        Uuid::nil(),
        vec![Item::new(1, Uuid::nil(), upsert("a"), now)],
    )
    .expect("batch");
    let error = CallError::Status {
        status: 429,
        code: "TooManyRequests".into(),
        message: String::new(),
        retry_after: Some(Duration::MAX),
    };
    p.call_failed(batch, &error);
    let hold = p.hold_until.expect("held");
    // The hold is the cap plus at most the call backoff's jitter (base 200 ms · 0.5).
    assert!(
        hold >= now + cap && hold <= now + cap + Duration::from_millis(100),
        "{:?}",
        hold - now
    );
    tokio::time::sleep_until(hold).await;
    assert!(Instant::now() - now <= cap + Duration::from_millis(100));
}
