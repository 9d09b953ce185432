//! The projected state: every object projection knows, its DN, memberships, pending member references and
//! in-progress resyncs — compact enough for a million objects in a few hundred MiB.
//!
//! Layout:
//! - objects live in a slab (`Vec<ObjState>`) under `u32` ids, assigned in journal order (a freed id is
//!   reused last-freed-first), so ids — like everything else here — are a function of the journal;
//! - an object's DN is its leftmost RDN (inside its [`ObjData`]) plus an interned parent ([`Parent`]);
//! - memberships are `u32` pairs; the rare side data (custom anchors, quarantine reasons, on-create values,
//!   held password hashes) sits in ordered maps by objectGUID.
//!
//! Two hash indexes, objectGUID → id and (parent, canonical RDN) → id, hold only `u32`s and find their keys
//! in the slab. They are derived data: never serialized, rebuilt by [`State::from_bytes`], and never
//! iterated, so the hash order cannot leak into the state's bytes ([`State::to_bytes`]).

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::anchor::AnchorBytes;
use super::dn;
use super::model::{ObjData, Shared};
use super::ops::ObjectKind;
use crate::event::Guid;

/// An object's id in the slab.
pub type ObjId = u32;

const NO_PARENT: u32 = u32::MAX;
const LIVE: u8 = 1;
const IN_CLOUD: u8 = 2;

/// Membership of a group: resolved members by id, and member DNs not seen yet (canonical form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Members whose objects are known.
    pub members: BTreeSet<ObjId>,
    /// Member DNs (canonical) that no known object has yet.
    pub pending: BTreeSet<Box<str>>,
}

/// What projection keeps per object (64 bytes, plus its [`ObjData`] blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjState {
    /// The objectGUID.
    pub guid: Guid,
    /// The leftmost RDN and the kept attributes.
    pub data: ObjData,
    /// The journal sequence of the last read of this object; 0 for a placeholder known only from a
    /// membership event.
    pub seen_seq: u64,
    /// Fingerprint of the last upsert sent, to skip identical upserts.
    pub last_hash: u64,
    /// For groups: the membership.
    pub group: Option<Box<GroupState>>,
    parent: u32,
    /// Index into [`State::domains`].
    pub domain: u16,
    /// The synced kind.
    pub kind: ObjectKind,
    flags: u8,
}

// The layout the memory figures in docs/projection.md rest on.
const _: () = assert!(std::mem::size_of::<ObjState>() == 64);

impl ObjState {
    fn new(domain: u16, kind: ObjectKind, guid: Guid) -> ObjState {
        ObjState {
            guid,
            data: ObjData::default(),
            seen_seq: 0,
            last_hash: 0,
            group: None,
            parent: NO_PARENT,
            domain,
            kind,
            flags: LIVE,
        }
    }

    /// Whether the cloud has (or has been sent) this object.
    pub fn in_cloud(&self) -> bool {
        self.flags & IN_CLOUD != 0
    }

    /// Marks the object as in the cloud or not.
    pub fn set_in_cloud(&mut self, yes: bool) {
        self.flags = if yes {
            self.flags | IN_CLOUD
        } else {
            self.flags & !IN_CLOUD
        };
    }

    fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    /// Whether the object's DN is known.
    pub fn has_dn(&self) -> bool {
        self.parent != NO_PARENT
    }
}

/// A parent DN (an OU or container), interned: the text exactly as AD wrote it, and its canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// The domain the DN belongs to.
    pub domain: u16,
    /// As written (`OU=Staff,DC=corp,DC=example`); `""` for an object at the top.
    pub text: Box<str>,
    /// [`dn::canonical`] of `text`.
    pub canonical: Box<str>,
    /// The first parent with the same domain and canonical form: DNs compare by it.
    pub canon: u32,
}

/// The derived lookup tables (see the module doc).
#[derive(Debug, Clone, Default)]
struct Index {
    by_guid: HashTable<ObjId>,
    by_dn: HashTable<ObjId>,
    parent_by_text: HashTable<u32>,
    parent_by_canonical: HashTable<u32>,
}

/// The whole projected state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Domain names, interned in order of first appearance.
    pub domains: Vec<String>,
    objects: Vec<ObjState>,
    free: Vec<ObjId>,
    parents: Vec<Parent>,
    shared: Shared,
    /// Source anchors that are not the objectGUID (from ms-DS-ConsistencyGuid).
    pub anchors: BTreeMap<Guid, AnchorBytes>,
    /// (domain, canonical member DN) to the groups waiting for that object.
    pub waiting: BTreeMap<(u16, Box<str>), BTreeSet<ObjId>>,
    /// (member, group) for every resolved direct membership.
    pub member_of: BTreeSet<(ObjId, ObjId)>,
    /// Domains with a resync in progress: domain to the sequence of its `ResyncStarted`.
    pub resyncs: BTreeMap<u16, u64>,
    /// The latest salted password hash of each user, as journaled: (sequence, OrgId string). Kept for
    /// as long as the object is known (removed only when it is forgotten), so that every time the user
    /// (re)enters the cloud — first create, back into scope, after a delete the tenant carried out — its
    /// current hash follows the create.
    pub hashes: BTreeMap<Guid, (u64, String)>,
    /// Objects held back because a mapping failed, with the reason.
    pub quarantined: BTreeMap<Guid, Box<str>>,
    /// Values of on-create mappings as first sent, per object, kept so updates resend them unchanged
    /// (only for objects that have such mappings).
    pub on_create: BTreeMap<Guid, BTreeMap<String, serde_json::Value>>,
    /// Values chosen by `SelectUniqueValue` mappings (lower-cased) to the object that holds them.
    pub claimed: BTreeMap<String, Guid>,
    /// The last journal sequence applied.
    pub last_seq: u64,
    #[serde(skip)]
    index: Index,
}

impl PartialEq for State {
    /// Compares what is serialized (the indexes are derived from it).
    fn eq(&self, o: &Self) -> bool {
        self.domains == o.domains
            && self.objects == o.objects
            && self.free == o.free
            && self.parents == o.parents
            && self.shared == o.shared
            && self.anchors == o.anchors
            && self.waiting == o.waiting
            && self.member_of == o.member_of
            && self.resyncs == o.resyncs
            && self.hashes == o.hashes
            && self.quarantined == o.quarantined
            && self.on_create == o.on_create
            && self.claimed == o.claimed
            && self.last_seq == o.last_seq
    }
}

impl Eq for State {}

/// A cheap, well-mixed hash of a GUID (AD's GUIDs are random; the mix also spreads sequential ones).
fn guid_hash(g: &Guid) -> u64 {
    let lo = u64::from_le_bytes([
        g.0[0], g.0[1], g.0[2], g.0[3], g.0[4], g.0[5], g.0[6], g.0[7],
    ]);
    let hi = u64::from_le_bytes([
        g.0[8], g.0[9], g.0[10], g.0[11], g.0[12], g.0[13], g.0[14], g.0[15],
    ]);
    mix(lo ^ hi.rotate_left(32))
}

fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn dn_key(canon_parent: u32, rdn_hash: u32) -> u64 {
    mix(u64::from(rdn_hash) ^ u64::from(canon_parent).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Hash of a parent DN's text (exact or canonical) in a domain, eight bytes at a time.
fn text_key(domain: u16, text: &str) -> u64 {
    let mut h = u64::from(domain) ^ (text.len() as u64) << 16;
    let mut chunks = text.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(27);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix(h ^ u64::from_le_bytes(tail))
}

/// Whether two RDNs are equal in canonical form (exact equality first: the usual case).
fn rdn_eq(a: &str, b: &str) -> bool {
    a == b || dn::canonical(a) == dn::canonical(b)
}

/// The bincode configuration of state snapshots (varint integers, bounded length prefixes).
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 16 * 1024 * 1024 * 1024 }>,
> = bincode::config::standard().with_limit::<{ 16 * 1024 * 1024 * 1024 }>();

/// Snapshot decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The bytes are not a state of this format version.
    #[error("projection snapshot does not decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// Encoding failed (cannot happen for this type; reported rather than unwrapped).
    #[error("projection snapshot does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Bytes remained after the state.
    #[error("projection snapshot has {0} trailing bytes")]
    Trailing(usize),
    /// The decoded state contradicts itself (an id out of range, a GUID twice, …).
    #[error("projection snapshot is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl State {
    /// How many objects the state holds.
    pub fn len(&self) -> usize {
        self.index.by_guid.len()
    }

    /// Whether the state holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of the object with objectGUID `guid`.
    pub fn id(&self, guid: Guid) -> Option<ObjId> {
        let objects = &self.objects;
        self.index
            .by_guid
            .find(guid_hash(&guid), |&i| objects[i as usize].guid == guid)
            .copied()
    }

    /// Object `id` (which must be live: ids come from [`State::id`] and the membership sets).
    pub fn obj(&self, id: ObjId) -> Option<&ObjState> {
        self.objects.get(id as usize).filter(|o| o.live())
    }

    /// Object `id`, mutably.
    pub fn obj_mut(&mut self, id: ObjId) -> Option<&mut ObjState> {
        self.objects.get_mut(id as usize).filter(|o| o.live())
    }

    /// The object with objectGUID `guid`.
    pub fn get(&self, guid: Guid) -> Option<&ObjState> {
        self.id(guid).and_then(|i| self.obj(i))
    }

    /// The live objects, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (ObjId, &ObjState)> {
        self.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.live())
            .map(|(i, o)| (i as ObjId, o))
    }

    /// The interned shared value parts (to read attribute values).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The id of `guid`, adding a placeholder object (not read yet, no DN) when it is new.
    pub fn ensure(&mut self, guid: Guid, domain: u16, kind: ObjectKind) -> ObjId {
        let next = match self.free.last() {
            Some(&id) => id,
            None => self.objects.len() as ObjId,
        };
        // One probe: look up, and on a miss insert the id the new object is about to get.
        let objects = &self.objects;
        match self.index.by_guid.entry(
            guid_hash(&guid),
            |&i| objects[i as usize].guid == guid,
            |&i| guid_hash(&objects[i as usize].guid),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => return *e.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(next);
            }
        }
        let obj = ObjState::new(domain, kind, guid);
        if self.free.pop().is_some() {
            self.objects[next as usize] = obj;
        } else {
            self.objects.push(obj);
        }
        next
    }

    /// Removes object `id` from the slab and the indexes (memberships are the caller's) and returns it.
    pub fn remove(&mut self, id: ObjId) -> Option<ObjState> {
        let guid = self.obj(id)?.guid;
        self.unindex_dn(id);
        if let Ok(e) = self
            .index
            .by_guid
            .find_entry(guid_hash(&guid), |&i| i == id)
        {
            e.remove();
        }
        let mut dead = ObjState::new(0, ObjectKind::User, Guid([0; 16]));
        dead.flags = 0;
        let obj = std::mem::replace(&mut self.objects[id as usize], dead);
        self.free.push(id);
        self.anchors.remove(&guid);
        Some(obj)
    }

    /// The source anchor of object `id`.
    pub fn anchor(&self, id: ObjId) -> AnchorBytes {
        match self.obj(id) {
            Some(o) => self
                .anchors
                .get(&o.guid)
                .copied()
                .unwrap_or(AnchorBytes(o.guid.0)),
            None => AnchorBytes([0; 16]),
        }
    }

    /// Object `id`'s distinguished name as AD last reported it (`""` before the object was read).
    pub fn dn(&self, id: ObjId) -> String {
        let Some(o) = self.obj(id) else {
            return String::new();
        };
        match self.parents.get(o.parent as usize) {
            None => String::new(),
            Some(p) if p.text.is_empty() => o.data.rdn().to_string(),
            Some(p) => {
                let rdn = o.data.rdn();
                let mut dn = String::with_capacity(rdn.len() + 1 + p.text.len());
                dn.push_str(rdn);
                dn.push(',');
                dn.push_str(&p.text);
                dn
            }
        }
    }

    /// Whether object `id`'s DN is exactly `dn` (without building it).
    pub fn dn_is(&self, id: ObjId, dn: &str) -> bool {
        let Some(o) = self.obj(id) else {
            return dn.is_empty();
        };
        let Some(p) = self.parents.get(o.parent as usize) else {
            return dn.is_empty();
        };
        let rdn = o.data.rdn();
        if p.text.is_empty() {
            return dn == rdn;
        }
        dn.len() == rdn.len() + 1 + p.text.len()
            && dn.starts_with(rdn)
            && dn.as_bytes().get(rdn.len()) == Some(&b',')
            && dn.ends_with(&*p.text)
    }

    /// Object `id`'s canonical DN ([`dn::canonical`]), `""` before the object was read.
    pub fn canonical_dn(&self, id: ObjId) -> String {
        let Some(o) = self.obj(id) else {
            return String::new();
        };
        match self.parents.get(o.parent as usize) {
            None => String::new(),
            Some(p) if p.text.is_empty() => dn::canonical(o.data.rdn()),
            Some(p) => {
                let mut dn = dn::canonical(o.data.rdn());
                dn.push(',');
                dn.push_str(&p.canonical);
                dn
            }
        }
    }

    fn obj_dn_key(objects: &[ObjState], parents: &[Parent], id: ObjId) -> u64 {
        let o = &objects[id as usize];
        let canon = parents
            .get(o.parent as usize)
            .map_or(NO_PARENT, |p| p.canon);
        dn_key(canon, o.data.rdn_hash())
    }

    fn unindex_dn(&mut self, id: ObjId) {
        let Some(o) = self.obj(id) else { return };
        if !o.has_dn() {
            return;
        }
        let key = Self::obj_dn_key(&self.objects, &self.parents, id);
        if let Ok(e) = self.index.by_dn.find_entry(key, |&i| i == id) {
            e.remove();
        }
    }

    /// The parent id of `text` in `domain`, interning it.
    fn intern_parent(&mut self, domain: u16, text: &str) -> u32 {
        let parents = &self.parents;
        let key = text_key(domain, text);
        if let Some(&p) = self.index.parent_by_text.find(key, |&p| {
            let p = &parents[p as usize];
            p.domain == domain && &*p.text == text
        }) {
            return p;
        }
        let canonical: Box<str> = dn::canonical(text).into();
        let ckey = text_key(domain, &canonical);
        let id = self.parents.len() as u32;
        let canon = match self.index.parent_by_canonical.find(ckey, |&p| {
            let p = &parents[p as usize];
            p.domain == domain && p.canonical == canonical
        }) {
            Some(&c) => c,
            None => {
                self.index
                    .parent_by_canonical
                    .insert_unique(ckey, id, |&p| {
                        let p = &parents[p as usize];
                        text_key(p.domain, &p.canonical)
                    });
                id
            }
        };
        self.parents.push(Parent {
            domain,
            text: text.into(),
            canonical,
            canon,
        });
        let parents = &self.parents;
        self.index.parent_by_text.insert_unique(key, id, |&p| {
            let p = &parents[p as usize];
            text_key(p.domain, &p.text)
        });
        id
    }

    /// Gives object `id` the DN `new_dn` (in its domain) and indexes it. When several objects claim one DN
    /// (AD reuses a DN only after the old object moved or left, which may arrive later), lookups give the
    /// one read last.
    pub fn set_dn(&mut self, id: ObjId, new_dn: &str) {
        self.change(id, Some(new_dn), |data, _, rdn| {
            *data = data.with_rdn(rdn.unwrap_or_default());
        });
    }

    /// Runs `change` on object `id`'s data (with the shared parts, and the new RDN when `new_dn` is
    /// given) and, with `new_dn`, moves the object there as [`State::set_dn`] does — so an upsert that
    /// also renames re-encodes the blob once.
    pub fn change(
        &mut self,
        id: ObjId,
        new_dn: Option<&str>,
        change: impl FnOnce(&mut ObjData, &mut Shared, Option<&str>),
    ) {
        if self.obj(id).is_none() {
            return;
        }
        let split = new_dn.map(dn::split_first);
        if split.is_some() {
            self.unindex_dn(id);
        }
        let o = &mut self.objects[id as usize];
        change(&mut o.data, &mut self.shared, split.map(|(rdn, _)| rdn));
        if let Some((_, parent_text)) = split {
            self.place(id, parent_text);
        }
    }

    /// Puts object `id` (whose data already holds its new RDN) under parent `parent_text` and indexes it.
    fn place(&mut self, id: ObjId, parent_text: &str) {
        let Some(domain) = self.obj(id).map(|o| o.domain) else {
            return;
        };
        let parent = self.intern_parent(domain, parent_text);
        self.objects[id as usize].parent = parent;
        let key = Self::obj_dn_key(&self.objects, &self.parents, id);
        let (objects, parents) = (&self.objects, &self.parents);
        // Every object with a DN has its own entry, even when another object claims the same DN (a
        // transient state in AD's own order of changes); lookups choose among them by a rule that does not
        // depend on history, so a state rebuilt from its bytes answers exactly as the live one.
        self.index
            .by_dn
            .insert_unique(key, id, |&i| Self::obj_dn_key(objects, parents, i));
    }

    /// The object holding DN `dn` (any case and spacing) in `domain`.
    pub fn dn_lookup(&self, domain: u16, dn: &str) -> Option<ObjId> {
        let (rdn, parent_text) = dn::split_first(dn);
        let parents = &self.parents;
        let canon = match self
            .index
            .parent_by_text
            .find(text_key(domain, parent_text), |&p| {
                let p = &parents[p as usize];
                p.domain == domain && &*p.text == parent_text
            }) {
            Some(&p) => parents[p as usize].canon,
            None => {
                let canonical = dn::canonical(parent_text);
                *self
                    .index
                    .parent_by_canonical
                    .find(text_key(domain, &canonical), |&p| {
                        let p = &parents[p as usize];
                        p.domain == domain && *p.canonical == *canonical
                    })?
            }
        };
        let key = dn_key(canon, super::model::rdn_hash(rdn));
        let objects = &self.objects;
        // Of several objects claiming the DN, the one read last (then the higher id) holds it.
        self.index
            .by_dn
            .iter_hash(key)
            .copied()
            .filter(|&i| {
                let o = &objects[i as usize];
                o.domain == domain
                    && parents.get(o.parent as usize).map(|p| p.canon) == Some(canon)
                    && rdn_eq(o.data.rdn(), rdn)
            })
            .max_by_key(|&i| (objects[i as usize].seen_seq, i))
    }

    /// How many DNs the index holds.
    pub fn dn_count(&self) -> usize {
        self.index.by_dn.len()
    }

    /// The groups `member` is a direct member of.
    pub fn groups_of(&self, member: ObjId) -> impl Iterator<Item = ObjId> + '_ {
        self.member_of
            .range((member, 0)..=(member, ObjId::MAX))
            .map(|(_, g)| *g)
    }

    fn rebuild_index(&mut self) -> Result<(), StateError> {
        let mut index = Index::default();
        let (objects, parents) = (&self.objects, &self.parents);
        for (i, p) in parents.iter().enumerate() {
            if p.canon as usize > i {
                return Err(StateError::Inconsistent("parent canon id"));
            }
            index
                .parent_by_text
                .insert_unique(text_key(p.domain, &p.text), i as u32, |&j| {
                    let p = &parents[j as usize];
                    text_key(p.domain, &p.text)
                });
            if p.canon as usize == i {
                index.parent_by_canonical.insert_unique(
                    text_key(p.domain, &p.canonical),
                    i as u32,
                    |&j| {
                        let p = &parents[j as usize];
                        text_key(p.domain, &p.canonical)
                    },
                );
            }
        }
        for (i, o) in objects.iter().enumerate().filter(|(_, o)| o.live()) {
            let id = i as ObjId;
            let guid = o.guid;
            if index
                .by_guid
                .find(guid_hash(&guid), |&j| objects[j as usize].guid == guid)
                .is_some()
            {
                return Err(StateError::Inconsistent("objectGUID twice"));
            }
            index.by_guid.insert_unique(guid_hash(&guid), id, |&j| {
                guid_hash(&objects[j as usize].guid)
            });
            if o.has_dn() {
                if o.parent as usize >= parents.len() {
                    return Err(StateError::Inconsistent("parent id"));
                }
                let key = Self::obj_dn_key(objects, parents, id);
                index
                    .by_dn
                    .insert_unique(key, id, |&j| Self::obj_dn_key(objects, parents, j));
            }
        }
        if self
            .free
            .iter()
            .any(|&f| objects.get(f as usize).is_none_or(ObjState::live))
            || self
                .member_of
                .iter()
                .any(|&(m, g)| self.obj(m).is_none() || self.obj(g).is_none())
        {
            return Err(StateError::Inconsistent("free list or membership id"));
        }
        self.shared.reindex();
        self.index = index;
        Ok(())
    }

    /// The state as bytes (bincode, standard configuration): equal states give equal bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        Ok(bincode::serde::encode_to_vec(self, CONFIG)?)
    }

    /// Decodes [`State::to_bytes`] and rebuilds the indexes.
    pub fn from_bytes(bytes: &[u8]) -> Result<State, StateError> {
        let (mut state, used): (State, usize) = bincode::serde::decode_from_slice(bytes, CONFIG)?;
        if used != bytes.len() {
            return Err(StateError::Trailing(bytes.len() - used));
        }
        state.rebuild_index()?;
        Ok(state)
    }

    /// The id of `domain`, interning it on first use.
    pub fn domain_id(&mut self, domain: &str) -> u16 {
        if let Some(i) = self.domains.iter().position(|d| d == domain) {
            return i as u16;
        }
        self.domains.push(domain.to_string());
        (self.domains.len() - 1) as u16
    }

    /// The name of domain `id`.
    pub fn domain_name(&self, id: u16) -> &str {
        self.domains.get(usize::from(id)).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(state: &mut State, n: u8, dn: &str) -> ObjId {
        let id = state.ensure(Guid([n; 16]), 0, ObjectKind::User);
        state.set_dn(id, dn);
        id
    }

    #[test]
    fn dns_are_found_in_any_case_and_moves_reindex() {
        let mut st = State::default();
        let a = object(&mut st, 1, "CN=A,OU=Staff,DC=x");
        let b = object(&mut st, 2, r"CN=Doe\, B,OU=Staff,DC=x");
        assert_eq!(st.dn_lookup(0, "cn=a, ou=STAFF,dc=X"), Some(a));
        assert_eq!(st.dn_lookup(0, r"CN=doe\, b,OU=Staff,DC=x"), Some(b));
        assert_eq!(st.dn_lookup(0, "CN=C,OU=Staff,DC=x"), None);
        assert_eq!(st.dn_lookup(1, "CN=A,OU=Staff,DC=x"), None, "other domain");
        assert_eq!(st.dn(b), r"CN=Doe\, B,OU=Staff,DC=x");
        assert_eq!(st.canonical_dn(a), "cn=a,ou=staff,dc=x");
        st.set_dn(a, "CN=A2,OU=Sales,DC=x");
        assert_eq!(st.dn_lookup(0, "CN=A,OU=Staff,DC=x"), None);
        assert_eq!(st.dn_lookup(0, "CN=A2,OU=Sales,DC=x"), Some(a));
        assert_eq!(st.dn_count(), 2);
        // A second claimant of one DN that was read later holds it; removing the first leaves the second.
        let c = object(&mut st, 3, "CN=A2,OU=Sales,DC=x");
        st.obj_mut(c).unwrap().seen_seq = 9;
        assert_eq!(st.dn_lookup(0, "CN=A2,OU=Sales,DC=x"), Some(c));
        // The read order decides, not the order the DNs were set in, so a state rebuilt from its bytes
        // answers the same.
        st.obj_mut(a).unwrap().seen_seq = 10;
        assert_eq!(st.dn_lookup(0, "CN=A2,OU=Sales,DC=x"), Some(a));
        let back = State::from_bytes(&st.to_bytes().unwrap()).unwrap();
        assert_eq!(back.dn_lookup(0, "cn=a2,ou=sales,dc=x"), Some(a));
        st.obj_mut(a).unwrap().seen_seq = 1;
        assert_eq!(st.dn_lookup(0, "CN=A2,OU=Sales,DC=x"), Some(c));
        st.remove(a);
        assert_eq!(st.dn_lookup(0, "CN=A2,OU=Sales,DC=x"), Some(c));
        st.remove(c);
        assert_eq!(st.dn_lookup(0, "CN=A2,OU=Sales,DC=x"), None);
        assert_eq!(st.dn_count(), 1);
        assert_eq!(st.len(), 1);
        assert_eq!(st.id(Guid([1; 16])), None);
    }

    #[test]
    fn freed_ids_are_reused_and_survive_a_round_trip() {
        let mut st = State::default();
        let a = object(&mut st, 1, "CN=A,DC=x");
        let _b = object(&mut st, 2, "CN=B,DC=x");
        st.remove(a);
        let c = object(&mut st, 3, "CN=C,DC=x");
        assert_eq!(c, a, "the freed slot is reused");
        st.member_of.insert((c, 1));
        let back = State::from_bytes(&st.to_bytes().unwrap()).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.dn_lookup(0, "cn=c,dc=x"), Some(c));
        assert_eq!(back.id(Guid([2; 16])), Some(1));
        assert_eq!(back.to_bytes().unwrap(), st.to_bytes().unwrap());
    }

    #[test]
    fn inconsistent_snapshots_are_refused() {
        let mut st = State::default();
        object(&mut st, 1, "CN=A,DC=x");
        st.member_of.insert((0, 7));
        assert!(matches!(
            State::from_bytes(&st.to_bytes().unwrap()),
            Err(StateError::Inconsistent(_))
        ));
    }
}
