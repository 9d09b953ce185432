//! `cloudsync journal …` end to end: a journal written through the library, read by the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass, SourceKind};
use cloudsync_agent::journal::{Checkpoint, Journal, JournalOptions, codec};

const ALICE: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
const STAFF: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
const SID: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0];

fn cloudsync(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["--log", "warn"])
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn events() -> Vec<Event> {
    let alice = Guid::parse(ALICE).unwrap();
    vec![
        Event::ObjectUpserted {
            domain: "corp.example.test".into(),
            guid: alice,
            usn: 100,
            dn: "CN=Alice,OU=Staff,DC=corp,DC=example,DC=test".into(),
            class: ObjectClass::User,
            attributes: vec![
                Attribute::text("displayName", &["Alice Ñandú"]),
                Attribute {
                    name: "objectSid".into(),
                    values: vec![SID.to_vec()],
                },
            ],
            full_image: true,
        },
        Event::MembersChanged {
            domain: "corp.example.test".into(),
            guid: Guid::parse(STAFF).unwrap(),
            usn: 101,
            attribute: "member".into(),
            added: vec!["CN=Alice,OU=Staff,DC=corp,DC=example,DC=test".into()],
            removed: vec![],
        },
        Event::PasswordHashChanged {
            domain: "corp.example.test".into(),
            guid: alice,
            org_id_hash: "v1;PPH1_MD4,0011,1000,ffee;".into(),
        },
        Event::ObjectDeleted {
            domain: "lab.example.test".into(),
            guid: Guid::parse(STAFF).unwrap(),
            usn: 7,
            tombstone_dn: "CN=Staff\\0ADEL:x,CN=Deleted Objects,DC=lab,DC=example,DC=test".into(),
            last_known_parent: None,
        },
    ]
}

fn make_journal(dir: &Path) {
    let j = Journal::open(dir, JournalOptions::default()).unwrap();
    let cookie = Checkpoint {
        domain: "corp.example.test".into(),
        source: SourceKind::LdapDirSync,
        data: vec![0xca, 0xfe],
    };
    j.append(events(), Some(cookie)).unwrap();
    j.set_cursor("projection", 2).unwrap();
}

/// Opens the sled database directly, waiting (bounded) for the writer's just-dropped handle to release the
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

#[test]
fn inspect_shows_range_counts_cursors_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    make_journal(dir.path());
    let out = cloudsync(&["journal", "inspect"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "format version: v1",
        "records:        4 (seq 1..=4)",
        "object-upserted          1",
        "members-changed          1",
        "corp.example.test        3",
        "lab.example.test         1",
        "projection               seq 2",
        "ldap-dirsync  2 bytes  cafe",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn replay_filters_by_range_kind_and_object() {
    let dir = tempfile::tempdir().unwrap();
    make_journal(dir.path());
    let out = cloudsync(
        &["journal", "replay", "--kind", "members-changed"],
        dir.path(),
    );
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.trim_start().starts_with("2 ")
            && text.contains(STAFF)
            && text.contains("member: +1 -0"),
        "{text}"
    );

    let out = cloudsync(
        &["journal", "replay", "--from", "2", "--to", "3"],
        dir.path(),
    );
    let text = stdout(&out);
    let seqs: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(seqs, ["2", "3"]);

    let out = cloudsync(
        &[
            "journal",
            "replay",
            "--json",
            "--object",
            &ALICE.to_uppercase(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|v| v["guid"] == ALICE));
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["kind"], "password-hash-changed");
    assert!(
        !lines[1].to_string().contains("PPH1"),
        "the hash must be redacted in replay"
    );

    let bad = cloudsync(&["journal", "replay", "--object", "not-a-guid"], dir.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("not a GUID"));
}

#[test]
fn export_writes_json_lines_with_base64_binary_values() {
    let dir = tempfile::tempdir().unwrap();
    make_journal(dir.path());
    let out = cloudsync(&["journal", "export"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let attrs = &lines[0]["event"]["attributes"];
    assert_eq!(attrs[0]["values"][0], "Alice Ñandú");
    let sid_b64 = base64::engine::general_purpose::STANDARD.encode(SID);
    assert_eq!(attrs[1]["base64"][0], sid_b64.as_str());
    assert_eq!(lines[3]["domain"], "lab.example.test");
    assert_eq!(
        lines[3]["event"]["last_known_parent"],
        serde_json::Value::Null
    );

    let out = cloudsync(
        &["journal", "export", "--include-password-hashes"],
        dir.path(),
    );
    assert!(stdout(&out).contains("v1;PPH1_MD4,0011,1000,ffee;"));
}

#[test]
fn verify_passes_a_sound_journal_and_names_the_corrupt_seq() {
    let dir = tempfile::tempdir().unwrap();
    make_journal(dir.path());
    let out = cloudsync(&["journal", "verify"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok: 4 records (seq 1..=4)"),
        "{}",
        stdout(&out)
    );

    {
        let db = raw_sled(dir.path());
        let tree = db.open_tree("journal").unwrap();
        let mut bytes = tree.get(codec::event_key(2)).unwrap().unwrap().to_vec();
        bytes[20] ^= 0x40;
        tree.insert(codec::event_key(2), bytes).unwrap();
        db.flush().unwrap();
    }
    let out = cloudsync(&["journal", "verify"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("journal record seq 2 is corrupt") && err.contains("CRC32C"),
        "{err}"
    );
    // replay stops with the same reason instead of printing garbage.
    let out = cloudsync(&["journal", "replay"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(stderr(&out).contains("seq 2"), "{}", stderr(&out));
}

#[test]
fn a_missing_or_foreign_directory_is_a_clear_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for cmd in ["inspect", "replay", "verify", "export"] {
        let out = cloudsync(&["journal", cmd], &missing);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&out).contains("does not exist"),
            "{cmd}: {}",
            stderr(&out)
        );
        let out = cloudsync(&["journal", cmd], dir.path());
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&out).contains("is not a cloudsync journal"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn version_names_the_journal_format() {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .arg("--version")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")) && text.contains("journal format v1"),
        "{text}"
    );
}
