//! The object model: what projection keeps per AD object, compactly.
//!
//! Only attributes that some mapping, scoping filter or the fixed identity fields read are kept (the
//! configuration's "needed" set), each under an interned `u16` id ([`AttrTable`]). An object's leftmost
//! RDN and all its kept values live in one byte blob ([`ObjData`]):
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
//! Shared parts ([`Shared`]) are the values' domain parts — the text from the last `@` on, and the domain
//! SID of an objectSid — which every object of a domain repeats. They are interned in order of first
//! appearance (so the same journal gives the same ids) and never removed; the table stops growing at
//! [`Shared::MAX_PARTS`] parts, after which values are stored whole. A typical user is ~130 bytes.

use std::borrow::Cow;

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::dn::fnv1a;
use super::expr::Value;
use super::ops::ObjectKind;
use crate::event::ObjectClass;

/// The synced kind of an AD object class; `None` for classes that are not synced (computers, OUs, …).
pub fn kind_of(class: &ObjectClass) -> Option<ObjectKind> {
    match class {
        ObjectClass::User | ObjectClass::InetOrgPerson => Some(ObjectKind::User),
        ObjectClass::Group => Some(ObjectKind::Group),
        ObjectClass::Contact => Some(ObjectKind::Contact),
        ObjectClass::OrganizationalUnit | ObjectClass::Other(_) => None,
    }
}

/// A case-insensitive hash of an attribute name, eight bytes at a time: every byte is or-ed with 0x20,
/// which maps ASCII capitals to small letters (it merges a few other pairs too, such as `@` and `` ` ``;
/// the table compares names exactly afterwards, so that only costs a rare extra comparison).
fn fnv_lower(name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ name.len() as u64;
    let mut chunks = name.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ (w | 0x2020_2020_2020_2020))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    let mut tail = [0x20u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let w = u64::from_le_bytes(tail) | 0x2020_2020_2020_2020;
    let h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// Attribute names interned to small ids; names are compared ASCII-case-insensitively.
#[derive(Clone, Default)]
pub struct AttrTable {
    names: Vec<String>,
    shapes: Vec<Shape>,
    index: HashTable<u16>,
}

impl std::fmt::Debug for AttrTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttrTable")
            .field("names", &self.names)
            .finish()
    }
}

impl PartialEq for AttrTable {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Eq for AttrTable {}

impl AttrTable {
    /// A table holding exactly `names` (lower-cased, deduplicated, sorted), so ids do not depend on
    /// the order events arrive in.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> AttrTable {
        let mut sorted: Vec<String> = names
            .into_iter()
            .map(|n| n.as_ref().to_ascii_lowercase())
            .collect();
        sorted.sort();
        sorted.dedup();
        sorted.truncate(usize::from(u16::MAX));
        let mut index = HashTable::with_capacity(sorted.len());
        for (i, n) in sorted.iter().enumerate() {
            index.insert_unique(fnv_lower(n), i as u16, |&j| {
                fnv_lower(&sorted[usize::from(j)])
            });
        }
        AttrTable {
            shapes: sorted.iter().map(|n| shape_of(n)).collect(),
            names: sorted,
            index,
        }
    }

    /// The id of `name` (any case), if the table keeps it. One hash of the name, no allocation.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.index
            .find(fnv_lower(name), |&i| {
                self.names[usize::from(i)].eq_ignore_ascii_case(name)
            })
            .copied()
    }

    /// The name of `id` (lower-case).
    pub fn name(&self, id: u16) -> Option<&str> {
        self.names.get(usize::from(id)).map(String::as_str)
    }

    /// The schema shape of `id`'s values.
    pub fn shape(&self, id: u16) -> Shape {
        self.shapes
            .get(usize::from(id))
            .copied()
            .unwrap_or(Shape::Single)
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
    // The usual case: one byte.
    let first = *bytes.get(*at)?;
    if first < 0x80 {
        *at += 1;
        return Some(usize::from(first));
    }
    let mut v = 0usize;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

const MODE_PLAIN: usize = 0;
const MODE_SUFFIX: usize = 1;
const MODE_PREFIX: usize = 2;

/// The interned shared parts of values (see the module doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shared {
    parts: Vec<Box<[u8]>>,
    /// Derived from `parts` (rebuilt by [`Shared::reindex`]).
    #[serde(skip)]
    index: HashTable<u32>,
    /// Scratch space for encoding a blob, so each blob is allocated once at its exact size.
    #[serde(skip)]
    scratch: Vec<u8>,
    /// Derived from `parts`: the `S-1-5-21-…` text of parts that are a domain SID (the SID without its RID).
    #[serde(skip)]
    sid_texts: Vec<Option<Box<str>>>,
}

/// The text form of a domain SID prefix (a SID's bytes without the last sub-authority), if it is one.
fn sid_prefix_text(part: &[u8]) -> Option<Box<str>> {
    if part.first() != Some(&1) {
        return None;
    }
    let mut full = part.to_vec();
    full.extend_from_slice(&[0; 4]);
    let text = super::sid::sid_to_string(&full)?;
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

    fn get(&self, id: usize) -> Option<&[u8]> {
        self.parts.get(id).map(|p| &p[..])
    }

    /// The id of `part`, interning it; `None` when the table is full.
    fn intern(&mut self, part: &[u8]) -> Option<usize> {
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

/// Where a value splits into its own bytes and a shared part: `(mode, split)`.
fn shared_split(v: &[u8]) -> Option<(usize, usize)> {
    // A SID (revision 1) of a domain account: the domain SID is everything but the last sub-authority.
    if v.len() >= 24 && v[0] == 1 && v[1] >= 4 && v.len() == 8 + 4 * usize::from(v[1]) {
        return Some((MODE_PREFIX, v.len() - 4));
    }
    // Text with a mail domain: from the last `@` on.
    let at = v.iter().rposition(|b| *b == b'@')?;
    (at > 0 && v.len() - at >= 4 && v.len() - at <= 255).then_some((MODE_SUFFIX, at))
}

fn encode_value(out: &mut Vec<u8>, v: &[u8], shared: &mut Shared) {
    if let Some((mode, split)) = shared_split(v) {
        let (own, part) = match mode {
            MODE_SUFFIX => (&v[..split], &v[split..]),
            _ => (&v[split..], &v[..split]),
        };
        if let Some(id) = shared.intern(part) {
            put_varint(out, own.len() << 2 | mode);
            put_varint(out, id);
            out.extend_from_slice(own);
            return;
        }
    }
    put_varint(out, v.len() << 2 | MODE_PLAIN);
    out.extend_from_slice(v);
}

/// Reads one value at `at`; `None` when the blob is malformed (impossible unless memory is corrupt).
fn decode_value<'a>(b: &'a [u8], at: &mut usize, shared: &Shared) -> Option<Cow<'a, [u8]>> {
    let h = get_varint(b, at)?;
    let part = match h & 3 {
        MODE_PLAIN => None,
        _ => Some(shared.get(get_varint(b, at)?)?),
    };
    let own = b.get(*at..at.checked_add(h >> 2)?)?;
    *at += h >> 2;
    Some(match (h & 3, part) {
        (MODE_SUFFIX, Some(p)) => Cow::Owned([own, p].concat()),
        (_, Some(p)) => Cow::Owned([p, own].concat()),
        _ => Cow::Borrowed(own),
    })
}

/// Skips one value at `at`.
fn skip_value(b: &[u8], at: &mut usize) -> Option<()> {
    let h = get_varint(b, at)?;
    if h & 3 != MODE_PLAIN {
        get_varint(b, at)?;
    }
    *at = at.checked_add(h >> 2)?;
    (*at <= b.len()).then_some(())
}

/// Bytes before the RDN: its hash.
const HEAD: usize = 4;

/// One object's leftmost RDN and kept attribute values, in one allocation (layout in the module doc).
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
    let h = super::dn::canonical_hash(rdn);
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
            super::sid::push_decimal(&mut text, u64::from(u32::from_le_bytes([a, b, c, d])));
            return Some(text);
        }
        let v = decode_value(values, &mut 0, shared)?;
        super::sid::sid_to_string(&v)
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
}

/// Attributes whose values are binary in AD; read as [`Value::Bin`].
const BINARY: &[&str] = &[
    "objectguid",
    "objectsid",
    "ms-ds-consistencyguid",
    "msds-consistencyguid",
    "thumbnailphoto",
    "jpegphoto",
    "usercertificate",
];

/// Attributes that are multi-valued in the AD schema; read as [`Value::Multi`] even with one value.
const MULTI: &[&str] = &[
    "proxyaddresses",
    "othertelephone",
    "othermobile",
    "otherfacsimiletelephonenumber",
    "otherhomephone",
    "otheripphone",
    "otherpager",
    "url",
    "memberof",
    "objectclass",
    "description",
    "postofficebox",
    "mssfu30nisdomain",
    "serviceprincipalname",
    "othermailbox",
];

/// How an attribute's values read as a [`Value`], from the AD schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Single-valued text.
    Single,
    /// Binary ([`BINARY`]): the first value as [`Value::Bin`].
    Binary,
    /// Multi-valued text ([`MULTI`]): [`Value::Multi`] even with one value.
    Multi,
}

/// The shape of attribute `name_lower`.
pub fn shape_of(name_lower: &str) -> Shape {
    if BINARY.contains(&name_lower) {
        Shape::Binary
    } else if MULTI.contains(&name_lower) {
        Shape::Multi
    } else {
        Shape::Single
    }
}

/// [`shaped_value`] of a single value, reusing its buffer when it is already owned.
pub fn one_value(shape: Shape, v: Cow<'_, [u8]>) -> Value {
    match (shape, v) {
        (Shape::Binary, v) => Value::Bin(v.into_owned()),
        (Shape::Multi, v) => shaped_value(shape, &[v]),
        (Shape::Single, Cow::Borrowed(b)) => match std::str::from_utf8(b) {
            Ok(text) => Value::Str(text.to_string()),
            Err(_) => Value::Bin(b.to_vec()),
        },
        (Shape::Single, Cow::Owned(b)) => match String::from_utf8(b) {
            Ok(text) => Value::Str(text),
            Err(e) => Value::Bin(e.into_bytes()),
        },
    }
}

/// Reads raw values of an attribute of shape `shape` as a [`Value`].
pub fn shaped_value<V: AsRef<[u8]>>(shape: Shape, values: &[V]) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    if shape == Shape::Binary {
        return Value::Bin(first.as_ref().to_vec());
    }
    if let [one] = values
        && shape == Shape::Single
    {
        return match std::str::from_utf8(one.as_ref()) {
            Ok(text) => Value::Str(text.to_string()),
            Err(_) => Value::Bin(one.as_ref().to_vec()),
        };
    }
    let texts: Option<Vec<String>> = values
        .iter()
        .map(|v| std::str::from_utf8(v.as_ref()).ok().map(str::to_string))
        .collect();
    match texts {
        None => Value::Bin(first.as_ref().to_vec()),
        Some(t) => Value::Multi(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_value<V: AsRef<[u8]>>(name_lower: &str, values: &[V]) -> Value {
        shaped_value(shape_of(name_lower), values)
    }

    fn vals(v: Vec<Cow<'_, [u8]>>) -> Vec<Vec<u8>> {
        v.into_iter().map(Cow::into_owned).collect()
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
        let sn = vec![b"Lee".to_vec()];
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

    #[test]
    fn one_value_agrees_with_shaped_value() {
        let cases: [(&str, &[u8]); 5] = [
            ("mail", b"a@x"),
            ("proxyaddresses", b"SMTP:a@x"),
            ("objectsid", b"abc"),
            ("cn", &[0xff]),
            ("cn", b""),
        ];
        for (name, v) in cases {
            let expected = test_value(name, &[v]);
            let shape = shape_of(name);
            assert_eq!(one_value(shape, Cow::Borrowed(v)), expected, "{name}");
            assert_eq!(one_value(shape, Cow::Owned(v.to_vec())), expected, "{name}");
        }
    }

    #[test]
    fn values_by_schema_shape() {
        assert_eq!(test_value("mail", &[b"a@x"]), Value::Str("a@x".into()));
        assert_eq!(
            test_value("proxyaddresses", &[b"SMTP:a@x"]),
            Value::Multi(vec!["SMTP:a@x".into()])
        );
        assert_eq!(
            test_value("objectsid", &[b"abc"]),
            Value::Bin(b"abc".to_vec())
        );
        assert_eq!(test_value("cn", &[&[0xff]]), Value::Bin(vec![0xff]));
        assert_eq!(test_value::<&[u8]>("cn", &[]), Value::Null);
    }
}
