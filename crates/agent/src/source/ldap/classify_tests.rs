//! Classification tests with entries shaped like the measured Samba 4.17 DirSync output (notes §5).

use std::collections::HashMap;

use super::*;
use crate::source::ldap::entry::tests::{entry, t};

const D: &str = "corp.example.test";
const G: [u8; 16] = [
    0xe6, 0xef, 0xf3, 0x6f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
];

fn guid_attr() -> (&'static str, Vec<Vec<u8>>) {
    ("objectGUID", vec![G.to_vec()])
}

fn run(e: RawEntry, full_read: bool, lookup: &HashMap<Guid, ObjectInfo>) -> Vec<Event> {
    classify(
        e,
        &Context {
            domain: D,
            full_read,
            lookup,
        },
    )
    .unwrap()
}

fn user_lookup(usn: u64) -> HashMap<Guid, ObjectInfo> {
    HashMap::from([(
        Guid(G),
        ObjectInfo {
            class: ObjectClass::User,
            usn,
        },
    )])
}

#[test]
fn attribute_change_is_a_delta_upsert_without_bookkeeping() {
    let e = entry(
        "CN=user00010,OU=SyncUsers,DC=corp,DC=example,DC=test",
        &[
            ("telephoneNumber", t(&["+1 555 0100"])),
            guid_attr(),
            ("instanceType", t(&["4"])),
        ],
    );
    let events = run(e, false, &user_lookup(8047));
    assert_eq!(
        events,
        vec![Event::ObjectUpserted {
            domain: D.into(),
            guid: Guid(G),
            usn: 8047,
            dn: "CN=user00010,OU=SyncUsers,DC=corp,DC=example,DC=test".into(),
            class: ObjectClass::User,
            attributes: vec![Attribute::text("telephoneNumber", &["+1 555 0100"])],
            full_image: false,
        }]
    );
}

#[test]
fn password_reset_is_a_signal_with_pwd_last_set_and_no_secret() {
    let e = entry(
        "CN=user00011,OU=SyncUsers,DC=corp,DC=example,DC=test",
        &[
            ("pwdLastSet", t(&["134087654321000000"])),
            ("dBCSPwd", vec![]),
            ("unicodePwd", vec![]),
            ("ntPwdHistory", vec![]),
            ("supplementalCredentials", vec![b"secret-bytes".to_vec()]),
            guid_attr(),
            ("instanceType", t(&["4"])),
        ],
    );
    let events = run(e, false, &user_lookup(9000));
    assert_eq!(
        events,
        vec![Event::PasswordChanged {
            domain: D.into(),
            guid: Guid(G),
            usn: 9000,
            pwd_last_set: Some(134_087_654_321_000_000),
        }]
    );
}

#[test]
fn move_and_rename_is_an_object_moved_with_unknown_old_dn() {
    let e = entry(
        "CN=user00016-moved,OU=Sync2,DC=corp,DC=example,DC=test",
        &[
            ("parentGUID", vec![vec![9u8; 16]]),
            ("name", t(&["user00016-moved"])),
            guid_attr(),
            ("instanceType", t(&["4"])),
        ],
    );
    let events = run(e, false, &user_lookup(1));
    // The new `name` is a changed attribute too: a mapping that falls back to the RDN reads it.
    assert_eq!(
        events,
        vec![
            Event::ObjectMoved {
                domain: D.into(),
                guid: Guid(G),
                usn: 1,
                old_dn: None,
                new_dn: "CN=user00016-moved,OU=Sync2,DC=corp,DC=example,DC=test".into(),
            },
            Event::ObjectUpserted {
                domain: D.into(),
                guid: Guid(G),
                usn: 1,
                dn: "CN=user00016-moved,OU=Sync2,DC=corp,DC=example,DC=test".into(),
                class: ObjectClass::User,
                attributes: vec![Attribute::text("name", &["user00016-moved"])],
                full_image: false,
            }
        ]
    );
}

#[test]
fn incremental_member_values_become_added_and_removed() {
    let lookup = HashMap::from([(
        Guid(G),
        ObjectInfo {
            class: ObjectClass::Group,
            usn: 77,
        },
    )]);
    let e = entry(
        "CN=G1,OU=SyncUsers,DC=corp,DC=example,DC=test",
        &[
            (
                "member;range=0-0",
                t(&[
                    "<GUID=aa>;<SID=S-1-5-21-1>;CN=user00013,OU=SyncUsers,DC=corp,DC=example,DC=test",
                ]),
            ),
            (
                "member;range=1-1",
                t(&["CN=user00015,OU=SyncUsers,DC=corp,DC=example,DC=test"]),
            ),
            guid_attr(),
            ("instanceType", t(&["4"])),
        ],
    );
    let events = run(e, false, &lookup);
    assert_eq!(
        events,
        vec![Event::MembersChanged {
            domain: D.into(),
            guid: Guid(G),
            usn: 77,
            attribute: "member".into(),
            added: vec!["CN=user00015,OU=SyncUsers,DC=corp,DC=example,DC=test".into()],
            removed: vec!["CN=user00013,OU=SyncUsers,DC=corp,DC=example,DC=test".into()],
        }]
    );
}

#[test]
fn tombstone_is_a_delete_keyed_by_guid_even_without_lookup() {
    let dn = "CN=user00012\\0ADEL:6ff3efe6-0201-0403-0506-0708090a0b0c,CN=Deleted Objects,DC=corp,DC=example,DC=test";
    let e = entry(
        dn,
        &[
            ("isDeleted", t(&["TRUE"])),
            (
                "name",
                t(&["user00012\nDEL:6ff3efe6-0201-0403-0506-0708090a0b0c"]),
            ),
            (
                "lastKnownParent",
                t(&["<GUID=0011>;OU=SyncUsers,DC=corp,DC=example,DC=test"]),
            ),
            ("parentGUID", vec![vec![1u8; 16]]),
            guid_attr(),
            ("displayName", vec![]),
            ("unicodePwd", vec![]),
        ],
    );
    let events = run(e, false, &HashMap::new());
    assert_eq!(
        events,
        vec![Event::ObjectDeleted {
            domain: D.into(),
            guid: Guid(G),
            usn: 0,
            tombstone_dn: dn.into(),
            last_known_parent: Some("OU=SyncUsers,DC=corp,DC=example,DC=test".into()),
        }]
    );
}

#[test]
fn full_read_is_a_full_image_with_ranged_chunks_merged_and_secrets_dropped() {
    let e = entry(
        "CN=G2,DC=corp,DC=example,DC=test",
        &[
            ("objectClass", t(&["top", "group"])),
            ("member;range=0-1", t(&["CN=a", "CN=b"])),
            ("member;range=2-*", t(&["CN=c"])),
            ("uSNChanged", t(&["4242"])),
            ("unicodePwd", vec![b"hash".to_vec()]),
            guid_attr(),
        ],
    );
    let events = run(e, true, &HashMap::new());
    let [
        Event::ObjectUpserted {
            class,
            usn,
            attributes,
            full_image,
            ..
        },
    ] = events.as_slice()
    else {
        panic!("one upsert expected, got {events:?}");
    };
    assert_eq!(
        (class, *usn, *full_image),
        (&ObjectClass::Group, 4242, true)
    );
    let names: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["objectClass", "member", "uSNChanged", "objectGUID"]);
    assert_eq!(
        attributes[1],
        Attribute::text("member", &["CN=a", "CN=b", "CN=c"])
    );
}

#[test]
fn created_in_delta_is_a_full_image_and_computers_are_skipped() {
    let new_user = entry(
        "CN=new,DC=corp,DC=example,DC=test",
        &[
            (
                "objectClass",
                t(&["top", "person", "organizationalPerson", "user"]),
            ),
            ("name", t(&["new"])),
            ("parentGUID", vec![vec![1u8; 16]]),
            ("unicodePwd", vec![]),
            ("pwdLastSet", t(&["5"])),
            guid_attr(),
        ],
    );
    let events = run(new_user, false, &HashMap::new());
    assert_eq!(events.len(), 2);
    assert!(matches!(
        &events[0],
        Event::ObjectUpserted {
            full_image: true,
            class: ObjectClass::User,
            ..
        }
    ));
    assert!(matches!(
        &events[1],
        Event::PasswordChanged {
            pwd_last_set: Some(5),
            ..
        }
    ));

    // Created without a password: Samba still lists the secret attributes, but pwdLastSet is 0.
    let no_password = entry(
        "CN=new2,DC=corp,DC=example,DC=test",
        &[
            ("objectClass", t(&["top", "user"])),
            ("unicodePwd", vec![]),
            ("pwdLastSet", t(&["0"])),
            ("logonHours", vec![]),
            guid_attr(),
        ],
    );
    let events = run(no_password, false, &HashMap::new());
    let [Event::ObjectUpserted { attributes, .. }] = events.as_slice() else {
        panic!("one upsert expected, got {events:?}");
    };
    let names: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["objectClass", "pwdLastSet", "objectGUID"]);

    let computer = entry(
        "CN=PC1,DC=corp,DC=example,DC=test",
        &[
            ("objectClass", t(&["top", "user", "computer"])),
            guid_attr(),
        ],
    );
    assert!(run(computer, true, &HashMap::new()).is_empty());
}

#[test]
fn missing_guid_is_an_error_and_text_guid_is_accepted() {
    let e = entry("CN=x,DC=y", &[("objectClass", t(&["user"]))]);
    assert_eq!(
        classify(
            e,
            &Context {
                domain: D,
                full_read: true,
                lookup: &HashMap::new()
            }
        ),
        Err(ClassifyError::MissingGuid {
            dn: "CN=x,DC=y".into()
        })
    );
    let e = entry(
        "CN=x,DC=y",
        &[
            ("objectClass", t(&["contact"])),
            ("objectGUID", t(&["6ff3efe6-0201-0403-0506-0708090a0b0c"])),
        ],
    );
    let events = run(e, true, &HashMap::new());
    assert_eq!(events[0].guid(), Some(Guid(G)));
}

#[test]
fn extended_dn_prefixes_are_stripped() {
    assert_eq!(strip_extended_dn("<GUID=1>;<SID=2>;CN=a,DC=b"), "CN=a,DC=b");
    assert_eq!(strip_extended_dn("CN=a,DC=b"), "CN=a,DC=b");
    assert_eq!(strip_extended_dn("<broken"), "<broken");
}

#[test]
fn attribute_removed_in_ad_is_a_delta_with_zero_values() {
    // `ldapmodify … delete: title` and `delete: otherMobile` on Samba 4.17: the delta entry carries both
    // attributes present with no values (docs/ldap.md § Cleared attributes).
    let e = entry(
        "CN=user00010,OU=SyncUsers,DC=corp,DC=example,DC=test",
        &[
            ("title", vec![]),
            ("otherMobile", vec![]),
            ("telephoneNumber", t(&["+1 555 0100"])),
            guid_attr(),
            ("instanceType", t(&["4"])),
        ],
    );
    let events = run(e, false, &user_lookup(8050));
    assert_eq!(
        events,
        vec![Event::ObjectUpserted {
            domain: D.into(),
            guid: Guid(G),
            usn: 8050,
            dn: "CN=user00010,OU=SyncUsers,DC=corp,DC=example,DC=test".into(),
            class: ObjectClass::User,
            attributes: vec![
                Attribute::text::<&str>("title", &[]),
                Attribute::text::<&str>("otherMobile", &[]),
                Attribute::text("telephoneNumber", &["+1 555 0100"]),
            ],
            full_image: false,
        }]
    );
    // A full image lists only attributes with values.
    let full = entry(
        "CN=user00010,OU=SyncUsers,DC=corp,DC=example,DC=test",
        &[
            ("objectClass", t(&["top", "person", "user"])),
            ("title", vec![]),
            ("sn", t(&["User10"])),
            guid_attr(),
        ],
    );
    let events = run(full, true, &HashMap::new());
    let Event::ObjectUpserted { attributes, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert!(
        !attributes.iter().any(|a| a.name == "title"),
        "{attributes:?}"
    );
}

#[test]
fn a_page_applies_deletes_then_moves_then_changes_then_memberships() {
    // Measured on Samba 4.17 (differential test, ldapsearch -E dirSync): a re-created object came before
    // the tombstone of the deleted one with the same UPN; `member;range=0-0` names a member by its DN at
    // the removal, `member;range=1-1` by its DN now.
    let g = |n: u8| Guid([n; 16]);
    let upsert = |n: u8| Event::ObjectUpserted {
        domain: D.into(),
        guid: g(n),
        usn: 0,
        dn: format!("CN=u{n},DC=corp,DC=example,DC=test"),
        class: ObjectClass::User,
        attributes: vec![],
        full_image: true,
    };
    let members = Event::MembersChanged {
        domain: D.into(),
        guid: g(1),
        usn: 0,
        attribute: "member".into(),
        added: vec![],
        removed: vec!["CN=u3 new,DC=corp,DC=example,DC=test".into()],
    };
    let moved = Event::ObjectMoved {
        domain: D.into(),
        guid: g(3),
        usn: 0,
        old_dn: None,
        new_dn: "CN=u3 new,DC=corp,DC=example,DC=test".into(),
    };
    let deleted = Event::ObjectDeleted {
        domain: D.into(),
        guid: g(4),
        usn: 0,
        tombstone_dn: "CN=u2\\0ADEL:x,CN=Deleted Objects,DC=corp,DC=example,DC=test".into(),
        last_known_parent: None,
    };
    let page = vec![
        members.clone(),
        upsert(2),
        moved.clone(),
        upsert(5),
        deleted.clone(),
    ];
    // The removal goes before the moves (a DN from before a later move) and again after them (a DN
    // from after an earlier move); additions only after.
    let removal_only = Event::MembersChanged {
        domain: D.into(),
        guid: g(1),
        usn: 0,
        attribute: "member".into(),
        added: vec![],
        removed: vec!["CN=u3 new,DC=corp,DC=example,DC=test".into()],
    };
    assert_eq!(
        page_order(page),
        vec![deleted, removal_only, moved, upsert(2), upsert(5), members]
    );
    let added_only = Event::MembersChanged {
        domain: D.into(),
        guid: g(1),
        usn: 0,
        attribute: "member".into(),
        added: vec!["CN=u3 new,DC=corp,DC=example,DC=test".into()],
        removed: vec![],
    };
    assert_eq!(page_order(vec![added_only.clone()]), vec![added_only]);
}
