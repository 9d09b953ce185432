//! The migration framework against real sled databases, and the frozen v1 types against the golden fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudsync_migrations::{
    LATEST_VERSION, META_TREE, MigrationError, STEPS, VERSION_KEY, check, migrate, stored_version,
    v1,
};

fn temp_db() -> sled::Db {
    sled::Config::new().temporary(true).open().unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn steps_form_one_chain_from_v0_to_the_latest_version() {
    for (i, step) in STEPS.iter().enumerate() {
        assert_eq!(step.from, i as u32, "step {} is out of order", step.name);
    }
    assert_eq!(STEPS.len() as u32, LATEST_VERSION);
}

#[test]
fn a_fresh_database_is_v0_and_migrates_to_v1_with_the_layout() {
    let db = temp_db();
    assert_eq!(stored_version(&db).unwrap(), None);
    let done = migrate(&db, 1).unwrap();
    assert_eq!((done.from, done.to), (0, 1));
    assert_eq!(done.steps, vec!["create-v1-layout"]);
    assert_eq!(stored_version(&db).unwrap(), Some(1));
    // The layout: a high-water mark of 0 in a v1 envelope.
    let mark = db
        .open_tree(v1::JOURNAL_TREE)
        .unwrap()
        .get(v1::HIGH_WATER_KEY)
        .unwrap()
        .unwrap();
    let (ty, payload) = v1::envelope::open(&mark).unwrap();
    assert_eq!((ty, payload), (v1::envelope::TYPE_HIGH_WATER, &[0u8][..]));
    // Running again does nothing.
    let again = migrate(&db, 1).unwrap();
    assert_eq!((again.from, again.to, again.steps.len()), (1, 1, 0));
    assert_eq!(check(&db, 1).unwrap(), 1);
}

#[test]
fn a_newer_database_is_refused_and_left_untouched() {
    let db = temp_db();
    db.open_tree(META_TREE)
        .unwrap()
        .insert(VERSION_KEY, &7u32.to_be_bytes())
        .unwrap();
    let err = migrate(&db, 1).unwrap_err();
    assert!(matches!(
        err,
        MigrationError::NewerThanBuild {
            found: 7,
            supported: 1
        }
    ));
    assert!(err.to_string().contains("downgrades are refused"), "{err}");
    assert!(matches!(
        check(&db, 1),
        Err(MigrationError::NewerThanBuild { .. })
    ));
    assert_eq!(stored_version(&db).unwrap(), Some(7));
}

#[test]
fn an_older_database_needs_migration_before_tooling_reads_it() {
    let db = temp_db();
    assert!(matches!(
        check(&db, 1),
        Err(MigrationError::NotAJournal { .. })
    ));
    db.open_tree(META_TREE)
        .unwrap()
        .insert(VERSION_KEY, &0u32.to_be_bytes())
        .unwrap();
    assert!(matches!(
        check(&db, 1),
        Err(MigrationError::NeedsMigration {
            found: 0,
            supported: 1
        })
    ));
}

#[test]
fn unversioned_foreign_data_is_not_adopted() {
    let db = temp_db();
    db.insert(b"someone-else", b"data").unwrap();
    assert!(matches!(
        migrate(&db, 1),
        Err(MigrationError::NotAJournal { .. })
    ));
    let db = temp_db();
    db.open_tree("other-app").unwrap();
    assert!(matches!(
        migrate(&db, 1),
        Err(MigrationError::NotAJournal { .. })
    ));
    assert_eq!(stored_version(&db).unwrap(), None);
}

#[test]
fn a_corrupt_version_marker_is_reported() {
    let db = temp_db();
    db.open_tree(META_TREE)
        .unwrap()
        .insert(VERSION_KEY, &[1u8, 2])
        .unwrap();
    assert!(matches!(
        stored_version(&db),
        Err(MigrationError::CorruptVersion { len: 2 })
    ));
}

#[test]
fn the_frozen_v1_types_read_and_rewrite_the_golden_fixture_byte_for_byte() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/journal-v1/entries.hex"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut events = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.split_once(' ').unwrap();
        let (key, value) = (unhex(key), unhex(value));
        let (ty, payload) = v1::envelope::open(&value).unwrap();
        let reencoded = match ty {
            v1::envelope::TYPE_EVENT => {
                assert_eq!(key[0], v1::EVENT_PREFIX);
                let seq = u64::from_be_bytes(key[1..9].try_into().unwrap());
                assert_eq!(v1::event_key(seq).to_vec(), key);
                let (stored, used): (v1::types::StoredEvent, usize) =
                    bincode::serde::decode_from_slice(payload, v1::envelope::BINCODE).unwrap();
                assert_eq!(used, payload.len());
                events += 1;
                bincode::serde::encode_to_vec(&stored, v1::envelope::BINCODE).unwrap()
            }
            v1::envelope::TYPE_CHECKPOINT => {
                assert_eq!(key[0], v1::CHECKPOINT_PREFIX);
                let (stored, _): (v1::types::StoredCheckpoint, usize) =
                    bincode::serde::decode_from_slice(payload, v1::envelope::BINCODE).unwrap();
                assert_eq!(stored.domain, "corp.example.test");
                assert_eq!(stored.source, v1::types::SourceKind::LdapDirSync);
                bincode::serde::encode_to_vec(&stored, v1::envelope::BINCODE).unwrap()
            }
            v1::envelope::TYPE_CURSOR | v1::envelope::TYPE_HIGH_WATER => {
                let (seq, _): (u64, usize) =
                    bincode::serde::decode_from_slice(payload, v1::envelope::BINCODE).unwrap();
                bincode::serde::encode_to_vec(seq, v1::envelope::BINCODE).unwrap()
            }
            other => panic!("unknown record type {other}"),
        };
        assert_eq!(v1::envelope::seal(ty, &reencoded), value);
    }
    assert_eq!(events, 10);
}
