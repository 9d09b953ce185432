use super::*;
use cloudsync_api::ops::ObjectKind;

fn op(n: u64) -> OutboxOp {
    OutboxOp {
        configuration_id: Uuid::nil(),
        operation: Operation::Delete {
            kind: ObjectKind::User,
            source_anchor: format!("a{n}"),
            version: n,
        },
        origin_seq: n * 10,
        reason: None,
    }
}

#[tokio::test]
async fn enqueue_read_acknowledge_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.enqueue(vec![], None).await.unwrap(), None);
        let r = outbox
            .enqueue((1..=5).map(op).collect(), Some(("projection", 50)))
            .await
            .unwrap();
        assert_eq!(r, Some((1, 5)));
        outbox.acknowledge(3, &[]).await.unwrap();
        assert!(outbox.acknowledge(2, &[]).await.is_err(), "backwards");
        assert!(outbox.acknowledge(6, &[]).await.is_err(), "past the end");
    }
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.checkpoint().unwrap(), 3);
    assert_eq!(outbox.producer_cursor("projection").unwrap(), Some(50));
    let rest = outbox
        .read_after(outbox.checkpoint().unwrap(), 100)
        .unwrap();
    assert_eq!(rest, vec![(4, op(4)), (5, op(5))]);
    // The size used for the batch byte limit never under-estimates the operation's JSON.
    for (_, entry, size) in outbox.read_sized(3, 10).unwrap() {
        assert!(size >= serde_json::to_vec(&entry.operation).unwrap().len());
        assert_eq!(size, serde_json::to_vec(&entry).unwrap().len());
    }
    // Pruned entries are gone; sequences keep growing after a full prune.
    outbox.acknowledge(5, &[]).await.unwrap();
    assert_eq!(outbox.pending_len(), 0);
    assert_eq!(
        outbox.enqueue(vec![op(6)], None).await.unwrap(),
        Some((6, 6))
    );
}

#[tokio::test]
async fn an_enqueue_before_the_consumer_waits_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    outbox.enqueue(vec![op(1)], None).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), outbox.wait_for_new())
        .await
        .expect("the wake-up of an earlier enqueue is kept");
}

#[tokio::test]
async fn corrupt_record_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    outbox.enqueue(vec![op(1)], None).await.unwrap();
    let mut raw = outbox
        .ops
        .get(1u64.to_be_bytes())
        .unwrap()
        .unwrap()
        .to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0x55;
    outbox.ops.insert(1u64.to_be_bytes(), raw).unwrap();
    assert!(matches!(
        outbox.read_after(0, 10),
        Err(OutboxError::Corrupt { seq: 1, .. })
    ));
}

#[test]
fn a_held_lock_is_reported_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Outbox::open(dir.path()).unwrap();
    let t0 = std::time::Instant::now();
    let err = Outbox::open(dir.path()).unwrap_err();
    assert!(t0.elapsed() >= LOCK_WAIT);
    assert!(matches!(err, OutboxError::Locked { .. }), "{err:?}");
    assert!(err.is_retriable());
    assert_eq!(
        err.to_string(),
        format!(
            "the outbox at {} is in use by another process",
            dir.path().display()
        )
    );
    // sled's refusal is kept as the cause.
    let source = std::error::Error::source(&err).expect("sled's error is kept");
    assert!(
        source.to_string().contains("could not acquire lock"),
        "{source}"
    );
}

#[derive(Debug, Clone)]
enum Step {
    Enqueue(u8),
    Ack(u8),
    Reboot,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0u8..20).prop_map(Step::Enqueue),
        (0u8..40).prop_map(Step::Ack),
        Just(Step::Reboot),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Model: sequences are dense from 1, the checkpoint only moves forward within what was
    /// enqueued, and exactly the entries above the checkpoint survive, across reboots.
    #[test]
    fn outbox_matches_a_simple_model(steps in proptest::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let (mut last, mut checkpoint) = (0u64, 0u64);
        for s in steps {
            match s {
                Step::Enqueue(k) => {
                    let got = rt.block_on(outbox.enqueue((0..u64::from(k)).map(|n| op(last + n + 1)).collect(), None)).unwrap();
                    let want = (k > 0).then(|| (last + 1, last + u64::from(k)));
                    proptest::prop_assert_eq!(got, want);
                    last += u64::from(k);
                }
                Step::Ack(d) => {
                    let to = checkpoint + u64::from(d);
                    let r = rt.block_on(outbox.acknowledge(to, &[]));
                    proptest::prop_assert_eq!(r.is_ok(), to <= last);
                    if to <= last {
                        checkpoint = to;
                    }
                }
                Step::Reboot => {
                    drop(outbox);
                    outbox = Outbox::open(dir.path()).unwrap();
                }
            }
            proptest::prop_assert_eq!(outbox.checkpoint().unwrap(), checkpoint);
            proptest::prop_assert_eq!(outbox.last_seq().unwrap(), last);
            let rest: Vec<u64> = outbox.read_after(checkpoint, 1000).unwrap().into_iter().map(|(s, _)| s).collect();
            proptest::prop_assert_eq!(rest, ((checkpoint + 1)..=last).collect::<Vec<_>>());
        }
    }
}

#[tokio::test]
async fn a_disk_below_the_reserve_refuses_writes_without_poisoning() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    outbox.enqueue(vec![op(1)], None).await.unwrap();
    // No disk has u64::MAX bytes free.
    let outbox = outbox.with_reserve(u64::MAX);
    let err = outbox.enqueue(vec![op(2)], None).await.unwrap_err();
    assert!(
        matches!(
            err,
            OutboxError::DiskFull {
                reserve: u64::MAX,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retriable(), "{err:?}");
    assert!(matches!(
        outbox.acknowledge(1, &[]).await,
        Err(OutboxError::DiskFull { .. })
    ));
    assert_eq!(outbox.last_seq().unwrap(), 1, "nothing was written");
    assert_eq!(outbox.checkpoint().unwrap(), 0);
    // Space is back: the same handle writes again (it was not poisoned).
    let outbox = outbox.with_reserve(MIN_FREE_BYTES);
    assert_eq!(
        outbox.enqueue(vec![op(2)], None).await.unwrap(),
        Some((2, 2))
    );
    outbox.acknowledge(2, &[]).await.unwrap();
}
