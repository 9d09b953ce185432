//! The push stage against a real `cloudsync tenant serve` child on 127.0.0.1: exactly-once delivery
//! under throttling and injected 5xx, an outage with a restart on the same port, object quarantine
//! for a duplicate UPN, and configuration quarantine (calls failing; the tenant's own quarantine).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/push.rs"]
mod push_fixture;

use std::sync::Arc;
use std::time::Duration;

use cloudsync_agent::push::{
    self, Backoff, Outbox, OutboxOp, PushConfig, PushStatus, QuarantinePolicy, QuarantineReason,
    synthetic,
};
use cloudsync_api::ops::{OpErrorCode, OpStatus};
use push_fixture::{DOMAIN, PushTenant, assert_exactly_once, wait_until};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn fast_config() -> PushConfig {
    PushConfig {
        call_backoff: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            jitter: 0.5,
        },
        op_backoff: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            jitter: 0.5,
        },
        quarantine: QuarantinePolicy {
            after_failures: 1000,
            after: Duration::from_secs(3600),
            probe_interval: Duration::from_millis(500),
        },
        stop_when_drained: true,
        ..PushConfig::default()
    }
}

struct Agent {
    outbox: Arc<Outbox>,
    _dir: tempfile::TempDir,
    config: uuid::Uuid,
    client: Arc<cloudsync_agent::control::tenant_client::TenantClient>,
}

async fn agent(tenant: &PushTenant) -> Agent {
    let creds = tenant.register_agent().await;
    let config = tenant.create_config().await;
    let dir = tempfile::tempdir().unwrap();
    Agent {
        outbox: Arc::new(Outbox::open(&dir.path().join("outbox")).unwrap()),
        _dir: dir,
        config,
        client: tenant.push_client(&creds),
    }
}

type Running = tokio::task::JoinHandle<Result<push::PushSummary, push::PushError>>;

fn start(a: &Agent, cfg: PushConfig) -> (Running, watch::Receiver<PushStatus>, CancellationToken) {
    let (tx, rx) = watch::channel(PushStatus::default());
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(push::run(
        a.outbox.clone(),
        a.client.clone(),
        cfg,
        cancel.clone(),
        tx,
    ));
    (handle, rx, cancel)
}

/// 50,000 operations under the realistic throttle SCALED IN TIME (same 7,000-operation bucket, refill
/// 60x faster: 7,000 per 5 s instead of per 5 min, so the run takes ~40 s instead of ~36 min), with
/// 10% of calls answered by an injected 503: every object is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_ops_under_throttle_and_5xx_arrive_exactly_once() {
    const N: u64 = 50_000;
    let tenant = PushTenant::start(&[
        "--throttle",
        "realistic",
        "--write-capacity",
        "7000",
        "--write-refill-per-second",
        "1400",
        "--error-rate",
        "0.1",
    ]);
    let a = agent(&tenant).await;
    for chunk in (0..N).step_by(5000) {
        a.outbox
            .enqueue(
                synthetic::users(a.config, chunk..chunk + 5000, DOMAIN),
                Some(("test", chunk)),
            )
            .await
            .unwrap();
    }
    let (handle, _rx, _cancel) = start(&a, fast_config());
    let summary = tokio::time::timeout(Duration::from_secs(600), handle)
        .await
        .expect("delivery within 10 minutes")
        .unwrap()
        .unwrap();
    assert_eq!(summary.checkpoint, N);
    assert_eq!(a.outbox.pending_len(), 0, "acknowledged entries are pruned");
    let s = &summary.status;
    assert!(
        s.calls_failed > 0,
        "the injected 5xx must have been seen: {s:?}"
    );
    assert!(s.throttled > 0, "the throttle must have pushed back: {s:?}");
    assert_eq!(s.ops_acknowledged, N);
    tenant.set_faults(json!({})).await;
    let logs = tenant.all_logs().await;
    assert_exactly_once(&logs, N);
    eprintln!("50k run: {s:?}");
}

/// The tenant goes down for a while: the agent waits without spinning (attempts bounded by the
/// backoff schedule), and catches up after the tenant comes back on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_outage_waits_with_backoff_and_catches_up() {
    let mut tenant = PushTenant::start(&[]);
    let a = agent(&tenant).await;
    a.outbox
        .enqueue(synthetic::users(a.config, 0..1000, DOMAIN), None)
        .await
        .unwrap();
    let mut cfg = fast_config();
    cfg.stop_when_drained = false;
    let (handle, rx, cancel) = start(&a, cfg.clone());
    wait_until(Duration::from_secs(60), "first 1000 delivered", || {
        rx.borrow().checkpoint == 1000
    })
    .await;
    tenant.stop();
    a.outbox
        .enqueue(synthetic::users(a.config, 1000..2000, DOMAIN), None)
        .await
        .unwrap();
    let attempts_before = rx.borrow().batch_attempts;
    let down = Duration::from_secs(6);
    tokio::time::sleep(down).await;
    let attempts_down = rx.borrow().batch_attempts - attempts_before;
    let now = rx.borrow().clone();
    assert!(now.checkpoint == 1000 && now.calls_failed > 0, "{now:?}");
    // Independent bound: the fewest-seconds schedule (every delay at its jitter minimum, half the
    // nominal) fits this many attempts into the outage; +1 for the attempt that found it down.
    let b = cfg.call_backoff;
    let (mut t, mut bound) = (Duration::ZERO, 1u64);
    for k in 1.. {
        t += b.nominal(k) / 2;
        if t > down {
            break;
        }
        bound += 1;
    }
    assert!(
        attempts_down <= bound,
        "{attempts_down} attempts in {down:?}, schedule allows {bound}"
    );
    assert!(
        attempts_down >= 3,
        "the agent must keep probing: {attempts_down}"
    );
    tenant.start_again();
    wait_until(Duration::from_secs(60), "catch-up", || {
        rx.borrow().checkpoint == 2000
    })
    .await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_exactly_once(&tenant.all_logs().await, 2000);
    eprintln!("outage: {attempts_down} attempts in {down:?} (bound {bound})");
}

/// A duplicate userPrincipalName quarantines only that object; the rest is delivered, and a later
/// corrected upsert releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_upn_quarantines_only_that_object() {
    let tenant = PushTenant::start(&[]);
    let a = agent(&tenant).await;
    let mut ops = synthetic::users(a.config, 0..100, DOMAIN);
    // User 100 claims user 7's UPN.
    let mut dup = synthetic::user_upsert(100, 1, DOMAIN);
    if let cloudsync_api::ops::Operation::Upsert(u) = &mut dup {
        u.attributes.insert(
            "userPrincipalName".into(),
            json!(format!("synth7@{DOMAIN}")),
        );
    }
    ops.insert(
        50,
        OutboxOp {
            configuration_id: a.config,
            operation: dup,
            origin_seq: 100,
            reason: None,
        },
    );
    a.outbox.enqueue(ops, None).await.unwrap();
    let (handle, _rx, _c) = start(&a, fast_config());
    let summary = handle.await.unwrap().unwrap();
    assert_eq!(summary.checkpoint, 101);
    assert_eq!(summary.status.objects_quarantined, 1);
    assert_eq!(
        summary.status.quarantine, None,
        "the configuration stays healthy"
    );
    let q = a.outbox.quarantined_objects().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].source_anchor, synthetic::anchor(100));
    assert_eq!(q[0].code, "DuplicateUserPrincipalName");
    assert!(
        q[0].message.contains(&format!("synth7@{DOMAIN}")),
        "{}",
        q[0].message
    );
    let logs = tenant.all_logs().await;
    assert_exactly_once(
        &logs
            .iter()
            .filter(|e| e.source_anchor != synthetic::anchor(100))
            .cloned()
            .collect::<Vec<_>>(),
        100,
    );
    // A corrected upsert (own UPN, higher version) goes through and releases the object.
    let fixed = synthetic::user_upsert(100, 2, DOMAIN);
    a.outbox
        .enqueue(
            vec![OutboxOp {
                configuration_id: a.config,
                operation: fixed,
                origin_seq: 101,
                reason: None,
            }],
            None,
        )
        .await
        .unwrap();
    let (handle, _rx, _c) = start(&a, fast_config());
    handle.await.unwrap().unwrap();
    assert!(a.outbox.quarantined_objects().unwrap().is_empty());
    assert_eq!(
        a.outbox.quarantine_log().unwrap().len(),
        1,
        "the log keeps the refusal"
    );
    let logs = tenant.all_logs().await;
    assert!(
        logs.iter()
            .any(|e| e.source_anchor == synthetic::anchor(100) && e.result == OpStatus::Success)
    );
}

/// Calls keep failing → the configuration is quarantined locally with the reason, probes slowly,
/// and leaves quarantine by itself when calls succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_calls_quarantine_the_configuration_until_they_succeed() {
    let tenant = PushTenant::start(&[]);
    let a = agent(&tenant).await;
    tenant.set_faults(json!({"errorRate": 1.0})).await;
    a.outbox
        .enqueue(synthetic::users(a.config, 0..10, DOMAIN), None)
        .await
        .unwrap();
    let mut cfg = fast_config();
    cfg.quarantine = QuarantinePolicy {
        after_failures: 3,
        after: Duration::from_millis(300),
        probe_interval: Duration::from_secs(1),
    };
    let (handle, rx, _c) = start(&a, cfg);
    wait_until(Duration::from_secs(30), "quarantine", || {
        rx.borrow().quarantine.is_some()
    })
    .await;
    match rx.borrow().quarantine.clone() {
        Some(QuarantineReason::CallsFailing { last_error, .. }) => {
            assert!(last_error.contains("503"), "{last_error}")
        }
        other => panic!("unexpected {other:?}"),
    }
    tenant.set_faults(json!({})).await;
    let summary = handle.await.unwrap().unwrap();
    assert_eq!(summary.checkpoint, 10);
    assert_eq!(summary.status.quarantine, None);
}

/// The tenant quarantines the configuration after batches that fail entirely; the agent shows it,
/// sends nothing but configuration probes, and resumes after an admin restart with scope Quarantine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_quarantine_is_mirrored_and_cleared_by_a_restart() {
    let tenant = PushTenant::start(&[]);
    let a = agent(&tenant).await;
    let mut ops = Vec::new();
    for n in 0..3 {
        let mut bad = synthetic::user_upsert(n, 1, DOMAIN);
        if let cloudsync_api::ops::Operation::Upsert(u) = &mut bad {
            u.attributes.remove("displayName"); // InvalidAttribute: permanent
        }
        ops.push(OutboxOp {
            configuration_id: a.config,
            operation: bad,
            origin_seq: n,
            reason: None,
        });
    }
    ops.extend(synthetic::users(a.config, 10..20, DOMAIN));
    a.outbox.enqueue(ops, None).await.unwrap();
    let mut cfg = fast_config();
    cfg.max_batch_ops = 1;
    cfg.max_in_flight = 1;
    let (handle, rx, _c) = start(&a, cfg);
    wait_until(Duration::from_secs(30), "tenant quarantine", || {
        matches!(
            rx.borrow().quarantine,
            Some(QuarantineReason::Tenant { .. })
        )
    })
    .await;
    let attempts = rx.borrow().batch_attempts;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.borrow().batch_attempts,
        attempts,
        "no batches while quarantined"
    );
    tenant.restart_config(a.config, &["Quarantine"]).await;
    let summary = handle.await.unwrap().unwrap();
    assert_eq!(summary.checkpoint, 13);
    assert_eq!(summary.status.quarantine, None);
    assert_eq!(a.outbox.quarantined_objects().unwrap().len(), 3);
    let s = push_fixture::successes(&tenant.all_logs().await);
    assert_eq!(s.len(), 10, "{s:?}");
    assert!(
        (10..20).all(|n| s.get(&synthetic::anchor(n)) == Some(&1)),
        "{s:?}"
    );
}

fn group(anchor: &str) -> cloudsync_api::ops::Operation {
    cloudsync_api::ops::Operation::Upsert(cloudsync_api::ops::Upsert {
        kind: cloudsync_api::ops::ObjectKind::Group,
        source_anchor: anchor.into(),
        version: 1,
        on_premises: Default::default(),
        attributes: [("displayName".into(), json!(anchor))]
            .into_iter()
            .collect(),
    })
}

/// A membership that arrives before its group and member (one operation per batch, so it fails
/// alone with ReferenceNotFound): the upserts overtake the waiting retry, and the retry then
/// succeeds. A membership whose member never arrives gives up and quarantines the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_not_found_is_retried_after_the_referenced_objects() {
    let tenant = PushTenant::start(&[]);
    let a = agent(&tenant).await;
    let add = |g: &str, m: &str| cloudsync_api::ops::Operation::AddMember {
        group_anchor: g.into(),
        member_anchor: m.into(),
    };
    let ops = vec![
        add("grp-1", &synthetic::anchor(1)),
        group("grp-1"),
        synthetic::user_upsert(1, 1, DOMAIN),
        add("grp-1", "never-synced"),
    ];
    let ops = ops
        .into_iter()
        .enumerate()
        .map(|(n, operation)| OutboxOp {
            configuration_id: a.config,
            operation,
            origin_seq: n as u64,
            reason: None,
        })
        .collect();
    a.outbox.enqueue(ops, None).await.unwrap();
    let mut cfg = fast_config();
    cfg.max_batch_ops = 1;
    cfg.max_reference_attempts = 3;
    let (handle, _rx, _c) = start(&a, cfg);
    let summary = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("no livelock behind the waiting membership")
        .unwrap()
        .unwrap();
    assert_eq!(summary.checkpoint, 4);
    let logs = tenant.all_logs().await;
    let added = logs
        .iter()
        .filter(|e| e.action == "addMember" && e.result == OpStatus::Success)
        .count();
    assert_eq!(
        added, 1,
        "the early membership was applied once, after its objects"
    );
    let q = a.outbox.quarantined_objects().unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].code, "ReferenceNotFound");
    assert!(
        q[0].message.starts_with("Gave up after 3 attempts"),
        "{}",
        q[0].message
    );
}

/// A small write budget (25 operations, 10 per second) against batches of 20: the tenant applies
/// part of a batch and answers the rest with per-item `Throttled` + `retryAfterSeconds`. The push
/// stage resends those operations in a new batch (new id, so not answered from the stored results),
/// never before the per-item Retry-After, and every object arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_item_throttling_is_honoured_and_resent_under_a_new_batch_id() {
    const N: u64 = 100;
    let tenant = PushTenant::start(&["--write-capacity", "25", "--write-refill-per-second", "10"]);
    let a = agent(&tenant).await;
    a.outbox
        .enqueue(synthetic::users(a.config, 0..N, DOMAIN), None)
        .await
        .unwrap();
    let cfg = PushConfig {
        max_batch_ops: 20,
        ..fast_config()
    };
    let (handle, _rx, _cancel) = start(&a, cfg);
    let summary = tokio::time::timeout(Duration::from_secs(120), handle)
        .await
        .expect("delivery within 2 minutes")
        .unwrap()
        .unwrap();
    assert_eq!(summary.checkpoint, N);
    assert_eq!(summary.status.ops_acknowledged, N);
    assert!(summary.status.throttled > 0, "{:?}", summary.status);

    let mut logs = tenant.all_logs().await;
    assert_exactly_once(&logs, N);
    logs.sort_by_key(|e| e.seq);
    let at = |e: &cloudsync_api::logs::LogEntry| {
        time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    let mut throttled = 0;
    for (i, e) in logs.iter().enumerate() {
        if e.error_code != Some(OpErrorCode::Throttled) {
            continue;
        }
        throttled += 1;
        // The tenant's message names the wait; the log entry has no field for it.
        let wait: i64 = e
            .message
            .split("after ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no wait in {:?}", e.message));
        assert!(wait >= 1, "{e:?}");
        let next = logs[i + 1..]
            .iter()
            .find(|n| n.source_anchor == e.source_anchor)
            .unwrap_or_else(|| panic!("{} never resent", e.source_anchor));
        assert_ne!(next.batch_id, e.batch_id, "resent under a new batch id");
        // Whole-second log times: t2 >= t1 + wait implies floor(t2) - floor(t1) >= wait.
        assert!(
            at(next) - at(e) >= wait,
            "{} resent {} s after a {} s Retry-After",
            e.source_anchor,
            at(next) - at(e),
            wait
        );
    }
    assert!(throttled > 0, "no per-item throttling happened");
    eprintln!(
        "per-item throttling: {throttled} throttled results, {:?}",
        summary.status
    );
}

/// A tenant that answers every operation with `Throttled` and `retryAfterSeconds` = 2^64 - 1 (the
/// `throttleItems` fault), the number that made the agent panic ("overflow when adding duration to
/// instant"). The push stage holds for its cap (`max_server_delay`, 2 s here) instead; stopped
/// during the hold and started again, it resends the same batch id, the tenant replays the stored
/// answer with the same number, and the stage again waits the cap, resends under a new id, and
/// every object arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_per_item_retry_after_is_capped_also_when_replayed_after_a_restart() {
    const N: u64 = 3;
    let tenant = PushTenant::start(&[]);
    let a = agent(&tenant).await;
    a.outbox
        .enqueue(synthetic::users(a.config, 0..N, DOMAIN), None)
        .await
        .unwrap();
    tenant
        .set_faults(json!({"throttleItems": {"batches": 1, "retryAfterSeconds": u64::MAX}}))
        .await;
    let cap = Duration::from_secs(2);
    let cfg = PushConfig {
        max_server_delay: cap,
        ..fast_config()
    };

    // First run: the answer arrives and every operation is held; stop the stage during the hold.
    let (handle, rx, cancel) = start(
        &a,
        PushConfig {
            stop_when_drained: false,
            ..cfg.clone()
        },
    );
    wait_until(Duration::from_secs(30), "the throttled answer", || {
        rx.borrow().ops_retried >= N
    })
    .await;
    cancel.cancel();
    let first = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("stops promptly")
        .expect("the push stage must not panic")
        .unwrap();
    assert_eq!(first.checkpoint, 0, "nothing acknowledged yet");

    // Restart: the same batch id again, answered from the tenant's stored results.
    let t0 = std::time::Instant::now();
    let (handle, _rx, _cancel) = start(&a, cfg);
    let summary = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("delivery within a minute, not after 2^64 s")
        .expect("the push stage must not panic on the replayed answer")
        .unwrap();
    let waited = t0.elapsed();
    assert_eq!(summary.checkpoint, N);
    assert_eq!(summary.status.ops_acknowledged, N);
    assert!(
        waited >= cap,
        "resent after {waited:?}, before the capped Retry-After of {cap:?}"
    );
    assert!(waited < cap + Duration::from_secs(20), "{waited:?}");
    assert!(
        tenant.log().contains("Batch replayed"),
        "the restart must have been answered from the stored results"
    );
    let logs = tenant.all_logs().await;
    assert_exactly_once(&logs, N);
    let throttled = logs
        .iter()
        .filter(|e| e.error_code == Some(OpErrorCode::Throttled))
        .count();
    assert_eq!(
        throttled as u64, N,
        "one throttled answer per operation, stored once"
    );
}
