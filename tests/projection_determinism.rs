//! Property tests of projection (DESIGN invariant 5):
//! - projecting a random event sequence twice, with restarts (state to bytes and back) at random points,
//!   gives byte-identical state and identical operations;
//! - projecting a prefix, snapshotting, and then the rest equals projecting everything at once;
//! - the operations, applied to a simple model of the cloud, leave exactly the in-scope objects of a
//!   simple model of AD, with their final display names and memberships.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass, ResyncReason, SourceKind};
use cloudsync_agent::projection::config::ProjectionConfig;
use cloudsync_agent::projection::ops::Operation;
use cloudsync_agent::projection::projector::{Output, Projector};
use cloudsync_agent::projection::scope::ScopeSpec;
use cloudsync_agent::projection::state::State;
use proptest::prelude::*;

const D: &str = "t.test";
const USERS: u8 = 6;
const GROUPS: u8 = 3;

#[derive(Debug, Clone)]
enum Action {
    UpsertUser { u: u8, inside: bool, name: u8 },
    MoveUser { u: u8, inside: bool },
    DeleteUser { u: u8 },
    UpsertGroup { g: u8, members: Vec<u8> },
    AddMember { g: u8, u: u8 },
    RemoveMember { g: u8, u: u8 },
    Hash { u: u8 },
    Resync { keep: Vec<bool> },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..USERS, any::<bool>(), 0..4u8).prop_map(|(u, inside, name)| Action::UpsertUser { u, inside, name }),
        2 => (0..USERS, any::<bool>()).prop_map(|(u, inside)| Action::MoveUser { u, inside }),
        1 => (0..USERS).prop_map(|u| Action::DeleteUser { u }),
        2 => (0..GROUPS, proptest::collection::vec(0..USERS, 0..4)).prop_map(|(g, members)| Action::UpsertGroup { g, members }),
        2 => (0..GROUPS, 0..USERS).prop_map(|(g, u)| Action::AddMember { g, u }),
        1 => (0..GROUPS, 0..USERS).prop_map(|(g, u)| Action::RemoveMember { g, u }),
        1 => (0..USERS).prop_map(|u| Action::Hash { u }),
        1 => proptest::collection::vec(any::<bool>(), (USERS + GROUPS) as usize).prop_map(|keep| Action::Resync { keep }),
    ]
}

fn user_dn(u: u8, inside: bool) -> String {
    format!(
        "CN=u{u},OU={},DC=t,DC=test",
        if inside { "In" } else { "Out" }
    )
}

fn group_dn(g: u8) -> String {
    format!("CN=g{g},OU=In,DC=t,DC=test")
}

/// A user's GUID; `generation` changes when a deleted user is created again (AD gives a new GUID).
fn user_guid(u: u8, generation: u8) -> Guid {
    let mut b = [0u8; 16];
    b[0] = 1;
    b[1] = u;
    b[2] = generation;
    Guid(b)
}

fn group_guid(g: u8) -> Guid {
    let mut b = [0u8; 16];
    b[0] = 2;
    b[1] = g;
    Guid(b)
}

/// A simple model of AD: users with their OU and name, groups with member references (resolved
/// user index, or a DN nobody has yet).
#[derive(Default, Clone)]
struct Ad {
    users: BTreeMap<u8, (bool, u8, u8)>, // u -> (inside, name, generation)
    generations: BTreeMap<u8, u8>,
    groups: BTreeMap<u8, BTreeSet<String>>, // g -> member DNs as AD would report them now
    pending: BTreeMap<u8, BTreeSet<String>>, // g -> DNs added before any object had them
}

impl Ad {
    fn user_event(&self, u: u8) -> Event {
        let (inside, name, generation) = self.users[&u];
        Event::ObjectUpserted {
            domain: D.into(),
            guid: user_guid(u, generation),
            usn: 0,
            dn: user_dn(u, inside),
            class: ObjectClass::User,
            attributes: vec![
                Attribute::text("userPrincipalName", &[format!("u{u}@t.test")]),
                Attribute::text("displayName", &[format!("User {u} v{name}")]),
                Attribute::text("sAMAccountName", &[format!("u{u}")]),
                Attribute::text("userAccountControl", &["512"]),
            ],
            full_image: true,
        }
    }

    fn group_event(&self, g: u8) -> Event {
        let members: Vec<String> = self.groups[&g]
            .iter()
            .chain(self.pending.get(&g).into_iter().flatten())
            .cloned()
            .collect();
        Event::ObjectUpserted {
            domain: D.into(),
            guid: group_guid(g),
            usn: 0,
            dn: group_dn(g),
            class: ObjectClass::Group,
            attributes: vec![
                Attribute::text("cn", &[format!("g{g}")]),
                Attribute::text("member", &members),
            ],
            full_image: true,
        }
    }

    /// A reference to a DN nobody had is resolved by the first object that takes that DN.
    fn resolve_pending(&mut self, dn: &str) {
        for (g, p) in self.pending.iter_mut() {
            if p.remove(dn) {
                self.groups.entry(*g).or_default().insert(dn.to_string());
            }
        }
    }

    fn current_dn(&self, u: u8) -> Option<String> {
        self.users.get(&u).map(|(inside, ..)| user_dn(u, *inside))
    }

    /// Turns an action into the events AD's feed would report, updating the model.
    fn events(&mut self, a: &Action) -> Vec<Event> {
        match a {
            Action::UpsertUser { u, inside, name } => {
                let generation = *self.generations.entry(*u).or_default();
                let old_dn = self.current_dn(*u);
                self.users.insert(*u, (*inside, *name, generation));
                let dn = user_dn(*u, *inside);
                if let Some(old) = old_dn {
                    for m in self.groups.values_mut() {
                        if m.remove(&old) {
                            m.insert(dn.clone());
                        }
                    }
                }
                self.resolve_pending(&dn);
                vec![self.user_event(*u)]
            }
            Action::MoveUser { u, inside } => {
                let Some((_, name, generation)) = self.users.get(u).copied() else {
                    return vec![];
                };
                let old = user_dn(*u, !*inside);
                let old_now = self.current_dn(*u).unwrap();
                self.users.insert(*u, (*inside, name, generation));
                let dn = user_dn(*u, *inside);
                for m in self.groups.values_mut() {
                    if m.remove(&old_now) {
                        m.insert(dn.clone());
                    }
                }
                let _ = old;
                self.resolve_pending(&dn);
                vec![Event::ObjectMoved {
                    domain: D.into(),
                    guid: user_guid(*u, generation),
                    usn: 0,
                    old_dn: Some(old_now),
                    new_dn: dn,
                }]
            }
            Action::DeleteUser { u } => {
                let Some((_, _, generation)) = self.users.remove(u) else {
                    return vec![];
                };
                let dn = user_dn(*u, true);
                let dn2 = user_dn(*u, false);
                for m in self.groups.values_mut() {
                    m.remove(&dn);
                    m.remove(&dn2);
                }
                *self.generations.entry(*u).or_default() += 1;
                vec![Event::ObjectDeleted {
                    domain: D.into(),
                    guid: user_guid(*u, generation),
                    usn: 0,
                    tombstone_dn: String::new(),
                    last_known_parent: None,
                }]
            }
            Action::UpsertGroup { g, members } => {
                let (mut resolved, mut pending) = (BTreeSet::new(), BTreeSet::new());
                for u in members {
                    match self.current_dn(*u) {
                        Some(dn) => resolved.insert(dn),
                        None => pending.insert(user_dn(*u, true)),
                    };
                }
                self.groups.insert(*g, resolved);
                self.pending.insert(*g, pending);
                vec![self.group_event(*g)]
            }
            Action::AddMember { g, u } => {
                if !self.groups.contains_key(g) {
                    return vec![];
                }
                let dn = match self.current_dn(*u) {
                    Some(dn) => {
                        self.groups.entry(*g).or_default().insert(dn.clone());
                        dn
                    }
                    None => {
                        let dn = user_dn(*u, true);
                        self.pending.entry(*g).or_default().insert(dn.clone());
                        dn
                    }
                };
                vec![Event::MembersChanged {
                    domain: D.into(),
                    guid: group_guid(*g),
                    usn: 0,
                    attribute: "member".into(),
                    added: vec![dn],
                    removed: vec![],
                }]
            }
            Action::RemoveMember { g, u } => {
                if !self.groups.contains_key(g) {
                    return vec![];
                }
                let dn = self.current_dn(*u).unwrap_or_else(|| user_dn(*u, true));
                self.groups.entry(*g).or_default().remove(&dn);
                self.pending.entry(*g).or_default().remove(&dn);
                vec![Event::MembersChanged {
                    domain: D.into(),
                    guid: group_guid(*g),
                    usn: 0,
                    attribute: "member".into(),
                    added: vec![],
                    removed: vec![dn],
                }]
            }
            Action::Hash { u } => {
                let generation = self.generations.get(u).copied().unwrap_or_default();
                vec![Event::PasswordHashChanged {
                    domain: D.into(),
                    guid: user_guid(*u, generation),
                    org_id_hash: format!("v1;PPH1_MD4,00,1000,{u:02x};"),
                }]
            }
            Action::Resync { keep } => {
                // A resync re-reads everything that exists; `keep` only varies the read order.
                let mut evs = vec![Event::ResyncStarted {
                    domain: D.into(),
                    source: SourceKind::LdapDirSync,
                    reason: ResyncReason::Requested,
                }];
                let mut reads: Vec<(bool, Event)> = Vec::new();
                for u in self.users.keys() {
                    reads.push((keep[usize::from(*u)], self.user_event(*u)));
                }
                for g in self.groups.keys() {
                    reads.push((keep[usize::from(USERS + *g)], self.group_event(*g)));
                }
                reads.sort_by_key(|(k, _)| *k);
                evs.extend(reads.into_iter().map(|(_, e)| e));
                evs.push(Event::ResyncCompleted {
                    domain: D.into(),
                    source: SourceKind::LdapDirSync,
                });
                evs
            }
        }
    }
}

fn config() -> ProjectionConfig {
    ProjectionConfig {
        scope: ScopeSpec {
            ous: vec!["OU=In,DC=t,DC=test".into()],
            ..ScopeSpec::default()
        },
        ..ProjectionConfig::default()
    }
}

fn events_of(actions: &[Action]) -> (Vec<Event>, Ad) {
    let mut ad = Ad::default();
    let events = actions.iter().flat_map(|a| ad.events(a)).collect();
    (events, ad)
}

/// Projects `events` restarting (state to bytes and back) before each index in `restarts`.
fn project(events: &[Event], restarts: &BTreeSet<usize>) -> (Vec<u8>, Vec<Operation>) {
    let compiled = config().compile().unwrap();
    let mut p = Projector::new(compiled.clone(), State::default());
    let mut ops = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if restarts.contains(&i) {
            let bytes = p.into_state().to_bytes().unwrap();
            p = Projector::new(compiled.clone(), State::from_bytes(&bytes).unwrap());
        }
        let mut out = Output::default();
        p.apply(i as u64 + 1, e, &mut out);
        ops.extend(out.ops.into_iter().map(|o| o.op));
    }
    (p.into_state().to_bytes().unwrap(), ops)
}

/// A model of the cloud: anchor -> display name, and (group, member) pairs; applies ops in order as the
/// tenant does (memberships need both ends; deletes drop the object's memberships).
#[derive(Default, Debug, PartialEq)]
struct Cloud {
    objects: BTreeMap<String, String>,
    members: BTreeSet<(String, String)>,
}

impl Cloud {
    fn apply(&mut self, ops: &[Operation]) {
        for op in ops {
            match op {
                Operation::Upsert(u) => {
                    let name = u
                        .attributes
                        .get("displayName")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string();
                    self.objects.insert(u.source_anchor.clone(), name);
                }
                Operation::Delete { source_anchor, .. } => {
                    assert!(
                        self.objects.remove(source_anchor).is_some(),
                        "delete of an unknown object"
                    );
                    self.members
                        .retain(|(g, m)| g != source_anchor && m != source_anchor);
                }
                Operation::AddMember {
                    group_anchor,
                    member_anchor,
                } => {
                    assert!(
                        self.objects.contains_key(group_anchor)
                            && self.objects.contains_key(member_anchor),
                        "membership before its objects"
                    );
                    assert!(
                        self.members
                            .insert((group_anchor.clone(), member_anchor.clone())),
                        "duplicate add"
                    );
                }
                Operation::RemoveMember {
                    group_anchor,
                    member_anchor,
                } => {
                    assert!(
                        self.members
                            .remove(&(group_anchor.clone(), member_anchor.clone())),
                        "remove of a missing membership"
                    );
                }
                Operation::SetPasswordHash { source_anchor, .. } => {
                    assert!(
                        self.objects.contains_key(source_anchor),
                        "hash for an unknown user"
                    );
                }
                Operation::ImageComplete { .. } => {
                    panic!("imageComplete comes only from a takeover image, never from events")
                }
            }
        }
    }
}

fn anchor(g: Guid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(g.0)
}

/// What the cloud should hold for the final AD model, worked out from the model alone.
fn expected(ad: &Ad) -> Cloud {
    let mut c = Cloud::default();
    for (u, (inside, name, generation)) in &ad.users {
        if *inside {
            c.objects.insert(
                anchor(user_guid(*u, *generation)),
                format!("User {u} v{name}"),
            );
        }
    }
    for (g, members) in &ad.groups {
        c.objects.insert(anchor(group_guid(*g)), format!("g{g}"));
        for dn in members {
            if let Some((u, (true, _, generation))) = ad
                .users
                .iter()
                .find(|(u, (inside, ..))| user_dn(**u, *inside) == *dn)
            {
                let _ = u;
                c.members
                    .insert((anchor(group_guid(*g)), anchor(user_guid(*u, *generation))));
            }
        }
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn twice_with_restarts_gives_identical_bytes(
        actions in proptest::collection::vec(action(), 1..60),
        r1 in proptest::collection::btree_set(0usize..200, 0..5),
        r2 in proptest::collection::btree_set(0usize..200, 0..5),
    ) {
        let (events, _) = events_of(&actions);
        let (a, ops_a) = project(&events, &r1);
        let (b, ops_b) = project(&events, &r2);
        prop_assert_eq!(a, b);
        prop_assert_eq!(ops_a, ops_b);
    }

    #[test]
    fn prefix_then_rest_equals_one_pass(actions in proptest::collection::vec(action(), 1..60), cut in 0usize..200) {
        let (events, _) = events_of(&actions);
        let cut = cut.min(events.len());
        let (full, full_ops) = project(&events, &BTreeSet::new());
        let (split, split_ops) = project(&events, &BTreeSet::from([cut]));
        prop_assert_eq!(full, split);
        prop_assert_eq!(full_ops, split_ops);
    }

    #[test]
    fn cloud_ends_equal_to_the_scoped_directory(actions in proptest::collection::vec(action(), 1..60)) {
        let (events, ad) = events_of(&actions);
        let (_, ops) = project(&events, &BTreeSet::new());
        let mut cloud = Cloud::default();
        cloud.apply(&ops);
        prop_assert_eq!(cloud, expected(&ad));
    }
}
