//! The object blob codec: one object's leftmost RDN and kept attribute values in one byte blob
//! ([`ObjData`]; layout in [`super`]'s doc, "The object blob").
//!
//! Enters: attribute changes by name (full images or deltas) and an RDN, with the [`AttrTable`] that
//! interns the names and the [`Shared`] parts that values end in or start with. Leaves: an attribute's
//! raw values, its [`Value`], where its values lie ([`Loc`], for one pass per object), a SID's text, the
//! RDN and the RDN's canonical hash ([`rdn_hash`]) that the DN index keys on.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::attr_table::AttrTable;
use super::schema::{Shape, one_value, shape_of, shaped_value};
use super::shared::Shared;
use super::value_codec::{
    MODE_PLAIN, MODE_PREFIX, decode_value, encode_value, get_varint, put_varint, skip_value,
};
use crate::projection::expr::Value;
use crate::projection::sid;

/// Bytes before the RDN: its hash.
const HEAD: usize = 4;

/// One object's leftmost RDN and kept attribute values, in one allocation (layout in [`super`]'s doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjData(Box<[u8]>);

/// Where one attribute's values lie inside an [`ObjData`] ([`ObjData::locate`]); `count == 0`: absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loc {
    start: u32,
    end: u32,
    /// How many values.
    pub count: u32,
}

/// One attribute's encoded entry inside an [`ObjData`].
#[derive(Debug, Clone, Copy)]
struct RawEntry<'a> {
    id: u16,
    count: usize,
    /// The whole entry, header included (copied as is when a delta leaves it alone).
    whole: &'a [u8],
    /// The values.
    values: &'a [u8],
}

/// The entries of a blob, ids ascending; stops at the first malformed byte.
struct Entries<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = RawEntry<'a>;

    fn next(&mut self) -> Option<RawEntry<'a>> {
        let start = self.at;
        let mut at = self.at;
        let id = u16::try_from(get_varint(self.b, &mut at)?).ok()?;
        let count = get_varint(self.b, &mut at)?;
        let values_start = at;
        for _ in 0..count {
            skip_value(self.b, &mut at)?;
        }
        self.at = at;
        Some(RawEntry {
            id,
            count,
            whole: self.b.get(start..at)?,
            values: self.b.get(values_start..at)?,
        })
    }
}

/// Writes a blob's head: the RDN's canonical hash and the RDN.
fn put_head(out: &mut Vec<u8>, rdn: &str) {
    let hash = if rdn.is_empty() { 0 } else { rdn_hash(rdn) };
    out.extend_from_slice(&hash.to_le_bytes());
    put_varint(out, rdn.len());
    out.extend_from_slice(rdn.as_bytes());
}

/// The 32-bit hash of an RDN's canonical form that DN lookups use ([`ObjData::rdn_hash`]).
pub fn rdn_hash(rdn: &str) -> u32 {
    let h = crate::projection::dn::canonical_hash(rdn);
    (h ^ (h >> 32)) as u32
}

impl ObjData {
    fn rdn_end(&self) -> (usize, usize) {
        let mut at = HEAD.min(self.0.len());
        let len = get_varint(&self.0, &mut at).unwrap_or(0);
        (at, at.saturating_add(len).min(self.0.len()))
    }

    /// [`rdn_hash`] of the RDN, kept in the blob so re-indexing never recomputes it (0 before a DN).
    pub fn rdn_hash(&self) -> u32 {
        match self.0.get(..HEAD) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    /// The leftmost RDN exactly as AD wrote it (`""` until the object has been read).
    pub fn rdn(&self) -> &str {
        let (start, end) = self.rdn_end();
        self.0
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn entries(&self) -> Entries<'_> {
        Entries {
            b: &self.0,
            at: self.rdn_end().1,
        }
    }

    fn entry(&self, id: u16) -> Option<RawEntry<'_>> {
        self.entries()
            .take_while(|e| e.id <= id)
            .find(|e| e.id == id)
    }

    /// The same attributes under another RDN.
    pub fn with_rdn(&self, rdn: &str) -> ObjData {
        let (_, end) = self.rdn_end();
        let rest = self.0.get(end..).unwrap_or_default();
        let mut out = Vec::with_capacity(HEAD + rdn.len() + 2 + rest.len());
        put_head(&mut out, rdn);
        out.extend_from_slice(rest);
        ObjData(out.into_boxed_slice())
    }

    /// The values of attribute `id` (empty when absent).
    pub fn get<'a>(&'a self, id: u16, shared: &Shared) -> Vec<Cow<'a, [u8]>> {
        let Some(e) = self.entry(id) else {
            return Vec::new();
        };
        let mut at = 0;
        (0..e.count)
            .map_while(|_| decode_value(e.values, &mut at, shared))
            .collect()
    }

    /// How many values attribute `id` has, and the first of them.
    pub fn first<'a>(&'a self, id: u16, shared: &Shared) -> (usize, Option<Cow<'a, [u8]>>) {
        match self.entry(id) {
            Some(e) => (e.count, decode_value(e.values, &mut 0, shared)),
            None => (0, None),
        }
    }

    /// Attribute `id` as an expression [`Value`] (`name_lower` gives its schema shape, see [`shape_of`]).
    pub fn value(&self, id: u16, name_lower: &str, shared: &Shared) -> Value {
        let shape = shape_of(name_lower);
        match self.first(id, shared) {
            (0, _) => Value::Null,
            (1, Some(v)) => one_value(shape, v),
            _ => shaped_value(shape, &self.get(id, shared)),
        }
    }

    /// Records where each attribute's values lie, in `locs[id]` (ids at or beyond `locs.len()` are left
    /// out), for [`ObjData::value_at`] and [`ObjData::shape_at`]: one pass instead of a scan per read.
    pub fn locate(&self, locs: &mut [Loc]) {
        for e in self.entries() {
            if let Some(slot) = locs.get_mut(usize::from(e.id)) {
                let start = e.values.as_ptr() as usize - self.0.as_ptr() as usize;
                *slot = Loc {
                    start: start as u32,
                    end: (start + e.values.len()) as u32,
                    count: e.count as u32,
                };
            }
        }
    }

    fn values_of(&self, loc: Loc) -> &[u8] {
        self.0
            .get(loc.start as usize..loc.end as usize)
            .unwrap_or_default()
    }

    /// The attribute at `loc`: its value count and whether its first value is empty, without decoding.
    pub fn shape_at(&self, loc: Loc) -> (usize, bool) {
        let mut at = 0;
        // A value with a shared part is never empty (parts are at least four bytes).
        let first_empty = get_varint(self.values_of(loc), &mut at).is_none_or(|h| h == MODE_PLAIN);
        (loc.count as usize, first_empty)
    }

    /// The text form (`S-1-5-21-…`) of the SID at `loc`, built from the domain SID's cached text when the
    /// value shares it; `None` when the value is not a SID.
    pub fn sid_text_at(&self, loc: Loc, shared: &Shared) -> Option<String> {
        let values = self.values_of(loc);
        let mut at = 0;
        let h = get_varint(values, &mut at)?;
        if h & 3 == MODE_PREFIX
            && let Some(prefix) = get_varint(values, &mut at)
                .and_then(|part| shared.sid_texts.get(part))
                .and_then(|t| t.as_deref())
            && let Some(&[a, b, c, d]) = values.get(at..at + (h >> 2))
        {
            let mut text = String::with_capacity(prefix.len() + 11);
            text.push_str(prefix);
            text.push('-');
            sid::push_decimal(&mut text, u64::from(u32::from_le_bytes([a, b, c, d])));
            return Some(text);
        }
        let v = decode_value(values, &mut 0, shared)?;
        sid::sid_to_string(&v)
    }

    /// The attribute at `loc` (from [`ObjData::locate`]) as a [`Value`].
    pub fn value_at(&self, loc: Loc, shape: Shape, shared: &Shared) -> Value {
        let values = self.values_of(loc);
        let mut at = 0;
        if loc.count == 1 {
            return match decode_value(values, &mut at, shared) {
                Some(v) => one_value(shape, v),
                None => Value::Null,
            };
        }
        let decoded: Vec<Cow<'_, [u8]>> = (0..loc.count)
            .map_while(|_| decode_value(values, &mut at, shared))
            .collect();
        shaped_value(shape, &decoded)
    }

    /// Applies attribute changes: with `replace_all` the attributes become exactly `changes`, otherwise each
    /// changed attribute replaces its old values (an empty value list removes it). Attributes the table
    /// does not keep are dropped; of repeated names the last wins. The RDN is kept. Returns whether
    /// anything changed.
    pub fn apply<'a, I>(
        &mut self,
        table: &AttrTable,
        shared: &mut Shared,
        changes: I,
        replace_all: bool,
    ) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a [Vec<u8>])>,
    {
        self.apply_with_rdn(table, shared, changes, replace_all, None)
    }

    /// [`ObjData::apply`], also replacing the RDN with `rdn` when given (one re-encoding for both).
    pub fn apply_with_rdn<'a, I>(
        &mut self,
        table: &AttrTable,
        shared: &mut Shared,
        changes: I,
        replace_all: bool,
        rdn: Option<&str>,
    ) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a [Vec<u8>])>,
    {
        let mut new: Vec<(u16, &[Vec<u8>])> = changes
            .into_iter()
            .filter_map(|(name, values)| table.id(name).map(|id| (id, values)))
            .collect();
        // Stable sort keeps arrival order among equal ids; keep the last of each.
        new.sort_by_key(|(id, _)| *id);
        new.reverse();
        new.dedup_by_key(|(id, _)| *id);
        new.reverse();
        let (_, rdn_end) = self.rdn_end();
        let mut out = std::mem::take(&mut shared.scratch);
        out.clear();
        match (rdn, self.0.get(..rdn_end)) {
            (Some(r), _) => put_head(&mut out, r),
            (None, Some(head)) if head.len() > HEAD => out.extend_from_slice(head),
            // No RDN yet: an empty one.
            _ => put_head(&mut out, ""),
        }
        let mut old = if replace_all {
            Entries { b: &[], at: 0 }
        } else {
            self.entries()
        }
        .peekable();
        let mut fresh = new.iter().peekable();
        loop {
            let take_old = match (old.peek(), fresh.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(o), Some((id, _))) => o.id < *id,
            };
            if take_old {
                if let Some(o) = old.next() {
                    out.extend_from_slice(o.whole);
                }
                continue;
            }
            let Some((id, values)) = fresh.next() else {
                break;
            };
            while old.next_if(|o| o.id == *id).is_some() {}
            if values.is_empty() {
                continue;
            }
            put_varint(&mut out, usize::from(*id));
            put_varint(&mut out, values.len());
            for v in values.iter() {
                encode_value(&mut out, v, shared);
            }
        }
        let changed = *out != *self.0;
        if changed {
            self.0 = Box::from(&out[..]);
        }
        shared.scratch = out;
        changed
    }

    /// The same values under another attribute table: `map[old id]` is the new id (`None`: the new
    /// table does not keep it, the values are dropped). Values are copied as encoded (their shared
    /// parts belong to the state, not the table); entries come out in new-id order.
    pub fn remap(&self, map: &[Option<u16>]) -> ObjData {
        let (_, rdn_end) = self.rdn_end();
        let mut entries: Vec<(u16, RawEntry<'_>)> = self
            .entries()
            .filter_map(|e| {
                map.get(usize::from(e.id))
                    .copied()
                    .flatten()
                    .map(|new| (new, e))
            })
            .collect();
        entries.sort_by_key(|(id, _)| *id);
        let mut out = Vec::with_capacity(self.0.len());
        out.extend_from_slice(self.0.get(..rdn_end).unwrap_or_default());
        for (id, e) in entries {
            put_varint(&mut out, usize::from(id));
            put_varint(&mut out, e.count);
            out.extend_from_slice(e.values);
        }
        ObjData(out.into_boxed_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: Vec<Cow<'_, [u8]>>) -> Vec<Vec<u8>> {
        v.into_iter().map(Cow::into_owned).collect()
    }

    /// Values stored under one table read the same under a table that adds and drops names (the ids
    /// shift), and a dropped attribute is gone.
    #[test]
    fn remap_moves_values_to_the_new_ids() {
        let old = AttrTable::new(["sn", "title"]);
        let new = AttrTable::new(["department", "mail", "title"]);
        let mut shared = Shared::default();
        let mut blob = ObjData::default().with_rdn("CN=Ann");
        let title = vec![b"Boss".to_vec()];
        let sn = [b"Lee".to_vec()];
        blob.apply(
            &old,
            &mut shared,
            [("title", &title[..]), ("sn", &sn[..])],
            true,
        );
        let map: Vec<Option<u16>> = old.names().iter().map(|n| new.id(n)).collect();
        let moved = blob.remap(&map);
        let title_id = new.id("title").unwrap();
        assert_ne!(Some(title_id), old.id("title"));
        assert_eq!(vals(moved.get(title_id, &shared)), title);
        assert_eq!(moved.rdn(), "CN=Ann");
        for gone in ["department", "mail"] {
            assert!(moved.get(new.id(gone).unwrap(), &shared).is_empty());
        }
    }

    #[test]
    fn blob_round_trip_and_delta() {
        let table = AttrTable::new(["givenName", "sn", "proxyAddresses"]);
        assert_eq!(table.id("GIVENNAME"), table.id("givenname"));
        assert_eq!(table.id("mail"), None);
        let mut shared = Shared::default();
        let mut blob = ObjData::default().with_rdn("CN=Ann Lee");
        let given = vec![b"Ann".to_vec()];
        let proxies = vec![b"SMTP:a@x.example".to_vec(), vec![0xff, 0x00]];
        let ignored = vec![b"x".to_vec()];
        assert!(blob.apply(
            &table,
            &mut shared,
            [
                ("givenName", given.as_slice()),
                ("proxyAddresses", proxies.as_slice()),
                ("mail", ignored.as_slice())
            ],
            true
        ));
        assert_eq!(blob.rdn(), "CN=Ann Lee");
        let gid = table.id("givenname").unwrap();
        let pid = table.id("proxyaddresses").unwrap();
        assert_eq!(vals(blob.get(gid, &shared)), given);
        assert_eq!(vals(blob.get(pid, &shared)), proxies);
        assert_eq!(shared.len(), 1, "the mail domain is shared");
        // A delta changes one attribute and keeps the rest; an empty list removes.
        let sn = [b"Lee".to_vec()];
        assert!(blob.apply(
            &table,
            &mut shared,
            [("sn", sn.as_slice()), ("givenName", &[][..])],
            false
        ));
        assert!(blob.get(gid, &shared).is_empty());
        assert_eq!(vals(blob.get(table.id("sn").unwrap(), &shared)), sn);
        assert_eq!(blob.get(pid, &shared).len(), 2);
        let (n, first) = blob.first(pid, &shared);
        assert_eq!((n, first.as_deref()), (2, Some(&b"SMTP:a@x.example"[..])));
        assert_eq!(blob.first(gid, &shared).0, 0);
        assert_eq!(blob.value(gid, "givenname", &shared), Value::Null);
        let snid = table.id("sn").unwrap();
        assert_eq!(blob.value(snid, "sn", &shared), Value::Str("Lee".into()));
        // Two values, one not UTF-8: the attribute reads as binary (its first value).
        assert_eq!(
            blob.value(pid, "proxyaddresses", &shared),
            Value::Bin(b"SMTP:a@x.example".to_vec())
        );
        // Re-applying the same values is not a change; the RDN survives a new one.
        assert!(!blob.apply(&table, &mut shared, [("sn", sn.as_slice())], false));
        let moved = blob.with_rdn("CN=Ann Smith");
        assert_eq!(moved.rdn(), "CN=Ann Smith");
        assert_eq!(vals(moved.get(pid, &shared)), vals(blob.get(pid, &shared)));
    }

    #[test]
    fn sid_text_from_the_cached_domain_part_equals_the_full_rendering() {
        let table = AttrTable::new(["objectSid"]);
        let id = table.id("objectsid").unwrap();
        let mut shared = Shared::default();
        // S-1-5-21-1004336348-1177238915-682003330-<rid>, laid out by hand (MS-DTYP 2.4.2.2).
        let sid = |rid: u32| -> Vec<u8> {
            let mut b = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
            for sub in [21u32, 1_004_336_348, 1_177_238_915, 682_003_330, rid] {
                b.extend_from_slice(&sub.to_le_bytes());
            }
            b
        };
        for rid in [500u32, 1_104, u32::MAX] {
            let mut d = ObjData::default();
            let v = [sid(rid)];
            d.apply(&table, &mut shared, [("objectSid", &v[..])], true);
            let mut locs = [Loc::default(); 4];
            d.locate(&mut locs);
            assert_eq!(
                d.sid_text_at(locs[usize::from(id)], &shared).as_deref(),
                Some(format!("S-1-5-21-1004336348-1177238915-682003330-{rid}").as_str())
            );
        }
        assert_eq!(shared.len(), 1);
        // Not a SID: no text.
        let mut d = ObjData::default();
        let v = [b"abc".to_vec()];
        d.apply(&table, &mut shared, [("objectSid", &v[..])], true);
        let mut locs = [Loc::default(); 4];
        d.locate(&mut locs);
        assert_eq!(d.sid_text_at(locs[usize::from(id)], &shared), None);
    }

    #[test]
    fn malformed_blobs_read_as_empty() {
        let shared = Shared::default();
        for bytes in [
            vec![0x80],
            vec![0, 0, 0, 0, 0x80],
            vec![0, 0, 0, 0, 0, 5, 1, 0xff, 0xff],
            vec![0, 0, 0, 0, 0, 1, 1, 9, 3],
        ] {
            let d = ObjData(bytes.into_boxed_slice());
            assert!(d.get(1, &shared).is_empty());
            assert_eq!(d.value(1, "x", &shared), Value::Null);
        }
    }
}
