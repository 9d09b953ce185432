//! Model-based test of batch application: random batches (with process reboots and replays in
//! between) are applied to a real on-disk store and to a small in-memory model of the rules in
//! [`cloudsync_api::ops`]; every result and the resulting directory state must agree.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use cloudsync_api::ops::{
    ObjectKind, OnPremisesIdentity, OpStatus, Operation, OperationBatch, Upsert,
};

use crate::apply::{BatchContext, apply_batch};
use crate::store::{ConfigRecord, Store, StoredObject, decode, get_json, uuid_value};

const PPH1: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

#[derive(Debug, Clone)]
enum Op {
    UpsertUser {
        user: u8,
        version: u64,
        upn: u8,
    },
    UpsertGroup {
        group: u8,
        version: u64,
    },
    Delete {
        group: bool,
        index: u8,
        version: u64,
    },
    Member {
        add: bool,
        group: u8,
        user: u8,
    },
    SetHash {
        user: u8,
        version: u64,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Batch(Vec<Op>),
    Reboot,
    ReplayLast,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, 1..12u64, 0..3u8).prop_map(|(user, version, upn)| Op::UpsertUser {
            user,
            version,
            upn
        }),
        (0..2u8, 1..12u64).prop_map(|(group, version)| Op::UpsertGroup { group, version }),
        (any::<bool>(), 0..4u8, 1..12u64).prop_map(|(group, index, version)| Op::Delete {
            group,
            index: index % if group { 2 } else { 4 },
            version
        }),
        (any::<bool>(), 0..2u8, 0..4u8).prop_map(|(add, group, user)| Op::Member {
            add,
            group,
            user
        }),
        (0..4u8, 1..12u64).prop_map(|(user, version)| Op::SetHash { user, version }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(op(), 1..8).prop_map(Step::Batch),
        1 => Just(Step::Reboot),
        1 => Just(Step::ReplayLast),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MObj {
    group: bool,
    version: u64,
    deleted: bool,
    upn: Option<String>,
}

#[derive(Debug, Default)]
struct Model {
    objects: BTreeMap<String, MObj>,
    members: BTreeSet<(String, String)>,
    hashes: BTreeMap<String, u64>,
}

fn user_anchor(i: u8) -> String {
    format!("u{i}")
}
fn group_anchor(i: u8) -> String {
    format!("g{i}")
}

impl Model {
    fn live(&self, anchor: &str, group: Option<bool>) -> bool {
        self.objects
            .get(anchor)
            .is_some_and(|o| !o.deleted && group.is_none_or(|g| o.group == g))
    }

    /// Applies one op to the model; returns the expected status (or error code name).
    fn apply(&mut self, op: &Op) -> String {
        match op {
            Op::UpsertUser { user, version, upn } => {
                let anchor = user_anchor(*user);
                let upn = format!("p{upn}@x.test");
                if self
                    .objects
                    .get(&anchor)
                    .is_some_and(|o| *version <= o.version)
                {
                    return "skipped".into();
                }
                let clash = self.objects.iter().any(|(a, o)| {
                    *a != anchor && !o.deleted && o.upn.as_deref() == Some(upn.as_str())
                });
                if clash {
                    return "DuplicateUserPrincipalName".into();
                }
                self.objects.insert(
                    anchor,
                    MObj {
                        group: false,
                        version: *version,
                        deleted: false,
                        upn: Some(upn),
                    },
                );
                "success".into()
            }
            Op::UpsertGroup { group, version } => {
                let anchor = group_anchor(*group);
                if self
                    .objects
                    .get(&anchor)
                    .is_some_and(|o| *version <= o.version)
                {
                    return "skipped".into();
                }
                self.objects.insert(
                    anchor,
                    MObj {
                        group: true,
                        version: *version,
                        deleted: false,
                        upn: None,
                    },
                );
                "success".into()
            }
            Op::Delete {
                group,
                index,
                version,
            } => {
                let anchor = if *group {
                    group_anchor(*index)
                } else {
                    user_anchor(*index)
                };
                match self.objects.get_mut(&anchor) {
                    Some(o) if !o.deleted && *version > o.version => {
                        o.deleted = true;
                        o.version = *version;
                        self.members.retain(|(g, m)| *g != anchor && *m != anchor);
                        self.hashes.remove(&anchor);
                        "success".into()
                    }
                    _ => "skipped".into(),
                }
            }
            Op::Member { add, group, user } => {
                let (g, m) = (group_anchor(*group), user_anchor(*user));
                if !self.live(&g, Some(true)) || !self.live(&m, None) {
                    return "ReferenceNotFound".into();
                }
                let pair = (g, m);
                if self.members.contains(&pair) == *add {
                    return "skipped".into();
                }
                if *add {
                    self.members.insert(pair);
                } else {
                    self.members.remove(&pair);
                }
                "success".into()
            }
            Op::SetHash { user, version } => {
                let anchor = user_anchor(*user);
                if !self.live(&anchor, Some(false)) {
                    return "ReferenceNotFound".into();
                }
                if self.hashes.get(&anchor).is_some_and(|v| *version <= *v) {
                    return "skipped".into();
                }
                self.hashes.insert(anchor, *version);
                "success".into()
            }
        }
    }
}

fn to_operation(op: &Op) -> Operation {
    match op {
        Op::UpsertUser { user, version, upn } => Operation::Upsert(Upsert {
            kind: ObjectKind::User,
            source_anchor: user_anchor(*user),
            version: *version,
            on_premises: OnPremisesIdentity::default(),
            // Mixed case: UPN uniqueness is case-insensitive.
            attributes: [
                ("displayName".into(), json!("U")),
                (
                    "userPrincipalName".into(),
                    json!(if version % 2 == 0 {
                        format!("P{upn}@X.test")
                    } else {
                        format!("p{upn}@x.test")
                    }),
                ),
            ]
            .into_iter()
            .collect(),
        }),
        Op::UpsertGroup { group, version } => Operation::Upsert(Upsert {
            kind: ObjectKind::Group,
            source_anchor: group_anchor(*group),
            version: *version,
            on_premises: OnPremisesIdentity::default(),
            attributes: [("displayName".into(), json!("G"))].into_iter().collect(),
        }),
        Op::Delete {
            group,
            index,
            version,
        } => Operation::Delete {
            kind: if *group {
                ObjectKind::Group
            } else {
                ObjectKind::User
            },
            source_anchor: if *group {
                group_anchor(*index)
            } else {
                user_anchor(*index)
            },
            version: *version,
        },
        Op::Member {
            add: true,
            group,
            user,
        } => Operation::AddMember {
            group_anchor: group_anchor(*group),
            member_anchor: user_anchor(*user),
        },
        Op::Member {
            add: false,
            group,
            user,
        } => Operation::RemoveMember {
            group_anchor: group_anchor(*group),
            member_anchor: user_anchor(*user),
        },
        Op::SetHash { user, version } => Operation::SetPasswordHash {
            source_anchor: user_anchor(*user),
            version: *version,
            credential: PPH1.into(),
        },
    }
}

fn new_config() -> ConfigRecord {
    crate::bench::config_record_with(0)
}

/// Checks the store's live objects, UPN index, memberships and hashes against the model.
fn check_state(store: &Store, model: &Model) {
    let mut by_id = BTreeMap::new();
    let mut live = BTreeMap::new();
    for entry in store.objects.iter() {
        let (_, v) = entry.unwrap();
        let o: StoredObject = decode("objects", &v).unwrap();
        by_id.insert(o.id, o.source_anchor.clone());
        let m = MObj {
            group: o.kind == ObjectKind::Group,
            version: o.version,
            deleted: o.deleted,
            upn: o.upn().map(str::to_lowercase),
        };
        live.insert(o.source_anchor.clone(), m);
    }
    assert_eq!(live, model.objects, "objects differ");
    let mut upns = BTreeMap::new();
    for entry in store.upns.iter() {
        let (k, v) = entry.unwrap();
        upns.insert(
            String::from_utf8(k.to_vec()).unwrap(),
            by_id[&uuid_value("upns", &v).unwrap()].clone(),
        );
    }
    let want_upns: BTreeMap<String, String> = model
        .objects
        .iter()
        .filter(|(_, o)| !o.deleted)
        .filter_map(|(a, o)| o.upn.clone().map(|u| (u, a.clone())))
        .collect();
    assert_eq!(upns, want_upns, "UPN index differs");
    let mut members = BTreeSet::new();
    for entry in store.members.iter() {
        let (k, _) = entry.unwrap();
        let g = by_id[&uuid_value("members", &k[..16]).unwrap()].clone();
        let m = by_id[&uuid_value("members", &k[16..]).unwrap()].clone();
        assert!(
            store
                .member_of
                .contains_key([&k[16..], &k[..16]].concat())
                .unwrap(),
            "reverse index missing"
        );
        members.insert((g, m));
    }
    assert_eq!(members, model.members, "memberships differ");
    assert_eq!(
        store.member_of.len(),
        store.members.len(),
        "reverse index has extra entries"
    );
    let mut hashes = BTreeMap::new();
    for entry in store.credentials.iter() {
        let (k, v) = entry.unwrap();
        let c: crate::apply::StoredCredential = decode("credentials", &v).unwrap();
        hashes.insert(
            by_id[&uuid_value("credentials", &k).unwrap()].clone(),
            c.version,
        );
    }
    assert_eq!(hashes, model.hashes, "password hashes differ");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        let mut config = new_config();
        let mut model = Model::default();
        let mut last: Option<(OperationBatch, Vec<(usize, OpStatus)>)> = None;
        let ctx = BatchContext { agent_id: Uuid::nil(), now: 1_000, now_text: "2026-01-01T00:00:00Z".into(), delete_window_secs: 120, quarantine_after: u32::MAX, epoch: 0 };
        for step in steps {
            match step {
                Step::Reboot => {
                    drop(store);
                    store = Store::open(&path).unwrap();
                    config = get_json(&store.configs, "configs", config.config.id.as_bytes()).unwrap().unwrap_or(config);
                }
                Step::ReplayLast => {
                    // The stored results come back; the state does not change.
                    if let Some((batch, _)) = &last {
                        let stored: cloudsync_api::ops::BatchResponse = get_json(&store.batches, "batches", &crate::store::batch_key(config.config.id, batch.batch_id)).unwrap().unwrap();
                        prop_assert_eq!(stored.results.len(), batch.operations.len());
                    }
                }
                Step::Batch(ops) => {
                    let batch = OperationBatch { batch_id: Uuid::new_v4(), operations: ops.iter().map(to_operation).collect(), reasons: Default::default(), epoch: None };
                    let got = apply_batch(&store, &mut config, &batch, &ctx).unwrap();
                    let want: Vec<String> = ops.iter().map(|op| model.apply(op)).collect();
                    let got_codes: Vec<String> = got.results.iter().map(|r| match &r.error {
                        Some(e) => format!("{:?}", e.code),
                        None => format!("{:?}", r.status).to_lowercase(),
                    }).collect();
                    prop_assert_eq!(got_codes, want, "ops {:?}", ops);
                    last = Some((batch, got.results.iter().map(|r| (r.index, r.status)).collect()));
                }
            }
            check_state(&store, &model);
        }
    }
}

/// A cleared attribute: an upsert that sends a property as `null` or `[]`, or leaves it out, leaves the
/// stored object without it, and Graph shows it as unset (`null`, `[]` for a collection).
#[test]
fn a_cleared_attribute_is_stored_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut config = new_config();
    let ctx = BatchContext {
        agent_id: Uuid::nil(),
        now: 1_000,
        now_text: "2026-01-01T00:00:00Z".into(),
        delete_window_secs: 120,
        quarantine_after: u32::MAX,
        epoch: 0,
    };
    let upsert = |version: u64, extra: serde_json::Value| {
        let mut attributes: BTreeMap<cloudsync_api::ops::AttrName, serde_json::Value> = [
            ("displayName".into(), json!("Ann")),
            ("userPrincipalName".into(), json!("ann@x.test")),
        ]
        .into_iter()
        .collect();
        for (k, v) in extra.as_object().unwrap() {
            attributes.insert(k.clone().into(), v.clone());
        }
        OperationBatch {
            batch_id: Uuid::new_v4(),
            operations: vec![Operation::Upsert(Upsert {
                kind: ObjectKind::User,
                source_anchor: "u1".into(),
                version,
                on_premises: OnPremisesIdentity::default(),
                attributes,
            })],
            reasons: Default::default(),
            epoch: None,
        }
    };
    let stored = |store: &Store| -> StoredObject {
        let (_, v) = store.objects.iter().next().unwrap().unwrap();
        decode("objects", &v).unwrap()
    };
    let first = upsert(
        1,
        json!({"jobTitle": "Boss", "proxyAddresses": ["SMTP:a@x.test"], "mail": "a@x.test"}),
    );
    apply_batch(&store, &mut config, &first, &ctx).unwrap();
    assert_eq!(stored(&store).attributes["jobTitle"], "Boss");
    // Cleared with null and [], and `mail` left out of the full replacement.
    let second = upsert(2, json!({"jobTitle": null, "proxyAddresses": []}));
    let r = apply_batch(&store, &mut config, &second, &ctx).unwrap();
    assert_eq!(r.results[0].status, OpStatus::Success);
    let o = stored(&store);
    for gone in ["jobTitle", "proxyAddresses", "mail"] {
        assert!(
            !o.attributes.contains_key(gone),
            "{gone}: {:?}",
            o.attributes
        );
    }
    let fields: Vec<String> = ["jobTitle", "proxyaddresses", "displayName"]
        .map(String::from)
        .to_vec();
    let g = crate::graph_query::select(crate::graph::to_graph(&o), Some(&fields));
    assert_eq!(g["jobTitle"], serde_json::Value::Null);
    assert_eq!(g["proxyAddresses"], json!([]));
    assert_eq!(g["displayName"], "Ann");
}
