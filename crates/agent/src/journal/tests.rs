//! Unit tests of the store: append/read, checkpoints, cursors, retention, recovery, poisoning, tooling opens.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::codec;
use super::*;
use crate::event::{Attribute, Guid, ObjectClass};

fn upsert(n: u64) -> Event {
    Event::ObjectUpserted {
        domain: "corp.example.test".into(),
        guid: Guid([n as u8; 16]),
        usn: n,
        dn: format!("CN=user{n},OU=Staff,DC=corp,DC=example,DC=test"),
        class: ObjectClass::User,
        attributes: vec![crate::event::Attribute::text(
            "displayName",
            &[format!("User {n}")],
        )],
        full_image: n.is_multiple_of(2),
    }
}

fn cookie(n: u8) -> Checkpoint {
    Checkpoint {
        domain: "corp.example.test".into(),
        source: SourceKind::LdapDirSync,
        data: vec![n; 4],
    }
}

fn open(dir: &Path) -> Journal {
    Journal::open(dir, JournalOptions::default()).unwrap()
}

fn all(j: &Journal) -> Vec<Record> {
    j.read(0).collect::<Result<_, _>>().unwrap()
}

/// Opens the journal's sled database directly, waiting (bounded) for a just-dropped handle to release the
/// file lock, which sled does asynchronously.
fn raw_sled(dir: &Path) -> sled::Db {
    use cloudsync_private_fs::lock::{is_lock_conflict, open_waiting_for_lock};
    open_waiting_for_lock(
        std::time::Duration::from_secs(5),
        || sled::open(dir),
        |e| matches!(e, sled::Error::Io(e) if is_lock_conflict(e)),
    )
    .unwrap_or_else(|e| panic!("cannot open sled at {}: {e}", dir.display()))
}

/// Writes `bytes` under `key` in the journal tree, bypassing the journal (the journal must be closed).
fn poke(dir: &Path, key: &[u8], bytes: &[u8]) {
    let db = raw_sled(dir);
    db.open_tree(store::JOURNAL_TREE)
        .unwrap()
        .insert(key, bytes)
        .unwrap();
    db.flush().unwrap();
}

fn flip_last_byte(dir: &Path, seq: u64) {
    let db = raw_sled(dir);
    let tree = db.open_tree(store::JOURNAL_TREE).unwrap();
    let mut bytes = tree.get(codec::event_key(seq)).unwrap().unwrap().to_vec();
    *bytes.last_mut().unwrap() ^= 0x01;
    tree.insert(codec::event_key(seq), bytes).unwrap();
    db.flush().unwrap();
}

#[test]
fn append_assigns_consecutive_seqs_from_one_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    assert_eq!(j.last_seq(), None);
    let ack = j
        .append(vec![upsert(1), upsert(2)], Some(cookie(1)))
        .unwrap();
    assert_eq!((ack.first_seq, ack.last_seq), (Some(1), Some(2)));
    let ack = j.append(vec![upsert(3)], None).unwrap();
    assert_eq!((ack.first_seq, ack.last_seq), (Some(3), Some(3)));
    let records = all(&j);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(records[2].event, upsert(3));
    assert!(records[0].appended_at_unix_ms > 1_700_000_000_000);
    assert_eq!(j.read(3).count(), 1);
    assert_eq!(j.read(4).count(), 0);
    assert_eq!(
        j.checkpoint("corp.example.test", SourceKind::LdapDirSync)
            .unwrap(),
        Some(vec![1; 4])
    );
    assert_eq!(
        j.checkpoint("corp.example.test", SourceKind::Drsr).unwrap(),
        None
    );
}

#[test]
fn checkpoint_only_append_acks_without_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    let ack = j.append(Vec::new(), Some(cookie(9))).unwrap();
    assert_eq!((ack.first_seq, ack.last_seq), (None, None));
    assert_eq!(j.last_seq(), None);
    assert_eq!(j.checkpoints().unwrap(), vec![cookie(9)]);
}

#[test]
fn seqs_checkpoints_and_cursors_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        j.append((1..=5).map(upsert).collect(), Some(cookie(5)))
            .unwrap();
        j.set_cursor(CURSOR_PROJECTION, 4).unwrap();
    }
    let j = open(dir.path());
    assert_eq!(j.last_seq(), Some(5));
    assert_eq!(j.cursor(CURSOR_PROJECTION).unwrap(), Some(4));
    assert_eq!(j.checkpoints().unwrap(), vec![cookie(5)]);
    let ack = j.append(vec![upsert(6)], None).unwrap();
    assert_eq!(ack.first_seq, Some(6));
}

#[test]
fn seqs_stay_monotonic_after_pruning_everything_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        retention: Retention { keep_consumed: 0 },
        ..JournalOptions::default()
    };
    {
        let j = Journal::open(dir.path(), opts.clone()).unwrap();
        j.append((1..=10).map(upsert).collect(), None).unwrap();
        j.set_cursor(CURSOR_PROJECTION, 10).unwrap();
        assert_eq!(
            j.prune().unwrap(),
            9,
            "everything below the cursor goes, the record at it stays"
        );
        assert_eq!(j.first_seq().unwrap(), Some(10));
    }
    let j = Journal::open(dir.path(), opts).unwrap();
    assert_eq!(
        j.append(vec![upsert(11)], None).unwrap().first_seq,
        Some(11)
    );
    assert_eq!(all(&j).iter().map(|r| r.seq).collect::<Vec<_>>(), [10, 11]);
}

#[test]
fn prune_respects_the_lowest_cursor_required_cursors_and_keep() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        retention: Retention { keep_consumed: 2 },
        required_cursors: vec![CURSOR_PROJECTION.into(), CURSOR_PUSH.into()],
        ..JournalOptions::default()
    };
    let j = Journal::open(dir.path(), opts).unwrap();
    j.append((1..=20).map(upsert).collect(), None).unwrap();
    j.set_cursor(CURSOR_PROJECTION, 15).unwrap();
    assert_eq!(j.prune().unwrap(), 0, "the push cursor does not exist yet");
    j.set_cursor(CURSOR_PUSH, 8).unwrap();
    // Lowest cursor 8, keep 2 consumed records (6, 7) and everything from 8 on: 1..=5 go.
    assert_eq!(j.prune().unwrap(), 5);
    assert_eq!(j.first_seq().unwrap(), Some(6));
    assert_eq!(j.read(0).next().unwrap().unwrap().seq, 6);
    assert_eq!(j.prune().unwrap(), 0);
}

#[test]
fn cursor_cannot_pass_the_last_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    j.append(vec![upsert(1)], None).unwrap();
    assert!(matches!(
        j.set_cursor("push", 2),
        Err(JournalError::CursorBeyondEnd {
            seq: 2,
            last: 1,
            ..
        })
    ));
    assert!(matches!(
        j.set_cursor("", 0),
        Err(JournalError::InvalidCursorName(_))
    ));
    j.set_cursor("push", 1).unwrap();
    j.set_cursor("push", 0).unwrap();
    assert_eq!(j.cursors().unwrap(), vec![("push".to_string(), 0)]);
}

#[test]
fn corrupt_last_record_is_dropped_with_its_checkpoint_and_cursors_move_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        j.append(vec![upsert(1), upsert(2)], Some(cookie(1)))
            .unwrap();
        j.append(
            vec![upsert(3)],
            Some(Checkpoint {
                source: SourceKind::LdapUsnPoll,
                ..cookie(3)
            }),
        )
        .unwrap();
        j.set_cursor(CURSOR_PROJECTION, 3).unwrap();
    }
    flip_last_byte(dir.path(), 3);
    let j = open(dir.path());
    assert_eq!(j.last_seq(), Some(2));
    assert_eq!(all(&j).len(), 2);
    assert_eq!(j.cursor(CURSOR_PROJECTION).unwrap(), Some(2));
    // The checkpoint written with seq 3 no longer covers durable events; the one with seq 1..=2 stays.
    assert_eq!(j.checkpoints().unwrap(), vec![cookie(1)]);
    assert_eq!(j.append(vec![upsert(30)], None).unwrap().first_seq, Some(3));
    assert!(j.verify().unwrap().is_ok());
}

#[test]
fn corruption_before_the_tail_is_an_error_naming_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        j.append((1..=4).map(upsert).collect(), None).unwrap();
    }
    flip_last_byte(dir.path(), 2);
    let j = open(dir.path());
    assert_eq!(
        j.last_seq(),
        Some(4),
        "the tail is sound, so open keeps everything"
    );
    let results: Vec<_> = j.read(0).collect();
    assert_eq!(results.len(), 2, "reading stops at the first error");
    match &results[1] {
        Err(JournalError::Corrupt { seq: 2, reason }) => {
            assert!(reason.contains("CRC32C"), "{reason}")
        }
        other => panic!("expected Corrupt at seq 2, got {other:?}"),
    }
    let report = j.verify().unwrap();
    assert_eq!(report.records, 4);
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0].contains("seq 2"),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_missing_record_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        j.append((1..=4).map(upsert).collect(), None).unwrap();
    }
    {
        let db = raw_sled(dir.path());
        db.open_tree(store::JOURNAL_TREE)
            .unwrap()
            .remove(codec::event_key(3))
            .unwrap();
        db.flush().unwrap();
    }
    let j = open(dir.path());
    let err = j.read(0).find_map(Result::err).unwrap();
    assert!(
        matches!(
            err,
            JournalError::Gap {
                expected: 3,
                found: 4
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        j.read(3).next(),
        Some(Err(JournalError::Gap {
            expected: 3,
            found: 4
        }))
    ));
    assert!(!j.verify().unwrap().is_ok());
}

#[test]
fn a_corrupt_high_water_mark_is_an_error_not_a_silent_reset() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).append(vec![upsert(1)], None).unwrap();
    poke(
        dir.path(),
        codec::HIGH_WATER_KEY,
        b"garbage-garbage-garbage",
    );
    let err = Journal::open(dir.path(), JournalOptions::default()).unwrap_err();
    assert!(matches!(err, JournalError::CorruptEntry { .. }), "{err}");
    // Tooling still opens it, reads the records and reports the mark.
    let j = Journal::open_existing(dir.path()).unwrap();
    assert_eq!(all(&j).len(), 1);
    let report = j.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("\"s\" is corrupt"),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_poisoned_handle_refuses_writes_but_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    j.append(vec![upsert(1)], None).unwrap();
    // A real flush failure needs a failing disk; the flag it sets is what every write path checks.
    j.inner.poisoned.store(true, Ordering::Release);
    assert!(matches!(
        j.append(vec![upsert(2)], None),
        Err(JournalError::Poisoned)
    ));
    assert!(matches!(
        j.set_cursor("push", 1),
        Err(JournalError::Poisoned)
    ));
    assert!(matches!(j.prune(), Err(JournalError::Poisoned)));
    assert_eq!(all(&j).len(), 1);
}

#[test]
fn a_disk_below_the_reserve_refuses_writes_without_poisoning_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        j.append(vec![upsert(1)], None).unwrap();
    }
    // No disk has u64::MAX bytes free: every write path refuses, retriably, and writes nothing.
    let full = JournalOptions {
        min_free_bytes: u64::MAX,
        ..JournalOptions::default()
    };
    let j = Journal::open(dir.path(), full).unwrap();
    let err = j.append(vec![upsert(2)], None).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::DiskFull {
                reserve: u64::MAX,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retriable() && !err.is_corruption(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(
            "bytes free, less than the 18446744073709551615 bytes the journal keeps in reserve"
        ),
        "{text}"
    );
    assert!(matches!(
        j.set_cursor(CURSOR_PROJECTION, 1),
        Err(JournalError::DiskFull { .. })
    ));
    assert!(!j.is_poisoned(), "a refusal is not a failed write");
    assert_eq!(all(&j).iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
    drop(j);
    // Space is back (the default reserve on a test disk): the same append gets the next seq.
    let j = open(dir.path());
    assert_eq!(j.append(vec![upsert(2)], None).unwrap().first_seq, Some(2));
}

#[test]
fn concurrent_appends_share_flushes_and_get_disjoint_contiguous_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    let acks: Vec<(u64, AppendAck)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let j = j.clone();
                s.spawn(move || {
                    (0..50u64)
                        .map(|i| {
                            let base = t * 1000 + i * 10;
                            (
                                base,
                                j.append((base..base + 3).map(upsert).collect(), None)
                                    .unwrap(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let records = all(&j);
    assert_eq!(records.len(), 600);
    assert_eq!(j.last_seq(), Some(600));
    for (base, ack) in acks {
        let first = ack.first_seq.unwrap();
        assert_eq!(ack.last_seq, Some(first + 2));
        for k in 0..3 {
            assert_eq!(records[(first + k - 1) as usize].event, upsert(base + k));
        }
    }
}

#[test]
fn a_held_journal_is_reported_as_locked_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open(dir.path());
    let t0 = std::time::Instant::now();
    let err = Journal::open(dir.path(), JournalOptions::default()).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err:?}");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(2));
    assert!(err.is_retriable());
}

#[test]
fn open_existing_never_creates_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        Journal::open_existing(&missing),
        Err(JournalError::NotFound { .. })
    ));
    assert!(!missing.exists());
    assert!(matches!(
        Journal::open_existing(dir.path()),
        Err(JournalError::NotAJournal { .. })
    ));
    let foreign = dir.path().join("foreign");
    sled::open(&foreign).unwrap().insert("x", "y").unwrap();
    let err = Journal::open_existing(&foreign).unwrap_err();
    assert!(err.to_string().contains("not a cloudsync journal"), "{err}");
    let err = Journal::open(&foreign, JournalOptions::default()).unwrap_err();
    assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");
}

#[test]
fn a_newer_format_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = raw_sled(dir.path());
        db.open_tree(cloudsync_migrations::META_TREE)
            .unwrap()
            .insert(cloudsync_migrations::VERSION_KEY, &2u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    for err in [
        Journal::open(dir.path(), JournalOptions::default()).unwrap_err(),
        Journal::open_existing(dir.path()).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            text.contains("v2") && text.contains("downgrades are refused"),
            "{text}"
        );
    }
}

#[test]
fn oversized_records_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    let big = Event::PasswordHashChanged {
        domain: "d".into(),
        guid: Guid([0; 16]),
        org_id_hash: "x".repeat(MAX_PAYLOAD),
    };
    assert!(matches!(
        j.append(vec![upsert(1), big], None),
        Err(JournalError::TooLarge { .. })
    ));
    assert_eq!(j.last_seq(), None);
    assert_eq!(j.append(vec![upsert(1)], None).unwrap().first_seq, Some(1));
}

/// Found by `cloudsync bench --objects 300000`: a group of 250,000 members (~60-byte DNs) is a
/// 15 MiB event the journal accepted, and then could not read back ("payload does not decode:
/// LimitExceeded"): bincode's limit counts the memory a decode claims (24 bytes per `Vec` header
/// besides the bytes), which is larger than the encoded payload.
#[test]
fn every_record_the_journal_accepts_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    let member =
        |i: usize| format!("CN=schmidt{i:07},OU=Support,OU=S012,OU=EMEA,DC=contoso,DC=com");
    let group = Event::ObjectUpserted {
        domain: "contoso.com".into(),
        guid: Guid([7; 16]),
        usn: 1,
        dn: "CN=All Staff,OU=Groups,OU=EMEA,DC=contoso,DC=com".into(),
        class: ObjectClass::Group,
        attributes: vec![Attribute {
            name: "member".into(),
            values: (0..250_000).map(|i| member(i).into_bytes()).collect(),
        }],
        full_image: true,
    };
    let size = codec::encode_event(1, 0, &group).unwrap().1.len();
    assert!(size > 12 << 20 && size < MAX_PAYLOAD, "{size}");
    j.append(vec![group.clone()], None).unwrap();
    let back: Vec<Record> = j.read(1).collect::<Result<_, _>>().unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event, group);
    assert!(j.verify().unwrap().is_ok());
}

#[tokio::test]
async fn append_async_runs_off_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path());
    let ack = j
        .append_async(vec![upsert(1)], Some(cookie(1)))
        .await
        .unwrap();
    assert_eq!(ack.first_seq, Some(1));
}
