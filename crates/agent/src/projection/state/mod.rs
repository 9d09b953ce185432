//! Projection's state. Enters: the projector's changes per object. Leaves: lookups, and the snapshot bytes.
//!
//! The projected state: every object projection knows, its DN, memberships, pending member references and
//! in-progress resyncs — compact enough for a million objects in a few hundred MiB — and its byte form.
//!
//! Enters: the projector's changes (objects added, read, moved, removed; memberships; held side data) and,
//! on start, a snapshot's bytes ([`State::from_bytes`]). Leaves: lookups by objectGUID and by DN, each
//! object's kept attribute values as expression values, and the snapshot bytes ([`State::to_bytes`]) —
//! equal journals give equal bytes. The snapshot's envelope (magic, version, checksum) is
//! [`super::store`]'s.
//!
//! # Files, by role
//! - [`slab`]: objects under `u32` ids ([`slab::ObjState`], [`slab::GroupState`]), ids, domains.
//! - [`index`]: the derived hash indexes (objectGUID → id, DN → id) and the interned parent DNs.
//! - [`snapshot`]: the byte form ([`State::to_bytes`], [`State::from_bytes`], [`snapshot::StateError`]).
//! - [`attr_table`]: the kept attribute names interned to `u16` ids ([`attr_table::AttrTable`]).
//! - [`blob`]: one object's RDN and kept values in one byte blob ([`blob::ObjData`]).
//! - `value_codec`: one value inside a blob (varints, shared-part modes).
//! - [`shared`]: the shared parts values end in or start with ([`shared::Shared`]).
//! - [`schema`]: object class to synced kind, and how values read by the AD schema ([`schema::Shape`]).
//!
//! # In memory
//! - objects live in a slab (`Vec<ObjState>`) under `u32` ids, assigned in journal order (a freed id is
//!   reused last-freed-first), so ids — like everything else here — are a function of the journal;
//! - an object's DN is its leftmost RDN (inside its [`blob::ObjData`]) plus an interned parent
//!   ([`index::Parent`]);
//! - memberships are `u32` pairs; the rare side data (custom anchors, quarantine reasons, on-create values,
//!   held password hashes) sits in ordered maps by objectGUID.
//!
//! Two hash indexes, objectGUID → id and (parent, canonical RDN) → id, hold only `u32`s and find their keys
//! in the slab. They are derived data: never serialized, rebuilt by [`State::from_bytes`], and never
//! iterated, so the hash order cannot leak into the state's bytes ([`State::to_bytes`]).
//!
//! # The object blob
//! Only attributes that some mapping, scoping filter or the fixed identity fields read are kept (the
//! configuration's "needed" set), each under an interned `u16` id ([`attr_table::AttrTable`]). An
//! object's leftmost RDN and all its kept values live in one byte blob ([`blob::ObjData`]):
//!
//! ```text
//! rdn_hash u32 LE (of the canonical RDN, for the DN index), rdn_len varint, rdn bytes,
//! { id varint, count varint, value* }*          ids ascending
//! value = h varint (h = len << 2 | mode), [part varint if mode != 0], len bytes
//!   mode 0: the value is the bytes
//!   mode 1: the value is the bytes followed by shared part `part` (a mail domain: `@corp.example`)
//!   mode 2: the value is shared part `part` followed by the bytes (a SID's domain prefix, all but the RID)
//! ```
//!
//! Shared parts ([`shared::Shared`]) are the values' domain parts — the text from the last `@` on, and the
//! domain SID of an objectSid — which every object of a domain repeats. They are interned in order of
//! first appearance (so the same journal gives the same ids) and never removed; the table stops growing at
//! [`shared::Shared::MAX_PARTS`] parts, after which values are stored whole. A typical user is ~130 bytes.
//!
//! # Snapshot bytes
//! [`State::to_bytes`] is bincode (standard configuration: little-endian varint integers, length-prefixed
//! sequences, a 16 GiB limit) of [`State`]'s serialized fields in declaration order: `domains`,
//! `objects` (each [`slab::ObjState`]: guid, blob, seen_seq, last_hash, group, parent, domain, kind,
//! flags), `free`, `parents`, `shared` (its parts only), `anchors`, `waiting`, `member_of`, `resyncs`,
//! `hashes`, `quarantined`, `on_create`, `claimed`, `last_seq`. Changing a field, its type or the order is
//! a new snapshot format: raise the version in [`super::store`] (an older snapshot is then dropped and the
//! state rebuilt from the journal). `tests/projection_determinism.rs` and `tests/journal_golden.rs` hold
//! the bytes still.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::anchor::AnchorBytes;
use crate::event::Guid;

pub mod attr_table;
pub mod blob;
pub mod index;
pub mod schema;
pub mod shared;
pub mod slab;
pub mod snapshot;
mod value_codec;

use index::{Index, Parent};
use shared::Shared;
use slab::{ObjId, ObjState};

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

impl State {
    /// Moves every object's kept values from the table whose names were `old` (in id order) to
    /// `new`: ids are the sorted names, so a configuration that keeps another set of attributes
    /// shifts them. Values of attributes `new` does not keep are dropped; attributes only `new`
    /// keeps stay empty until the object is read again (a re-read of the domain brings them).
    pub fn remap_attributes(&mut self, old: &[String], new: &attr_table::AttrTable) {
        if old == new.names() {
            return;
        }
        let map: Vec<Option<u16>> = old.iter().map(|n| new.id(n)).collect();
        for o in &mut self.objects {
            o.data = o.data.remap(&map);
        }
    }
}

#[cfg(test)]
/// A user with objectGUID `[n; 16]` at `dn` in domain 0 (for the tests of the state's parts).
fn test_object(state: &mut State, n: u8, dn: &str) -> ObjId {
    let id = state.ensure(Guid([n; 16]), 0, super::ops::ObjectKind::User);
    state.set_dn(id, dn);
    id
}
