use std::path::{Path, PathBuf};

use super::*;
use cloudsync_api::ops::{ObjectKind, Operation};
use uuid::Uuid;

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

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .collect();
    files.sort();
    files
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test]
async fn corrupt_record_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    outbox.enqueue(vec![op(1)], None).await.unwrap();
    let end_of_first = file_len(&seg);
    outbox.enqueue(vec![op(2)], None).await.unwrap();
    // Flip the last byte of operation 1 (the end of the first record).
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[end_of_first as usize - 1] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    assert!(matches!(
        outbox.read_after(0, 10),
        Err(OutboxError::Corrupt { seq: 1, .. })
    ));
    drop(outbox);
    // On open the record's own checksum fails, and a valid record follows it: corruption in the
    // middle is reported, not truncated away.
    let err = Outbox::open(dir.path()).unwrap_err();
    assert!(matches!(err, OutboxError::CorruptLog { .. }), "{err:?}");
}

#[tokio::test]
async fn a_torn_last_record_at_any_byte_leaves_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let seg;
    let (before, after);
    {
        let outbox = Outbox::open(dir.path()).unwrap();
        seg = segment_files(dir.path()).pop().unwrap();
        outbox
            .enqueue((1..=3).map(op).collect(), Some(("projection", 10)))
            .await
            .unwrap();
        before = file_len(&seg);
        outbox
            .enqueue((4..=5).map(op).collect(), Some(("projection", 20)))
            .await
            .unwrap();
        after = file_len(&seg);
    }
    let full = std::fs::read(&seg).unwrap();
    let prefix_holds = |outbox: &Outbox| {
        assert_eq!(outbox.last_seq().unwrap(), 3);
        assert_eq!(outbox.producer_cursor("projection").unwrap(), Some(10));
        assert_eq!(
            outbox.read_after(0, 10).unwrap(),
            (1..=3).map(|n| (n, op(n))).collect::<Vec<_>>()
        );
    };
    for cut in before..after {
        // The crash left the record cut at `cut` ...
        std::fs::write(&seg, &full[..cut as usize]).unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        prefix_holds(&outbox);
        assert_eq!(file_len(&seg), before, "the torn tail is truncated");
        drop(outbox);
        // ... or wrote the file's new length but not all its pages (zeros from `cut` on).
        let mut zeroed = full.clone();
        zeroed[cut as usize..].fill(0);
        std::fs::write(&seg, &zeroed).unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        prefix_holds(&outbox);
        drop(outbox);
    }
    std::fs::write(&seg, &full[..(before + 7) as usize]).unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(
        outbox.enqueue(vec![op(9)], None).await.unwrap(),
        Some((4, 4)),
        "the sequences of the lost enqueue are assigned again"
    );
    drop(outbox);
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.read_after(3, 10).unwrap(), vec![(4, op(9))]);
}

#[tokio::test]
async fn acknowledged_segments_are_deleted_and_meta_survives_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = Uuid::from_u128(7);
    {
        let outbox = Outbox::open_with(dir.path(), 1024).unwrap();
        outbox
            .enqueue(vec![op(1)], Some(("projection", 100)))
            .await
            .unwrap();
        outbox.enqueue_takeover(vec![], config, 3).await.unwrap();
        for n in 2..=60 {
            outbox.enqueue(vec![op(n)], None).await.unwrap();
        }
        let segments = segment_files(dir.path()).len();
        assert!(segments >= 5, "{segments} segments");
        outbox.acknowledge(30, &[]).await.unwrap();
        let left = segment_files(dir.path()).len();
        assert!(left < segments, "{left} of {segments} segments left");
        assert_eq!(outbox.read_after(0, 100).unwrap().first().unwrap().0, 31);
    }
    let outbox = Outbox::open_with(dir.path(), 1024).unwrap();
    assert_eq!(outbox.checkpoint().unwrap(), 30);
    assert_eq!(
        outbox.read_after(0, 100).unwrap(),
        (31..=60).map(|n| (n, op(n))).collect::<Vec<_>>()
    );
    outbox.acknowledge(60, &[]).await.unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the newest segment is kept"
    );
    drop(outbox);
    // The cursor and the epoch were written in segments deleted since: each segment opens with a
    // snapshot of them.
    let outbox = Outbox::open_with(dir.path(), 1024).unwrap();
    assert_eq!(outbox.producer_cursor("projection").unwrap(), Some(100));
    assert_eq!(outbox.lease_epoch(config).unwrap(), Some(3));
    assert_eq!(outbox.last_seq().unwrap(), 60);
    assert_eq!(outbox.pending_len(), 0);
    assert_eq!(
        outbox.enqueue(vec![op(61)], None).await.unwrap(),
        Some((61, 61))
    );
}

fn quarantined(n: u64) -> QuarantinedObject {
    QuarantinedObject {
        time: "2026-12-07T00:00:00Z".into(),
        configuration_id: Uuid::nil(),
        source_anchor: format!("a{n}"),
        action: "upsert".into(),
        seq: n,
        batch_id: Uuid::from_u128(u128::from(n)),
        code: "DuplicateUserPrincipalName".into(),
        message: format!("refused {n} {}", "x".repeat(200)),
    }
}

#[tokio::test]
async fn quarantine_log_and_set_survive_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected_log = Vec::new();
    {
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox
            .enqueue((1..=40).map(op).collect(), None)
            .await
            .unwrap();
        // 40 acknowledgements of 100 refusals of ~400 bytes each: past the compaction threshold.
        for ack in 1..=40u64 {
            let batch: Vec<_> = (0..100).map(|i| quarantined(ack * 1000 + i)).collect();
            expected_log.extend(batch.iter().cloned());
            outbox.acknowledge(ack, &batch).await.unwrap();
            if ack == 1 {
                // Released before the compaction: the snapshot must not bring it back.
                assert!(outbox.release_object("a1000").unwrap());
            }
        }
        assert!(!outbox.release_object("a1000").unwrap(), "already released");
        assert!(outbox.release_object("a2000").unwrap());
        assert!(!outbox.release_object("never").unwrap());
        // Compacted: the file now opens with a snapshot holding the refusals so far (the one
        // written at creation was empty).
        let state = std::fs::read(dir.path().join("log").join("state.log")).unwrap();
        let len = u32::from_be_bytes(state[6..10].try_into().unwrap()) as usize;
        let first: serde_json::Value = serde_json::from_slice(&state[14..14 + len]).unwrap();
        assert_eq!(first["kind"], "snapshot");
        assert!(
            first["log"].as_array().unwrap().len() >= 2000,
            "{}",
            first["log"].as_array().unwrap().len()
        );
        assert_eq!(outbox.quarantine_log().unwrap(), expected_log);
        outbox.acknowledge(40, &[]).await.unwrap();
    }
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.checkpoint().unwrap(), 40);
    assert_eq!(outbox.quarantine_log().unwrap(), expected_log);
    let set = outbox.quarantined_objects().unwrap();
    assert_eq!(set.len(), 3998);
    assert!(
        !set.iter()
            .any(|q| q.source_anchor == "a1000" || q.source_anchor == "a2000")
    );
}

#[tokio::test]
async fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("outbox");
    let outbox = Outbox::open_with(&root, 1024).unwrap();
    for n in 1..=10 {
        outbox.enqueue(vec![op(n)], None).await.unwrap();
    }
    outbox.acknowledge(2, &[quarantined(1)]).await.unwrap();
    cloudsync_private_fs::check_private(&root).unwrap();
}

/// The format-1 outbox, written the way the sled version of this module wrote it (keys and values
/// as its module doc documented them), independently of the migration code.
fn write_sled_outbox(dir: &Path, config: Uuid) {
    let db = sled::open(dir).unwrap();
    let ops = db.open_tree("ops").unwrap();
    let meta = db.open_tree("meta").unwrap();
    let log = db.open_tree("provisioning_log").unwrap();
    let set = db.open_tree("quarantined").unwrap();
    for n in 3..=5u64 {
        ops.insert(n.to_be_bytes(), envelope::encode(&op(n)).unwrap())
            .unwrap();
    }
    meta.insert(b"next_seq", &6u64.to_be_bytes()).unwrap();
    meta.insert(b"push_checkpoint", &2u64.to_be_bytes())
        .unwrap();
    meta.insert(b"cursor/projection", &50u64.to_be_bytes())
        .unwrap();
    meta.insert(
        format!("lease_epoch/{config}").as_bytes(),
        &7u64.to_be_bytes(),
    )
    .unwrap();
    for n in [1u64, 2] {
        log.insert(
            n.to_be_bytes(),
            serde_json::to_vec(&quarantined(n)).unwrap(),
        )
        .unwrap();
    }
    set.insert(b"a2", serde_json::to_vec(&quarantined(2)).unwrap())
        .unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn a_sled_outbox_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = Uuid::from_u128(9);
    write_sled_outbox(dir.path(), config);
    // sled releases its lock asynchronously; the open waits for it.
    let check = |outbox: &Outbox| {
        assert_eq!(outbox.checkpoint().unwrap(), 2);
        assert_eq!(outbox.last_seq().unwrap(), 5);
        assert_eq!(outbox.producer_cursor("projection").unwrap(), Some(50));
        assert_eq!(outbox.lease_epoch(config).unwrap(), Some(7));
        assert_eq!(
            outbox.read_after(0, 10).unwrap(),
            (3..=5).map(|n| (n, op(n))).collect::<Vec<_>>()
        );
        assert_eq!(
            outbox.quarantine_log().unwrap(),
            vec![quarantined(1), quarantined(2)]
        );
        assert_eq!(outbox.quarantined_objects().unwrap(), vec![quarantined(2)]);
    };
    let outbox = Outbox::open(dir.path()).unwrap();
    check(&outbox);
    for sled_file in ["conf", "db", "blobs"] {
        assert!(
            !dir.path().join(sled_file).exists(),
            "{sled_file} is removed"
        );
    }
    assert_eq!(
        outbox.enqueue(vec![op(6)], None).await.unwrap(),
        Some((6, 6))
    );
    drop(outbox);
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.last_seq().unwrap(), 6);
    outbox.acknowledge(6, &[]).await.unwrap();
    assert_eq!(outbox.pending_len(), 0);
}

#[tokio::test]
async fn a_migration_interrupted_before_the_rename_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let config = Uuid::from_u128(9);
    write_sled_outbox(dir.path(), config);
    // A crash mid-migration leaves a half-built log directory aside, and the sled files.
    std::fs::create_dir(dir.path().join("log.tmp")).unwrap();
    std::fs::write(
        dir.path()
            .join("log.tmp")
            .join("seg-00000000000000000000.log"),
        b"CSOR",
    )
    .unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(outbox.read_after(0, 10).unwrap().len(), 3);
    assert_eq!(outbox.producer_cursor("projection").unwrap(), Some(50));
    assert!(!dir.path().join("log.tmp").exists());
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

/// Runs `steps` against an outbox with segments of `segment_bytes` and a model of what it promises:
/// sequences dense from 1, the checkpoint only forward within what was enqueued, the producer
/// cursor as last enqueued, and exactly the operations above the checkpoint readable (from the
/// checkpoint and from the middle), across reboots.
fn check_model(
    steps: Vec<Step>,
    segment_bytes: u64,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open_with(dir.path(), segment_bytes).unwrap();
    let (mut last, mut checkpoint, mut cursor_model) = (0u64, 0u64, None);
    for s in steps {
        match s {
            Step::Enqueue(k) => {
                let cursor = Some(("projection", last + u64::from(k)));
                cursor_model = Some(last + u64::from(k));
                let got = rt
                    .block_on(outbox.enqueue(
                        (0..u64::from(k)).map(|n| op(last + n + 1)).collect(),
                        cursor,
                    ))
                    .unwrap();
                proptest::prop_assert_eq!(got, (k > 0).then(|| (last + 1, last + u64::from(k))));
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
                outbox = Outbox::open_with(dir.path(), segment_bytes).unwrap();
            }
        }
        proptest::prop_assert_eq!(outbox.checkpoint().unwrap(), checkpoint);
        proptest::prop_assert_eq!(outbox.last_seq().unwrap(), last);
        proptest::prop_assert_eq!(outbox.producer_cursor("projection").unwrap(), cursor_model);
        let rest: Vec<(u64, OutboxOp)> = outbox.read_after(checkpoint, 1000).unwrap();
        proptest::prop_assert_eq!(
            rest,
            ((checkpoint + 1)..=last)
                .map(|n| (n, op(n)))
                .collect::<Vec<_>>()
        );
        // A window from the middle starts where it is asked to.
        let mid = checkpoint + (last - checkpoint) / 2;
        let window: Vec<u64> = outbox
            .read_after(mid, 3)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        proptest::prop_assert_eq!(window, ((mid + 1)..=last).take(3).collect::<Vec<_>>());
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The model with the default segment size (one segment in practice).
    #[test]
    fn outbox_matches_a_simple_model(steps in proptest::collection::vec(step(), 1..40)) {
        check_model(steps, log::SEGMENT_BYTES)?;
    }

    /// The same model with segments of 512 bytes: rolling, deletion of acknowledged segments and
    /// recovery across them keep the same behaviour.
    #[test]
    fn small_segments_match_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        check_model(steps, 512)?;
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
