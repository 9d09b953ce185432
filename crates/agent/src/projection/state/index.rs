//! The derived indexes: objectGUID → id and (parent, canonical RDN) → id, and the interned parent DNs that
//! every object's DN is its RDN plus.
//!
//! Enters: DNs as AD writes them (on reads and moves), objectGUIDs, DN lookups in any case and spacing.
//! Leaves: an object's DN (exact or canonical), the object holding a DN, the index rebuilt from the slab
//! after decoding ([`State::from_bytes`]). The hash tables hold only `u32`s and find their keys in the slab;
//! they are never serialized and never iterated, so hash order cannot reach the state's bytes.

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::State;
use super::blob::{ObjData, rdn_hash};
use super::shared::Shared;
use super::slab::{NO_PARENT, ObjId, ObjState};
use super::snapshot::StateError;
use crate::event::Guid;
use crate::projection::dn;

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
pub(super) struct Index {
    pub(super) by_guid: HashTable<ObjId>,
    by_dn: HashTable<ObjId>,
    parent_by_text: HashTable<u32>,
    parent_by_canonical: HashTable<u32>,
}

/// A cheap, well-mixed hash of a GUID (AD's GUIDs are random; the mix also spreads sequential ones).
pub(super) fn guid_hash(g: &Guid) -> u64 {
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

impl State {
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

    pub(super) fn unindex_dn(&mut self, id: ObjId) {
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
        let key = dn_key(canon, rdn_hash(rdn));
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

    pub(super) fn rebuild_index(&mut self) -> Result<(), StateError> {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_object as object;
    use super::*;

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
}
