//! The object model: what projection keeps per AD object, compactly.
//!
//! Only attributes that some mapping, scoping filter or the fixed identity fields read are kept (the
//! configuration's "needed" set), each under an interned `u16` id, all values of one object in a single
//! byte blob ([`AttrBlob`]): `{ id: u16 LE, count: varint, (len: varint, bytes)* }*`, ids ascending.
//! That keeps a typical user at a few hundred bytes.

use serde::{Deserialize, Serialize};

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

/// Attribute names interned to small ids; names are compared lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrTable {
    names: Vec<String>,
}

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
        AttrTable { names: sorted }
    }

    /// The id of `name` (any case), if the table keeps it.
    pub fn id(&self, name: &str) -> Option<u16> {
        // Names are stored lower-cased and sorted by bytes, so a case-folding comparison can binary-search
        // without allocating.
        self.names
            .binary_search_by(|n| n.bytes().cmp(name.bytes().map(|b| b.to_ascii_lowercase())))
            .ok()
            .map(|i| i as u16)
    }

    /// The name of `id`.
    pub fn name(&self, id: u16) -> Option<&str> {
        self.names.get(usize::from(id)).map(String::as_str)
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

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
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

/// All kept attribute values of one object, in one allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrBlob(Box<[u8]>);

/// Decoded view of one attribute in a blob.
pub type AttrEntry<'a> = (u16, Vec<&'a [u8]>);

impl AttrBlob {
    /// Decodes every entry, ids ascending. A malformed blob (impossible unless memory is corrupt) yields the
    /// entries before the damage.
    pub fn entries(&self) -> Vec<AttrEntry<'_>> {
        let b = &self.0;
        let mut out = Vec::new();
        let mut at = 0;
        while at + 2 <= b.len() {
            let id = u16::from_le_bytes([b[at], b[at + 1]]);
            at += 2;
            let Some(count) = get_varint(b, &mut at) else {
                break;
            };
            let mut values = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                let Some(len) = get_varint(b, &mut at) else {
                    return out;
                };
                let Some(v) = b.get(at..at.saturating_add(len)) else {
                    return out;
                };
                at += len;
                values.push(v);
            }
            out.push((id, values));
        }
        out
    }

    /// The values of attribute `id` (empty when absent). Scans the blob; allocates only the result.
    pub fn get(&self, id: u16) -> Vec<&[u8]> {
        let b = &self.0;
        let mut at = 0;
        while at + 2 <= b.len() {
            let this = u16::from_le_bytes([b[at], b[at + 1]]);
            at += 2;
            let Some(count) = get_varint(b, &mut at) else {
                break;
            };
            if this > id {
                break;
            }
            let mut values = Vec::new();
            for _ in 0..count {
                let Some(len) = get_varint(b, &mut at) else {
                    return Vec::new();
                };
                let Some(v) = b.get(at..at.saturating_add(len)) else {
                    return Vec::new();
                };
                at += len;
                if this == id {
                    values.push(v);
                }
            }
            if this == id {
                return values;
            }
        }
        Vec::new()
    }

    /// How many values attribute `id` has, and the first of them, without allocating.
    pub fn first(&self, id: u16) -> (usize, Option<&[u8]>) {
        let b = &self.0;
        let mut at = 0;
        while at + 2 <= b.len() {
            let this = u16::from_le_bytes([b[at], b[at + 1]]);
            at += 2;
            let Some(count) = get_varint(b, &mut at) else {
                break;
            };
            if this > id {
                break;
            }
            if this == id {
                let first =
                    get_varint(b, &mut at).and_then(|len| b.get(at..at.saturating_add(len)));
                return (count, first);
            }
            for _ in 0..count {
                let Some(len) = get_varint(b, &mut at) else {
                    return (0, None);
                };
                at = at.saturating_add(len);
            }
        }
        (0, None)
    }

    /// Attribute `id` as an expression [`Value`] (`name_lower` gives its schema shape, see [`to_value`]);
    /// the usual single value is read without intermediate allocations.
    pub fn value(&self, id: u16, name_lower: &str) -> Value {
        match self.first(id) {
            (0, _) => Value::Null,
            (1, Some(v)) => to_value(name_lower, &[v]),
            _ => to_value(name_lower, &self.get(id)),
        }
    }

    fn encode<V: AsRef<[u8]>>(entries: &[(u16, &[V])]) -> AttrBlob {
        let mut out = Vec::new();
        for (id, values) in entries {
            if values.is_empty() {
                continue;
            }
            out.extend_from_slice(&id.to_le_bytes());
            put_varint(&mut out, values.len());
            for v in values.iter() {
                let v = v.as_ref();
                put_varint(&mut out, v.len());
                out.extend_from_slice(v);
            }
        }
        AttrBlob(out.into_boxed_slice())
    }

    /// Applies changes: with `replace_all` the blob becomes exactly `changes`, otherwise each changed attribute
    /// replaces its old values (an empty value list removes it). Attributes the table does not keep are
    /// dropped; of repeated names the last wins. Returns whether anything changed.
    pub fn apply<'a, I>(&mut self, table: &AttrTable, changes: I, replace_all: bool) -> bool
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
        let next = if replace_all {
            AttrBlob::encode(&new)
        } else {
            let old = self.entries();
            let mut merged: Vec<(u16, Vec<&[u8]>)> = old
                .into_iter()
                .filter(|(id, _)| new.binary_search_by_key(id, |(i, _)| *i).is_err())
                .collect();
            merged.extend(
                new.iter()
                    .map(|(id, vals)| (*id, vals.iter().map(Vec::as_slice).collect())),
            );
            merged.sort_by_key(|(id, _)| *id);
            let refs: Vec<(u16, &[&[u8]])> =
                merged.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            AttrBlob::encode(&refs)
        };
        let changed = next != *self;
        *self = next;
        changed
    }

    /// Bytes held (for the memory accounting in the benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
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

/// Reads raw AD values as an expression [`Value`], by the attribute's schema shape.
pub fn to_value(name_lower: &str, values: &[&[u8]]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    if BINARY.contains(&name_lower) {
        return Value::Bin(values[0].to_vec());
    }
    if let [one] = values
        && !MULTI.contains(&name_lower)
    {
        return match std::str::from_utf8(one) {
            Ok(text) => Value::Str(text.to_string()),
            Err(_) => Value::Bin(one.to_vec()),
        };
    }
    let texts: Option<Vec<String>> = values
        .iter()
        .map(|v| std::str::from_utf8(v).ok().map(str::to_string))
        .collect();
    match texts {
        None => Value::Bin(values[0].to_vec()),
        Some(mut t) if t.len() == 1 && !MULTI.contains(&name_lower) => Value::Str(t.remove(0)),
        Some(t) => Value::Multi(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trip_and_delta() {
        let table = AttrTable::new(["givenName", "sn", "proxyAddresses"]);
        assert_eq!(table.id("GIVENNAME"), table.id("givenname"));
        assert_eq!(table.id("mail"), None);
        let mut blob = AttrBlob::default();
        let given = vec![b"Ann".to_vec()];
        let proxies = vec![b"SMTP:a@x".to_vec(), vec![0xff, 0x00]];
        let ignored = vec![b"x".to_vec()];
        assert!(blob.apply(
            &table,
            [
                ("givenName", given.as_slice()),
                ("proxyAddresses", proxies.as_slice()),
                ("mail", ignored.as_slice())
            ],
            true
        ));
        let gid = table.id("givenname").unwrap();
        let pid = table.id("proxyaddresses").unwrap();
        assert_eq!(blob.get(gid), vec![b"Ann".as_slice()]);
        assert_eq!(
            blob.get(pid),
            vec![b"SMTP:a@x".as_slice(), [0xff, 0x00].as_slice()]
        );
        // A delta changes one attribute and keeps the rest; an empty list removes.
        let sn = vec![b"Lee".to_vec()];
        assert!(blob.apply(
            &table,
            [("sn", sn.as_slice()), ("givenName", &[][..])],
            false
        ));
        assert!(blob.get(gid).is_empty());
        assert_eq!(blob.get(table.id("sn").unwrap()), vec![b"Lee".as_slice()]);
        assert_eq!(blob.get(pid).len(), 2);
        assert_eq!(blob.first(pid), (2, Some(b"SMTP:a@x".as_slice())));
        assert_eq!(blob.first(gid), (0, None));
        assert_eq!(blob.value(gid, "givenname"), Value::Null);
        let snid = table.id("sn").unwrap();
        assert_eq!(blob.value(snid, "sn"), Value::Str("Lee".into()));
        // Two values, one not UTF-8: the attribute reads as binary (its first value).
        assert_eq!(
            blob.value(pid, "proxyaddresses"),
            Value::Bin(b"SMTP:a@x".to_vec())
        );
        // Re-applying the same values is not a change.
        assert!(!blob.apply(&table, [("sn", sn.as_slice())], false));
    }

    #[test]
    fn values_by_schema_shape() {
        assert_eq!(to_value("mail", &[b"a@x"]), Value::Str("a@x".into()));
        assert_eq!(
            to_value("proxyaddresses", &[b"SMTP:a@x"]),
            Value::Multi(vec!["SMTP:a@x".into()])
        );
        assert_eq!(
            to_value("objectsid", &[b"abc"]),
            Value::Bin(b"abc".to_vec())
        );
        assert_eq!(to_value("cn", &[&[0xff]]), Value::Bin(vec![0xff]));
        assert_eq!(to_value("cn", &[]), Value::Null);
    }
}
