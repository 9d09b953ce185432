//! Shared parts: the domain parts of values that every object of a domain repeats — the text from a mail
//! value's last `@` on, and the domain SID of an objectSid (all but the RID) — interned once.
//!
//! Enters: a part cut from a value by the blob codec ([`super::blob`]) on encoding. Leaves: the part's id
//! (or `None` once the table is full, and the value is then stored whole), a part by id on decoding, and
//! the cached `S-1-5-21-…` text of a domain SID part. Parts are interned in order of first appearance (so
//! the same journal gives the same ids) and never removed; only `parts` is serialized, the rest is
//! rebuilt by [`Shared::reindex`].

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use crate::projection::dn::fnv1a;
use crate::projection::sid::sid_to_string;

/// The interned shared parts of values (see the module doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shared {
    pub(super) parts: Vec<Box<[u8]>>,
    /// Derived from `parts` (rebuilt by [`Shared::reindex`]).
    #[serde(skip)]
    index: HashTable<u32>,
    /// Scratch space for encoding a blob, so each blob is allocated once at its exact size.
    #[serde(skip)]
    pub(super) scratch: Vec<u8>,
    /// Derived from `parts`: the `S-1-5-21-…` text of parts that are a domain SID (the SID without its RID).
    #[serde(skip)]
    pub(super) sid_texts: Vec<Option<Box<str>>>,
}

/// The text form of a domain SID prefix (a SID's bytes without the last sub-authority), if it is one.
fn sid_prefix_text(part: &[u8]) -> Option<Box<str>> {
    if part.first() != Some(&1) {
        return None;
    }
    let mut full = part.to_vec();
    full.extend_from_slice(&[0; 4]);
    let text = sid_to_string(&full)?;
    text.strip_suffix("-0").map(Box::from)
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Shared {}

impl Shared {
    /// The most parts the table holds.
    pub const MAX_PARTS: usize = 1 << 16;

    /// Rebuilds the lookup index (after decoding).
    pub fn reindex(&mut self) {
        let parts = &self.parts;
        let mut index = HashTable::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            index.insert_unique(fnv1a(p), i as u32, |&j| fnv1a(&parts[j as usize]));
        }
        self.index = index;
        self.sid_texts = self.parts.iter().map(|p| sid_prefix_text(p)).collect();
    }

    /// How many parts the table holds.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub(super) fn get(&self, id: usize) -> Option<&[u8]> {
        self.parts.get(id).map(|p| &p[..])
    }

    /// The id of `part`, interning it; `None` when the table is full.
    pub(super) fn intern(&mut self, part: &[u8]) -> Option<usize> {
        let hash = fnv1a(part);
        let parts = &self.parts;
        if let Some(&i) = self.index.find(hash, |&i| &*parts[i as usize] == part) {
            return Some(i as usize);
        }
        if self.parts.len() >= Self::MAX_PARTS {
            return None;
        }
        let id = self.parts.len() as u32;
        self.parts.push(part.into());
        self.sid_texts.push(sid_prefix_text(part));
        let parts = &self.parts;
        self.index
            .insert_unique(hash, id, |&j| fnv1a(&parts[j as usize]));
        Some(id as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::super::attr_table::AttrTable;
    use super::super::blob::ObjData;
    use super::*;

    fn vals(v: Vec<Cow<'_, [u8]>>) -> Vec<Vec<u8>> {
        v.into_iter().map(Cow::into_owned).collect()
    }

    #[test]
    fn shared_parts_round_trip_and_stop_growing() {
        let table = AttrTable::new(["objectSid", "mail"]);
        let mut shared = Shared::default();
        let sid: Vec<u8> = [1u8, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]
            .into_iter()
            .chain((1u8..=16).map(|b| b * 3))
            .collect();
        let mut a = ObjData::default();
        let mut b = ObjData::default();
        let (sv, mv) = (vec![sid.clone()], vec![b"ann@corp.example".to_vec()]);
        a.apply(
            &table,
            &mut shared,
            [("objectSid", &sv[..]), ("mail", &mv[..])],
            true,
        );
        let mut sid2 = sid.clone();
        sid2[27] = 9;
        let (sv2, mv2) = (vec![sid2.clone()], vec![b"bob@corp.example".to_vec()]);
        b.apply(
            &table,
            &mut shared,
            [("objectSid", &sv2[..]), ("mail", &mv2[..])],
            true,
        );
        assert_eq!(shared.len(), 2, "one domain SID and one mail domain");
        let sid_id = table.id("objectsid").unwrap();
        assert_eq!(vals(b.get(sid_id, &shared)), vec![sid2]);
        assert_eq!(vals(a.get(table.id("mail").unwrap(), &shared)), mv);
        // A decoded copy of the table reads the same values.
        let mut copy = Shared {
            parts: shared.parts.clone(),
            ..Shared::default()
        };
        copy.reindex();
        assert_eq!(vals(a.get(sid_id, &copy)), vec![sid]);
        // A full table stores values whole.
        let mut full = Shared::default();
        for i in 0..Shared::MAX_PARTS {
            full.intern(format!("@d{i}.example").as_bytes());
        }
        let mut c = ObjData::default();
        let mv3 = vec![b"x@new.example".to_vec()];
        c.apply(&table, &mut full, [("mail", &mv3[..])], true);
        assert_eq!(full.len(), Shared::MAX_PARTS);
        assert_eq!(vals(c.get(table.id("mail").unwrap(), &full)), mv3);
    }
}
