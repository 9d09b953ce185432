//! The slab: every object projection knows, under a `u32` id, with what it keeps per object
//! ([`ObjState`]: 64 bytes plus its blob) and, for groups, the membership ([`GroupState`]).
//!
//! Enters: objectGUIDs of objects read or named by a membership ([`State::ensure`]), removals, domain
//! names. Leaves: ids (assigned in journal order, a freed id reused last-freed-first, so ids are a function
//! of the journal), objects by id or objectGUID, the live objects in id order, source anchors, the groups
//! an object is a direct member of, domain ids.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::State;
use super::blob::ObjData;
use super::index::guid_hash;
use super::shared::Shared;
use crate::event::Guid;
use crate::projection::anchor::AnchorBytes;
use crate::projection::ops::ObjectKind;

/// An object's id in the slab.
pub type ObjId = u32;

/// `ObjState::parent` of an object whose DN is not known yet.
pub(super) const NO_PARENT: u32 = u32::MAX;
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
    /// The interned parent DN ([`super::index::Parent`]); [`NO_PARENT`] before the DN is known.
    pub(super) parent: u32,
    /// Index into [`State::domains`].
    pub domain: u16,
    /// The synced kind.
    pub kind: ObjectKind,
    pub(super) flags: u8,
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

    pub(super) fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    /// Whether the object's DN is known.
    pub fn has_dn(&self) -> bool {
        self.parent != NO_PARENT
    }
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

    /// The groups `member` is a direct member of.
    pub fn groups_of(&self, member: ObjId) -> impl Iterator<Item = ObjId> + '_ {
        self.member_of
            .range((member, 0)..=(member, ObjId::MAX))
            .map(|(_, g)| *g)
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
    use super::super::test_object as object;
    use super::*;

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
}
