//! Scenario tests of the projector: each feeds events and checks the operations against values worked
//! out by hand from the event data (not from the code).

use super::config::ProjectionConfig;
use super::mapping::MappingSpec;
use super::ops::{ObjectKind, Operation};
use super::projector::{Output, Projector};
use super::provlog::Step;
use super::scope::{FilterClause, FilterOp, ScopeSpec};
use super::state::State;
use crate::event::{Attribute, Event, Guid, ObjectClass, ResyncReason, SourceKind};

const D: &str = "corp.example.test";

fn g(n: u8) -> Guid {
    Guid([n; 16])
}

fn b64(n: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([n; 16])
}

fn user(n: u8, dn: &str, extra: &[(&str, &str)]) -> Event {
    let mut attributes = vec![
        Attribute::text(
            "objectClass",
            &["top", "person", "organizationalPerson", "user"],
        ),
        Attribute::text("userPrincipalName", &[format!("u{n}@corp.example.test")]),
        Attribute::text("sAMAccountName", &[format!("u{n}")]),
        Attribute::text("displayName", &[format!("User {n}")]),
        Attribute::text("userAccountControl", &["512"]),
    ];
    for (k, v) in extra {
        attributes.retain(|a| !a.name.eq_ignore_ascii_case(k));
        attributes.push(Attribute::text(k, &[*v]));
    }
    Event::ObjectUpserted {
        domain: D.into(),
        guid: g(n),
        usn: 0,
        dn: dn.into(),
        class: ObjectClass::User,
        attributes,
        full_image: true,
    }
}

fn group(n: u8, dn: &str, members: &[&str]) -> Event {
    Event::ObjectUpserted {
        domain: D.into(),
        guid: g(n),
        usn: 0,
        dn: dn.into(),
        class: ObjectClass::Group,
        attributes: vec![
            Attribute::text("cn", &[format!("G{n}")]),
            Attribute::text("sAMAccountName", &[format!("g{n}")]),
            Attribute::text("groupType", &["-2147483646"]),
            Attribute::text("member", members),
        ],
        full_image: true,
    }
}

fn delta(n: u8, dn: &str, attrs: &[(&str, &[&str])]) -> Event {
    Event::ObjectUpserted {
        domain: D.into(),
        guid: g(n),
        usn: 0,
        dn: dn.into(),
        class: ObjectClass::User,
        attributes: attrs.iter().map(|(k, v)| Attribute::text(k, v)).collect(),
        full_image: false,
    }
}

fn moved(n: u8, new_dn: &str) -> Event {
    Event::ObjectMoved {
        domain: D.into(),
        guid: g(n),
        usn: 0,
        old_dn: None,
        new_dn: new_dn.into(),
    }
}

fn projector(cfg: ProjectionConfig) -> Projector {
    Projector::new(cfg.compile().unwrap(), State::default())
}

struct Run {
    p: Projector,
    seq: u64,
}

impl Run {
    fn new(cfg: ProjectionConfig) -> Run {
        Run {
            p: projector(cfg),
            seq: 0,
        }
    }

    fn feed(&mut self, e: Event) -> Vec<Operation> {
        self.seq += 1;
        let mut out = Output::default();
        self.p.apply(self.seq, &e, &mut out);
        out.ops.into_iter().map(|o| o.op).collect()
    }
}

/// A compact description of an operation for assertions.
fn short(op: &Operation) -> String {
    match op {
        Operation::Upsert(u) => format!("upsert {} {}", u.kind.as_str(), u.source_anchor),
        Operation::Delete { source_anchor, .. } => format!("delete {source_anchor}"),
        Operation::AddMember {
            group_anchor,
            member_anchor,
        } => format!("add {group_anchor} {member_anchor}"),
        Operation::RemoveMember {
            group_anchor,
            member_anchor,
        } => format!("remove {group_anchor} {member_anchor}"),
        Operation::SetPasswordHash {
            source_anchor,
            version,
            ..
        } => format!("hash {source_anchor} v{version}"),
        Operation::ImageComplete { version, .. } => format!("image complete v{version}"),
    }
}

fn shorts(ops: &[Operation]) -> Vec<String> {
    ops.iter().map(short).collect()
}

#[test]
fn user_create_maps_defaults_and_identity() {
    let mut r = Run::new(ProjectionConfig::default());
    let sid = vec![
        1u8, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0xe9, 3, 0, 0,
    ];
    let mut e = user(
        1,
        "CN=User 1,OU=Sales,DC=corp,DC=example,DC=test",
        &[("givenName", "Ann"), ("sn", "Lee"), ("title", "Boss")],
    );
    if let Event::ObjectUpserted { attributes, .. } = &mut e {
        attributes.push(Attribute {
            name: "objectSid".into(),
            values: vec![sid],
        });
        attributes.push(Attribute::text("proxyAddresses", &["SMTP:u1@x.test"]));
    }
    let ops = r.feed(e);
    assert_eq!(ops.len(), 1);
    let Operation::Upsert(u) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert_eq!(u.kind, ObjectKind::User);
    assert_eq!(u.source_anchor, b64(1));
    assert_eq!(u.version, 1);
    assert_eq!(u.attributes["userPrincipalName"], "u1@corp.example.test");
    assert_eq!(u.attributes["displayName"], "User 1");
    assert_eq!(u.attributes["givenName"], "Ann");
    assert_eq!(u.attributes["surname"], "Lee");
    assert_eq!(u.attributes["jobTitle"], "Boss");
    assert_eq!(u.attributes["accountEnabled"], true);
    assert_eq!(
        u.attributes["proxyAddresses"],
        serde_json::json!(["SMTP:u1@x.test"])
    );
    assert_eq!(u.attributes["mailNickname"], "u1");
    assert_eq!(
        u.on_premises.security_identifier.as_deref(),
        Some("S-1-5-21-1-2-3-1001")
    );
    assert_eq!(u.on_premises.sam_account_name.as_deref(), Some("u1"));
    assert_eq!(u.on_premises.domain_name.as_deref(), Some(D));
    // Disabling the account (UF_ACCOUNTDISABLE = 2) is an update with accountEnabled false.
    let ops = r.feed(delta(
        1,
        "CN=User 1,OU=Sales,DC=corp,DC=example,DC=test",
        &[("userAccountControl", &["514"])],
    ));
    let Operation::Upsert(u) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert_eq!(u.attributes["accountEnabled"], false);
    assert_eq!(
        u.attributes["givenName"], "Ann",
        "a delta keeps the other attributes"
    );
    assert_eq!(u.version, 2);
}

#[test]
fn unmapped_change_sends_nothing_and_replays_are_ignored() {
    let mut r = Run::new(ProjectionConfig::default());
    r.feed(user(1, "CN=U,DC=corp,DC=example,DC=test", &[]));
    assert!(
        r.feed(delta(
            1,
            "CN=U,DC=corp,DC=example,DC=test",
            &[("description", &["x"])]
        ))
        .is_empty()
    );
    let mut out = Output::default();
    r.p.apply(1, &user(1, "CN=Other,DC=x", &[]), &mut out);
    assert!(out.ops.is_empty());
}

#[test]
fn a_delta_of_attributes_nothing_reads_is_not_evaluated_again() {
    let mut r = Run::new(ProjectionConfig::default());
    let dn = "CN=U,DC=corp,DC=example,DC=test";
    r.feed(user(1, dn, &[]));
    let mut out = Output::default();
    r.seq += 1;
    r.p.apply(
        r.seq,
        &delta(1, dn, &[("lastLogonTimestamp", &["134067456000000000"])]),
        &mut out,
    );
    assert!(out.ops.is_empty());
    let matched: Vec<(&str, &str)> = out
        .log
        .iter()
        .filter(|e| e.step == Step::Match)
        .map(|e| (e.outcome.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(matched, vec![("NoChange", "no kept attribute changed")]);
    assert!(
        !out.log.iter().any(|e| e.step == Step::Scope),
        "scope and mappings were not evaluated: {:?}",
        out.log
    );
    // A kept attribute that changes is evaluated (and sent) as before.
    let ops = r.feed(delta(1, dn, &[("givenName", &["Ann"])]));
    assert_eq!(ops.len(), 1, "{ops:?}");
}

#[test]
fn anchor_survives_rename_move_upn_change_and_late_consistency_guid() {
    let mut r = Run::new(ProjectionConfig::default());
    r.feed(user(1, "CN=U,OU=A,DC=corp,DC=example,DC=test", &[]));
    let ops = r.feed(moved(1, "CN=Renamed,OU=B,DC=corp,DC=example,DC=test"));
    let Operation::Upsert(u) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert_eq!(u.source_anchor, b64(1));
    assert_eq!(
        u.on_premises.distinguished_name.as_deref(),
        Some("CN=Renamed,OU=B,DC=corp,DC=example,DC=test")
    );
    let mut e = delta(
        1,
        "CN=Renamed,OU=B,DC=corp,DC=example,DC=test",
        &[("userPrincipalName", &["new@corp.example.test"])],
    );
    if let Event::ObjectUpserted { attributes, .. } = &mut e {
        attributes.push(Attribute {
            name: "ms-DS-ConsistencyGuid".into(),
            values: vec![vec![9; 16]],
        });
    }
    let ops = r.feed(e);
    let Operation::Upsert(u) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert_eq!(u.source_anchor, b64(1));
    assert_eq!(u.attributes["userPrincipalName"], "new@corp.example.test");
}

#[test]
fn consistency_guid_is_the_anchor_when_present_at_first_read() {
    let mut r = Run::new(ProjectionConfig::default());
    let mut e = user(1, "CN=U,DC=corp,DC=example,DC=test", &[]);
    if let Event::ObjectUpserted { attributes, .. } = &mut e {
        attributes.push(Attribute {
            name: "mS-DS-ConsistencyGuid".into(),
            values: vec![vec![7; 16]],
        });
    }
    assert_eq!(shorts(&r.feed(e)), vec![format!("upsert user {}", b64(7))]);
}

#[test]
fn members_before_objects_are_resolved_when_they_arrive() {
    let mut r = Run::new(ProjectionConfig::default());
    let udn = "CN=U 2,OU=Sales,DC=corp,DC=example,DC=test";
    let ops = r.feed(group(
        10,
        "CN=G,OU=Groups,DC=corp,DC=example,DC=test",
        &[udn],
    ));
    assert_eq!(shorts(&ops), vec![format!("upsert group {}", b64(10))]);
    // Same DN, different case and spacing: still the same reference.
    let ops = r.feed(user(2, "cn=U 2, ou=sales,DC=corp,DC=example,DC=test", &[]));
    assert_eq!(
        shorts(&ops),
        vec![
            format!("upsert user {}", b64(2)),
            format!("add {} {}", b64(10), b64(2))
        ]
    );
    let removed = Event::MembersChanged {
        domain: D.into(),
        guid: g(10),
        usn: 0,
        attribute: "member".into(),
        added: vec![],
        removed: vec![udn.into()],
    };
    assert_eq!(
        shorts(&r.feed(removed)),
        vec![format!("remove {} {}", b64(10), b64(2))]
    );
}

#[test]
fn membership_event_before_the_group_itself() {
    let mut r = Run::new(ProjectionConfig::default());
    r.feed(user(2, "CN=U,DC=corp,DC=example,DC=test", &[]));
    let mc = Event::MembersChanged {
        domain: D.into(),
        guid: g(10),
        usn: 0,
        attribute: "member".into(),
        added: vec!["CN=U,DC=corp,DC=example,DC=test".into()],
        removed: vec![],
    };
    assert!(r.feed(mc).is_empty(), "the group is not in the cloud yet");
    let mut e = group(
        10,
        "CN=G,DC=corp,DC=example,DC=test",
        &["CN=U,DC=corp,DC=example,DC=test"],
    );
    if let Event::ObjectUpserted { attributes, .. } = &mut e {
        attributes.retain(|a| a.name != "member");
    }
    assert_eq!(
        shorts(&r.feed(e)),
        vec![
            format!("upsert group {}", b64(10)),
            format!("add {} {}", b64(10), b64(2))
        ]
    );
}

#[test]
fn ou_scope_moves_create_and_delete() {
    let cfg = ProjectionConfig {
        scope: ScopeSpec {
            ous: vec!["OU=Sales,DC=corp,DC=example,DC=test".into()],
            ..ScopeSpec::default()
        },
        ..ProjectionConfig::default()
    };
    let mut r = Run::new(cfg);
    assert!(
        r.feed(user(1, "CN=U,OU=HR,DC=corp,DC=example,DC=test", &[]))
            .is_empty()
    );
    assert_eq!(
        shorts(&r.feed(moved(1, "CN=U,OU=East,OU=Sales,DC=corp,DC=example,DC=test"))),
        vec![format!("upsert user {}", b64(1))]
    );
    assert_eq!(
        shorts(&r.feed(moved(1, "CN=U,OU=HR,DC=corp,DC=example,DC=test"))),
        vec![format!("delete {}", b64(1))]
    );
}

#[test]
fn critical_system_objects_and_computers_are_never_synced() {
    let mut r = Run::new(ProjectionConfig::default());
    assert!(
        r.feed(user(
            1,
            "CN=Administrator,CN=Users,DC=corp,DC=example,DC=test",
            &[("isCriticalSystemObject", "TRUE")]
        ))
        .is_empty()
    );
    let computer = Event::ObjectUpserted {
        domain: D.into(),
        guid: g(3),
        usn: 0,
        dn: "CN=PC,DC=corp,DC=example,DC=test".into(),
        class: ObjectClass::Other("computer".into()),
        attributes: vec![Attribute::text("cn", &["PC"])],
        full_image: true,
    };
    assert!(r.feed(computer).is_empty());
}

#[test]
fn group_scoping_follows_direct_membership() {
    let gdn = "CN=Pilot,OU=Groups,DC=corp,DC=example,DC=test";
    let cfg = ProjectionConfig {
        scope: ScopeSpec {
            groups: vec![gdn.into()],
            ..ScopeSpec::default()
        },
        ..ProjectionConfig::default()
    };
    let mut r = Run::new(cfg);
    let udn = "CN=U,DC=corp,DC=example,DC=test";
    assert!(r.feed(user(1, udn, &[])).is_empty());
    // The scoping group itself is not a member of itself: it stays out, its member comes in.
    assert_eq!(
        shorts(&r.feed(group(10, gdn, &[udn]))),
        vec![format!("upsert user {}", b64(1))]
    );
    let removed = Event::MembersChanged {
        domain: D.into(),
        guid: g(10),
        usn: 0,
        attribute: "member".into(),
        added: vec![],
        removed: vec![udn.into()],
    };
    assert_eq!(shorts(&r.feed(removed)), vec![format!("delete {}", b64(1))]);
}

#[test]
fn attribute_filters_apply() {
    let cfg = ProjectionConfig {
        scope: ScopeSpec {
            filters: vec![FilterClause {
                attribute: "department".into(),
                operator: FilterOp::NotEquals,
                value: Some("Contractors".into()),
            }],
            ..ScopeSpec::default()
        },
        ..ProjectionConfig::default()
    };
    let mut r = Run::new(cfg);
    let dn = "CN=U,DC=corp,DC=example,DC=test";
    assert!(
        r.feed(user(1, dn, &[("department", "Contractors")]))
            .is_empty()
    );
    assert_eq!(r.feed(delta(1, dn, &[("department", &["Sales"])])).len(), 1);
    assert_eq!(
        shorts(&r.feed(delta(1, dn, &[("department", &["Contractors"])]))),
        vec![format!("delete {}", b64(1))]
    );
}

#[test]
fn resync_deletes_what_was_not_seen() {
    let mut r = Run::new(ProjectionConfig::default());
    r.feed(user(1, "CN=A,DC=corp,DC=example,DC=test", &[]));
    r.feed(user(2, "CN=B,DC=corp,DC=example,DC=test", &[]));
    r.feed(Event::ResyncStarted {
        domain: D.into(),
        source: SourceKind::LdapDirSync,
        reason: ResyncReason::Requested,
    });
    assert!(
        r.feed(user(2, "CN=B,DC=corp,DC=example,DC=test", &[]))
            .is_empty()
    );
    let ops = r.feed(Event::ResyncCompleted {
        domain: D.into(),
        source: SourceKind::LdapDirSync,
    });
    assert_eq!(shorts(&ops), vec![format!("delete {}", b64(1))]);
    assert!(r.p.state().get(g(1)).is_none());
}

#[test]
fn password_hash_waits_for_the_user() {
    let mut r = Run::new(ProjectionConfig::default());
    let h = Event::PasswordHashChanged {
        domain: D.into(),
        guid: g(1),
        org_id_hash: "v1;PPH1_MD4,00,1000,11;".into(),
    };
    assert!(r.feed(h.clone()).is_empty());
    assert_eq!(
        shorts(&r.feed(user(1, "CN=A,DC=corp,DC=example,DC=test", &[]))),
        vec![
            format!("upsert user {}", b64(1)),
            format!("hash {} v1", b64(1))
        ]
    );
    assert_eq!(shorts(&r.feed(h)), vec![format!("hash {} v3", b64(1))]);
}

#[test]
fn mapping_errors_hold_the_object_back() {
    let cfg = ProjectionConfig {
        mappings: vec![MappingSpec {
            expression: Some(
                r#"IIF(IsPresent([employeeID]), [employeeID], Error("employeeID is required"))"#
                    .into(),
            ),
            ..MappingSpec::new(ObjectKind::User, "employeeId")
        }],
        ..ProjectionConfig::default()
    };
    let mut r = Run::new(cfg);
    let dn = "CN=A,DC=corp,DC=example,DC=test";
    assert!(r.feed(user(1, dn, &[])).is_empty());
    assert!(
        r.p.state()
            .quarantined
            .get(&g(1))
            .map(|q| &**q)
            .is_some_and(|q| q.contains("employeeID is required"))
    );
    assert_eq!(r.feed(delta(1, dn, &[("employeeID", &["E1"])])).len(), 1);
    assert!(!r.p.state().quarantined.contains_key(&g(1)));
}

#[test]
fn deleting_a_user_removes_it_everywhere() {
    let mut r = Run::new(ProjectionConfig::default());
    let udn = "CN=U,DC=corp,DC=example,DC=test";
    r.feed(user(1, udn, &[]));
    r.feed(group(10, "CN=G,DC=corp,DC=example,DC=test", &[udn]));
    let del = Event::ObjectDeleted {
        domain: D.into(),
        guid: g(1),
        usn: 0,
        tombstone_dn: "CN=U\\0ADEL:x,CN=Deleted Objects".into(),
        last_known_parent: None,
    };
    assert_eq!(shorts(&r.feed(del)), vec![format!("delete {}", b64(1))]);
    let st = r.p.state();
    assert!(
        st.get(g(10))
            .and_then(|o| o.group.as_ref())
            .is_some_and(|gs| gs.members.is_empty())
    );
    assert!(st.member_of.is_empty() && st.dn_count() == 1);
}

/// The upsert among `ops` (exactly one).
fn the_upsert(ops: &[Operation]) -> &super::ops::Upsert {
    let ups: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            Operation::Upsert(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(ups.len(), 1, "{ops:?}");
    ups[0]
}

#[test]
fn an_attribute_cleared_in_ad_is_cleared_in_the_upsert() {
    // What classify journals for `delete: title` / `delete: proxyAddresses` in AD: the attributes with
    // zero values in a delta.
    let mut r = Run::new(ProjectionConfig::default());
    let dn = "CN=A,DC=corp,DC=example,DC=test";
    r.feed(user(
        1,
        dn,
        &[("title", "Boss"), ("proxyAddresses", "SMTP:a@x.example")],
    ));
    let ops = r.feed(delta(1, dn, &[("title", &[]), ("proxyAddresses", &[])]));
    let u = the_upsert(&ops);
    // The upsert is a full replacement (crates/api/src/ops.rs): a target left out is cleared in the cloud.
    assert!(!u.attributes.contains_key("jobTitle"), "{u:?}");
    assert!(!u.attributes.contains_key("proxyAddresses"), "{u:?}");
    assert_eq!(u.attributes["displayName"], "User 1");
    // Clearing what is already absent changes nothing.
    assert!(r.feed(delta(1, dn, &[("title", &[])])).is_empty());
}

#[test]
fn the_latest_hash_follows_every_re_entry_into_the_cloud() {
    let cfg = ProjectionConfig {
        scope: ScopeSpec {
            ous: vec!["OU=Sales,DC=corp,DC=example,DC=test".into()],
            ..ScopeSpec::default()
        },
        ..ProjectionConfig::default()
    };
    let mut r = Run::new(cfg);
    let inside = "CN=U,OU=Sales,DC=corp,DC=example,DC=test";
    let outside = "CN=U,CN=Users,DC=corp,DC=example,DC=test";
    let hash = |h: &str| Event::PasswordHashChanged {
        domain: D.into(),
        guid: g(1),
        org_id_hash: format!("v1;PPH1_MD4,00,1000,{h};"),
    };
    r.feed(user(1, inside, &[])); // 1
    assert_eq!(
        shorts(&r.feed(hash("11"))),
        vec![format!("hash {} v2", b64(1))]
    );
    // Out of scope and back: deleted, then re-created with the hash it had (version = its sequence).
    assert_eq!(
        shorts(&r.feed(moved(1, outside))),
        vec![format!("delete {}", b64(1))]
    );
    let back = r.feed(moved(1, inside)); // 4
    assert_eq!(
        shorts(&back),
        vec![
            format!("upsert user {}", b64(1)),
            format!("hash {} v2", b64(1))
        ]
    );
    // A hash that changed while the user was out of scope is the one that follows.
    r.feed(moved(1, outside)); // 5
    assert!(r.feed(hash("22")).is_empty()); // 6
    let back = r.feed(moved(1, inside)); // 7
    assert!(
        matches!(&back[1], Operation::SetPasswordHash { version: 6, credential, .. } if credential.contains(",22;")),
        "{back:?}"
    );
    // A state rebuilt by replaying the same events (or restored from a snapshot) holds the same hash.
    let bytes = r.p.state().to_bytes().unwrap();
    let restored = State::from_bytes(&bytes).unwrap();
    assert_eq!(restored.hashes.get(&g(1)).map(|h| h.0), Some(6));
    // Deleted in AD: the hash is forgotten with the object.
    let del = Event::ObjectDeleted {
        domain: D.into(),
        guid: g(1),
        usn: 0,
        tombstone_dn: "CN=U\\0ADEL:x,CN=Deleted Objects".into(),
        last_known_parent: None,
    };
    r.feed(del);
    assert!(r.p.state().hashes.is_empty());
}

#[test]
fn a_takeover_image_resends_what_is_in_the_cloud_and_changes_nothing() {
    use super::image::NotReady;
    let mut r = Run::new(ProjectionConfig::default());
    assert!(matches!(r.p.image(D), Err(NotReady::Unknown(_))));
    r.feed(Event::ResyncStarted {
        domain: D.into(),
        source: SourceKind::LdapDirSync,
        reason: ResyncReason::Initial,
    });
    r.feed(user(1, "CN=A,DC=corp,DC=example,DC=test", &[]));
    assert!(
        matches!(r.p.image(D), Err(NotReady::Reading(_))),
        "an image in the middle of the initial read would miss the rest"
    );
    r.feed(user(2, "CN=B,DC=corp,DC=example,DC=test", &[]));
    r.feed(group(
        3,
        "CN=G,DC=corp,DC=example,DC=test",
        &["CN=A,DC=corp,DC=example,DC=test"],
    ));
    r.feed(Event::PasswordHashChanged {
        domain: D.into(),
        guid: g(1),
        org_id_hash: "v1;PPH1_MD4,00,1000,11;".into(),
    });
    // A critical system object is never in the cloud, so never in the image.
    r.feed(user(
        4,
        "CN=K,DC=corp,DC=example,DC=test",
        &[("isCriticalSystemObject", "TRUE")],
    ));
    r.feed(Event::ResyncCompleted {
        domain: D.into(),
        source: SourceKind::LdapDirSync,
    });
    let before = r.p.state().clone();
    let image = r.p.image("CORP.Example.Test").unwrap();
    let ops: Vec<Operation> = image.ops.iter().map(|p| p.op.clone()).collect();
    assert_eq!(
        shorts(&ops),
        vec![
            format!("upsert user {}", b64(1)),
            format!("upsert user {}", b64(2)),
            format!("upsert group {}", b64(3)),
            format!("add {} {}", b64(3), b64(1)),
            format!("hash {} v5", b64(1)),
        ]
    );
    assert_eq!(image.version, r.seq);
    assert!(image.keep.is_empty());
    assert!(ops.iter().all(|o| match o {
        Operation::Upsert(u) => u.version == r.seq,
        _ => true,
    }));
    assert_eq!(
        r.p.state(),
        &before,
        "the image changes nothing in the state"
    );
    // Fingerprints untouched: an unchanged object still sends nothing, a change still sends.
    assert!(
        r.feed(user(2, "CN=B,DC=corp,DC=example,DC=test", &[]))
            .is_empty()
    );
    assert_eq!(
        shorts(&r.feed(user(
            2,
            "CN=B,DC=corp,DC=example,DC=test",
            &[("displayName", "Bee")]
        ))),
        vec![format!("upsert user {}", b64(2))]
    );
}
