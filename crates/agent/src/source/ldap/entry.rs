//! Decoding a SearchResultEntry into a binary-safe [`RawEntry`], without ldap3's panicking parser.
//!
//! ```text
//! SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName LDAPDN,
//!     attributes SEQUENCE OF SEQUENCE { type AttributeDescription, vals SET OF OCTET STRING } }
//! ```
//! Values stay bytes: a 16-byte `objectGUID` that happens to be valid UTF-8 is still 16 bytes here.

use ldap3::asn1::{PL, StructureTag, TagClass};

use super::range::ValueRange;
use crate::event::Guid;

/// Why an entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The message is not an [APPLICATION 4] SearchResultEntry.
    #[error("not a search result entry (class {class:?}, id {id})")]
    NotAnEntry {
        /// The tag class found.
        class: TagClass,
        /// The tag number found.
        id: u64,
    },
    /// The entry's structure does not follow the grammar; the text says where.
    #[error("malformed search result entry: {0}")]
    Malformed(&'static str),
    /// The DN or an attribute name is not UTF-8.
    #[error("search result entry has a non-UTF-8 {0}")]
    NotUtf8(&'static str),
}

/// One attribute of an entry, with its `;range=` option split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAttr {
    /// The attribute name without options (`member` for `member;range=0-1499`).
    pub name: String,
    /// The `;range=` option, when present.
    pub range: Option<ValueRange>,
    /// Raw values (empty: "present with no values", AD's way of saying removed).
    pub values: Vec<Vec<u8>>,
}

/// A search result entry, binary-safe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEntry {
    /// The DN as the server sent it.
    pub dn: String,
    /// The attributes in server order.
    pub attrs: Vec<RawAttr>,
}

impl RawEntry {
    /// The first attribute with this name (case-insensitive) and no range option.
    pub fn get(&self, name: &str) -> Option<&RawAttr> {
        self.attrs
            .iter()
            .find(|a| a.range.is_none() && a.name.eq_ignore_ascii_case(name))
    }

    /// True when the attribute is present (with or without values, any range).
    pub fn has(&self, name: &str) -> bool {
        self.attrs.iter().any(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The first value of an attribute as text, if it is UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        let value = self.get(name)?.values.first()?;
        std::str::from_utf8(value).ok()
    }

    /// The values of an attribute as text (non-UTF-8 values skipped).
    pub fn texts(&self, name: &str) -> Vec<&str> {
        self.get(name)
            .map(|a| {
                a.values
                    .iter()
                    .filter_map(|v| std::str::from_utf8(v).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `objectGUID`: 16 raw bytes, or the textual form some code paths produce.
    pub fn guid(&self) -> Option<Guid> {
        let value = self.get("objectGUID")?.values.first()?;
        Guid::from_slice(value).or_else(|| Guid::parse(std::str::from_utf8(value).ok()?))
    }

    /// An integer attribute such as `uSNChanged` or `pwdLastSet`.
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.text(name)?.trim().parse().ok()
    }

    /// `isDeleted: TRUE`.
    pub fn is_deleted(&self) -> bool {
        self.text("isDeleted")
            .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
    }

    /// A rough size in bytes, for the memory budget of a pass.
    pub fn approx_size(&self) -> usize {
        self.dn.len()
            + self
                .attrs
                .iter()
                .map(|a| a.name.len() + 32 + a.values.iter().map(|v| v.len() + 24).sum::<usize>())
                .sum::<usize>()
    }
}

fn constructed(tag: StructureTag, what: &'static str) -> Result<Vec<StructureTag>, EntryError> {
    match tag.payload {
        PL::C(children) => Ok(children),
        PL::P(_) => Err(EntryError::Malformed(what)),
    }
}

fn primitive(tag: StructureTag, what: &'static str) -> Result<Vec<u8>, EntryError> {
    match tag.payload {
        PL::P(bytes) => Ok(bytes),
        PL::C(_) => Err(EntryError::Malformed(what)),
    }
}

/// Decodes an [APPLICATION 4] entry as ldap3 hands it over in `ResultEntry.0`.
pub fn parse_entry(tag: StructureTag) -> Result<RawEntry, EntryError> {
    if tag.class != TagClass::Application || tag.id != 4 {
        return Err(EntryError::NotAnEntry {
            class: tag.class,
            id: tag.id,
        });
    }
    let mut parts = constructed(tag, "entry is primitive")?.into_iter();
    let dn = primitive(
        parts.next().ok_or(EntryError::Malformed("missing DN"))?,
        "DN is constructed",
    )?;
    let dn = String::from_utf8(dn).map_err(|_| EntryError::NotUtf8("DN"))?;
    let list = parts
        .next()
        .ok_or(EntryError::Malformed("missing attribute list"))?;
    let mut attrs = Vec::new();
    for partial in constructed(list, "attribute list is primitive")? {
        let mut pieces = constructed(partial, "attribute is primitive")?.into_iter();
        let desc = primitive(
            pieces
                .next()
                .ok_or(EntryError::Malformed("missing attribute type"))?,
            "attribute type is constructed",
        )?;
        let desc = String::from_utf8(desc).map_err(|_| EntryError::NotUtf8("attribute type"))?;
        let vals = pieces
            .next()
            .ok_or(EntryError::Malformed("missing value set"))?;
        let values = constructed(vals, "value set is primitive")?
            .into_iter()
            .map(|v| primitive(v, "value is constructed"))
            .collect::<Result<Vec<_>, _>>()?;
        let (name, range) = ValueRange::split_description(&desc);
        attrs.push(RawAttr {
            name: name.to_string(),
            range,
            values,
        });
    }
    Ok(RawEntry { dn, attrs })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::source::ldap::ber::{TAG_OCTET_STRING, TAG_SEQUENCE, parse_structure, write_tlv};

    /// Encodes an entry the way a server puts it on the wire (test helper for other modules too).
    pub(crate) fn encode_entry(dn: &str, attrs: &[(&str, Vec<Vec<u8>>)]) -> Vec<u8> {
        let mut list = Vec::new();
        for (desc, values) in attrs {
            let mut set = Vec::new();
            for v in values {
                write_tlv(&mut set, TAG_OCTET_STRING, v);
            }
            let mut partial = Vec::new();
            write_tlv(&mut partial, TAG_OCTET_STRING, desc.as_bytes());
            write_tlv(&mut partial, 0x31, &set);
            write_tlv(&mut list, TAG_SEQUENCE, &partial);
        }
        let mut body = Vec::new();
        write_tlv(&mut body, TAG_OCTET_STRING, dn.as_bytes());
        write_tlv(&mut body, TAG_SEQUENCE, &list);
        let mut out = Vec::new();
        write_tlv(&mut out, 0x64, &body);
        out
    }

    /// Builds a [`RawEntry`] through the wire encoding and the real decoder.
    pub(crate) fn entry(dn: &str, attrs: &[(&str, Vec<Vec<u8>>)]) -> RawEntry {
        parse_entry(parse_structure(&encode_entry(dn, attrs)).unwrap()).unwrap()
    }

    pub(crate) fn t(values: &[&str]) -> Vec<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    #[test]
    fn binary_values_stay_binary_and_guid_is_read_in_both_forms() {
        // 16 bytes that are valid UTF-8: ldap3's SearchEntry would put them into `attrs` as a String.
        let raw = *b"0123456789abcdef";
        let e = entry(
            "CN=u,DC=x",
            &[
                ("objectGUID", vec![raw.to_vec()]),
                ("member;range=0-1499", t(&["CN=a"])),
            ],
        );
        assert_eq!(e.guid(), Some(Guid(raw)));
        assert_eq!(e.attrs[1].name, "member");
        assert_eq!(
            e.attrs[1].range,
            Some(ValueRange {
                start: 0,
                end: Some(1499)
            })
        );
        let text = entry(
            "CN=u,DC=x",
            &[("objectGUID", t(&["00112233-4455-6677-8899-aabbccddeeff"]))],
        );
        assert_eq!(
            text.guid().map(|g| g.to_string()).as_deref(),
            Some("00112233-4455-6677-8899-aabbccddeeff")
        );
    }

    #[test]
    fn structural_errors_are_reported() {
        let not_entry = parse_structure(&[0x65, 0x00]).unwrap();
        assert!(matches!(
            parse_entry(not_entry),
            Err(EntryError::NotAnEntry { id: 5, .. })
        ));
        let no_attrs = parse_structure(&[0x64, 0x03, 0x04, 0x01, b'x']).unwrap();
        assert_eq!(
            parse_entry(no_attrs),
            Err(EntryError::Malformed("missing attribute list"))
        );
        let bad_dn = parse_structure(&[0x64, 0x05, 0x04, 0x01, 0xff, 0x30, 0x00]).unwrap();
        assert_eq!(parse_entry(bad_dn), Err(EntryError::NotUtf8("DN")));
    }
}
