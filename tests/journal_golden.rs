//! Golden fixture of journal format v1: the stored key and value bytes of a small journal, committed under
//! `tests/fixtures/journal-v1/entries.hex` and asserted byte for byte in both directions.
//!
//! The fixture was generated once, when v1 was released, with
//! `CLOUDSYNC_WRITE_FIXTURES=1 cargo test --test journal_golden -- --ignored`; it must never be regenerated
//! for v1. If this test fails, the on-disk format changed: add format v2 and a migration step instead.
//! One record is additionally assembled by hand from the bincode and envelope specifications, so the
//! fixture does not only mirror the code that wrote it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass, ResyncReason, SourceKind};
use cloudsync_agent::journal::{Checkpoint, codec};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/journal-v1/entries.hex"
);
const T0: i64 = 1_764_064_800_000; // 2025-11-25T10:00:00Z

fn guid(text: &str) -> Guid {
    Guid::parse(text).unwrap()
}

/// One event of every kind, with values an AD would produce.
fn events() -> Vec<Event> {
    let domain = "corp.example.test".to_string();
    let alice = guid("6f9619ff-8b86-d011-b42d-00c04fc964ff");
    let staff = guid("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9");
    vec![
        Event::ResyncStarted {
            domain: domain.clone(),
            source: SourceKind::LdapDirSync,
            reason: ResyncReason::Initial,
        },
        Event::ObjectUpserted {
            domain: domain.clone(),
            guid: alice,
            usn: 12_801,
            dn: "CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=test".into(),
            class: ObjectClass::User,
            attributes: vec![
                Attribute::text("sAMAccountName", &["alice"]),
                Attribute::text("proxyAddresses", &["SMTP:alice@corp.example.test", "smtp:a@corp.example.test"]),
                Attribute {
                    name: "objectGUID".into(),
                    values: vec![alice.0.to_vec()],
                },
                Attribute {
                    name: "userAccountControl".into(),
                    values: vec![b"512".to_vec()],
                },
            ],
            full_image: true,
        },
        Event::MembersChanged {
            domain: domain.clone(),
            guid: staff,
            usn: 12_802,
            attribute: "member".into(),
            added: vec!["CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=test".into()],
            removed: vec![],
        },
        Event::ObjectMoved {
            domain: domain.clone(),
            guid: alice,
            usn: 12_803,
            old_dn: Some("CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=test".into()),
            new_dn: "CN=Alice Example,OU=Sales,DC=corp,DC=example,DC=test".into(),
        },
        Event::PasswordChanged {
            domain: domain.clone(),
            guid: alice,
            usn: 12_804,
            pwd_last_set: Some(134_070_384_000_000_000),
        },
        Event::PasswordHashChanged {
            domain: domain.clone(),
            guid: alice,
            org_id_hash: "v1;PPH1_MD4,0102030405060708090a,1000,abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789;"
                .into(),
        },
        Event::ObjectDeleted {
            domain: domain.clone(),
            guid: staff,
            usn: 12_805,
            tombstone_dn: "CN=Staff\\0ADEL:0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9,CN=Deleted Objects,DC=corp,DC=example,DC=test".into(),
            last_known_parent: Some("OU=Groups,DC=corp,DC=example,DC=test".into()),
        },
        Event::ObjectUpserted {
            domain: domain.clone(),
            guid: guid("11111111-2222-3333-4444-555555555555"),
            usn: 0,
            dn: "CN=Printer,DC=corp,DC=example,DC=test".into(),
            class: ObjectClass::Other("printQueue".into()),
            attributes: vec![Attribute { name: "description".into(), values: vec![] }],
            full_image: false,
        },
        Event::ResyncStarted {
            domain: domain.clone(),
            source: SourceKind::Drsr,
            reason: ResyncReason::CookieRejected("00002024: LdapErr: DSID-0C090E2E, comment: Invalid cookie".into()),
        },
        Event::ResyncCompleted {
            domain,
            source: SourceKind::LdapDirSync,
        },
    ]
}

/// Every entry of the fixture journal, in key order as sled stores it.
fn entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let events = events();
    let mut out = vec![
        codec::encode_checkpoint(
            &Checkpoint {
                domain: "corp.example.test".into(),
                source: SourceKind::LdapDirSync,
                data: vec![0x30, 0x0d, 0x02, 0x04, 0x80, 0x00, 0x08, 0x01, 0x00, 0xff],
            },
            events.len() as u64,
        )
        .unwrap(),
    ];
    for (i, event) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        out.push(codec::encode_event(seq, T0 + i as i64, event).unwrap());
    }
    out.push(codec::encode_cursor("projection", 7).unwrap());
    out.push(codec::encode_high_water(events.len() as u64).unwrap());
    out.sort();
    out
}

fn render(entries: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut text = String::from(
        "# cloudsync journal format v1: `<key hex> <value hex>` per stored entry of tree `journal`.\n",
    );
    for (k, v) in entries {
        text.push_str(&format!("{} {}\n", hex::encode(k), hex::encode(v)));
    }
    text
}

fn parse(text: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (hex::decode(k).unwrap(), hex::decode(v.trim()).unwrap())
        })
        .collect()
}

#[test]
#[ignore = "writes the fixture; run only when a new format version is released"]
fn write_fixture() {
    if std::env::var_os("CLOUDSYNC_WRITE_FIXTURES").is_some() {
        std::fs::write(FIXTURE, render(&entries())).unwrap();
    }
}

#[test]
fn encoding_matches_the_v1_fixture_byte_for_byte() {
    let fixture = parse(&std::fs::read_to_string(FIXTURE).unwrap());
    let ours = entries();
    assert_eq!(fixture.len(), ours.len());
    for ((fk, fv), (ok, ov)) in fixture.iter().zip(&ours) {
        assert_eq!(hex::encode(fk), hex::encode(ok));
        assert_eq!(
            hex::encode(fv),
            hex::encode(ov),
            "value of key {}",
            hex::encode(fk)
        );
    }
}

#[test]
fn the_v1_fixture_decodes_to_the_events() {
    let fixture = parse(&std::fs::read_to_string(FIXTURE).unwrap());
    let decoded: Vec<_> = fixture
        .iter()
        .filter(|(k, _)| k[0] == b'e')
        .map(|(k, v)| {
            let seq = u64::from_be_bytes(k[1..9].try_into().unwrap());
            codec::decode_event(seq, v).unwrap()
        })
        .collect();
    let expected = events();
    assert_eq!(decoded.len(), expected.len());
    for (i, (record, event)) in decoded.iter().zip(expected).enumerate() {
        assert_eq!(record.seq, i as u64 + 1);
        assert_eq!(record.appended_at_unix_ms, T0 + i as i64);
        assert_eq!(record.event, event);
    }
}

#[test]
fn a_hand_assembled_record_matches_the_encoder() {
    // crc32c check value from RFC 3720 (iSCSI) B.4 / the CRC catalogue: "123456789" -> 0xE3069283.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    // StoredEvent { appended_at_unix_ms: 100, event: ResyncCompleted { domain: "a.test", source: Drsr } } in
    // bincode standard(): i64 100 zigzags to 200 (< 251: one byte), variant 7, string = varint length + bytes,
    // SourceKind::Drsr = variant 2.
    let mut payload = vec![200u8, 7, 6];
    payload.extend_from_slice(b"a.test");
    payload.push(2);
    let mut expected = b"CSJR".to_vec();
    expected.extend_from_slice(&[1, 0, 1, 0]); // version 1 LE, record type event, reserved
    expected.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut covered = expected.clone();
    covered.extend_from_slice(&payload);
    expected.extend_from_slice(&crc32c::crc32c(&covered).to_le_bytes());
    expected.extend_from_slice(&payload);
    let event = Event::ResyncCompleted {
        domain: "a.test".into(),
        source: SourceKind::Drsr,
    };
    let (key, value) = codec::encode_event(0x0102, 100, &event).unwrap();
    assert_eq!(key, [b'e', 0, 0, 0, 0, 0, 0, 0x01, 0x02]);
    assert_eq!(hex::encode(value), hex::encode(expected));
}
