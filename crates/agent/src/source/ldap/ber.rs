//! A small, strict BER reader and writer for the LDAP controls and entries this source handles.
//!
//! Only what LDAP uses: low tag numbers (< 31), definite lengths of up to four length octets, and
//! nesting bounded by [`MAX_DEPTH`]. Every malformed input is a [`BerError`], never a panic — ldap3's
//! own parsers `expect()` on bad input, which is why the DirSync control and the search entries are
//! decoded here.

use ldap3::asn1::{PL, StructureTag, TagClass};

/// Deepest nesting [`parse_structure`] accepts; LDAP entries need 4 levels.
pub const MAX_DEPTH: usize = 16;

/// Universal tag of BOOLEAN.
pub const TAG_BOOLEAN: u8 = 0x01;
/// Universal tag of INTEGER.
pub const TAG_INTEGER: u8 = 0x02;
/// Universal tag of OCTET STRING.
pub const TAG_OCTET_STRING: u8 = 0x04;
/// Universal, constructed tag of SEQUENCE.
pub const TAG_SEQUENCE: u8 = 0x30;

/// Why a BER value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The input ended inside a tag, a length or a value.
    #[error("BER input truncated")]
    Truncated,
    /// High tag numbers (0x1f form) do not occur in LDAP and are rejected.
    #[error("BER high tag number form is not supported")]
    HighTagNumber,
    /// Indefinite lengths (0x80) are forbidden in LDAP.
    #[error("BER indefinite length is not allowed")]
    IndefiniteLength,
    /// A length needs more than four octets.
    #[error("BER length of {0} octets is too long")]
    LengthTooLong(usize),
    /// A different tag was expected at this position.
    #[error("expected BER tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag {
        /// The tag the grammar requires.
        expected: u8,
        /// The tag found in the input.
        found: u8,
    },
    /// An INTEGER is empty or does not fit into 64 bits.
    #[error("BER integer of {0} octets is empty or out of range")]
    BadInteger(usize),
    /// A BOOLEAN value is not exactly one octet.
    #[error("BER boolean must be one octet")]
    BadBoolean,
    /// Bytes were left over after a complete value.
    #[error("{0} trailing bytes after BER value")]
    TrailingBytes(usize),
    /// Constructed values nest deeper than [`MAX_DEPTH`].
    #[error("BER nesting deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// One tag-length-value element, borrowing its content from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet (class, constructed bit and tag number).
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// True when the constructed bit (0x20) is set.
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

/// Reads consecutive TLVs from a buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<(), BerError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(BerError::TrailingBytes(self.buf.len()))
        }
    }

    /// Reads the next TLV.
    pub fn read(&mut self) -> Result<Tlv<'a>, BerError> {
        let (&tag, rest) = self.buf.split_first().ok_or(BerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(BerError::HighTagNumber);
        }
        let (&first, mut rest) = rest.split_first().ok_or(BerError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else if first == 0x80 {
            return Err(BerError::IndefiniteLength);
        } else {
            let n = usize::from(first & 0x7f);
            if n > 4 {
                return Err(BerError::LengthTooLong(n));
            }
            let (octets, after) = rest.split_at_checked(n).ok_or(BerError::Truncated)?;
            rest = after;
            octets
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (value, after) = rest.split_at_checked(len).ok_or(BerError::Truncated)?;
        self.buf = after;
        Ok(Tlv { tag, value })
    }

    /// Reads the next TLV and checks its tag.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, BerError> {
        let tlv = self.read()?;
        if tlv.tag == tag {
            Ok(tlv)
        } else {
            Err(BerError::UnexpectedTag {
                expected: tag,
                found: tlv.tag,
            })
        }
    }

    /// Reads a (signed, two's complement) INTEGER.
    pub fn integer(&mut self) -> Result<i64, BerError> {
        decode_integer(self.expect(TAG_INTEGER)?.value)
    }

    /// Reads an OCTET STRING.
    pub fn octets(&mut self) -> Result<&'a [u8], BerError> {
        Ok(self.expect(TAG_OCTET_STRING)?.value)
    }

    /// Reads a SEQUENCE and returns a reader over its content.
    pub fn sequence(&mut self) -> Result<Reader<'a>, BerError> {
        Ok(Reader::new(self.expect(TAG_SEQUENCE)?.value))
    }
}

/// Decodes INTEGER content octets as a signed 64-bit value.
pub fn decode_integer(content: &[u8]) -> Result<i64, BerError> {
    if content.is_empty() || content.len() > 8 {
        return Err(BerError::BadInteger(content.len()));
    }
    let negative = content[0] & 0x80 != 0;
    let init: i64 = if negative { -1 } else { 0 };
    Ok(content
        .iter()
        .fold(init, |acc, b| (acc << 8) | i64::from(*b)))
}

/// Decodes BOOLEAN content octets (any non-zero octet is true).
pub fn decode_boolean(content: &[u8]) -> Result<bool, BerError> {
    match content {
        [b] => Ok(*b != 0),
        _ => Err(BerError::BadBoolean),
    }
}

/// Appends a TLV with a definite, minimal length.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// The minimal two's complement content octets of `value` (unlike lber, correct for every negative).
pub fn integer_content(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// Appends an INTEGER.
pub fn write_integer(out: &mut Vec<u8>, value: i64) {
    write_tlv(out, TAG_INTEGER, &integer_content(value));
}

/// Parses one complete BER element into ldap3's tree form, without panicking, so that entries can be
/// decoded by [`super::entry`] from raw bytes (the fuzz target and tests use this).
pub fn parse_structure(input: &[u8]) -> Result<StructureTag, BerError> {
    let mut reader = Reader::new(input);
    let tag = to_structure(reader.read()?, 0)?;
    reader.finish()?;
    Ok(tag)
}

fn to_structure(tlv: Tlv<'_>, depth: usize) -> Result<StructureTag, BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let class = match tlv.tag >> 6 {
        0 => TagClass::Universal,
        1 => TagClass::Application,
        2 => TagClass::Context,
        _ => TagClass::Private,
    };
    let payload = if tlv.is_constructed() {
        let mut inner = Reader::new(tlv.value);
        let mut children = Vec::new();
        while !inner.is_empty() {
            children.push(to_structure(inner.read()?, depth + 1)?);
        }
        PL::C(children)
    } else {
        PL::P(tlv.value.to_vec())
    };
    Ok(StructureTag {
        class,
        id: u64::from(tlv.tag & 0x1f),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_including_the_values_lber_gets_wrong() {
        // X.690 §8.3 examples: 0 -> 00, 127 -> 7f, 128 -> 00 80, -128 -> 80, -129 -> ff 7f.
        assert_eq!(integer_content(0), [0x00]);
        assert_eq!(integer_content(127), [0x7f]);
        assert_eq!(integer_content(128), [0x00, 0x80]);
        assert_eq!(integer_content(-128), [0x80]);
        assert_eq!(integer_content(-129), [0xff, 0x7f]);
        assert_eq!(integer_content(-32769), [0xff, 0x7f, 0xff]);
        for v in [
            0,
            1,
            -1,
            -129,
            -200,
            -32769,
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(decode_integer(&integer_content(v)), Ok(v), "value {v}");
        }
    }

    #[test]
    fn long_lengths_are_written_and_read_back() {
        let content = vec![7u8; 300];
        let mut out = Vec::new();
        write_tlv(&mut out, TAG_OCTET_STRING, &content);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut r = Reader::new(&out);
        assert_eq!(r.octets().unwrap(), &content[..]);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(Reader::new(&[0x04]).read(), Err(BerError::Truncated));
        assert_eq!(
            Reader::new(&[0x04, 0x05, 1]).read(),
            Err(BerError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x04, 0x80]).read(),
            Err(BerError::IndefiniteLength)
        );
        assert_eq!(
            Reader::new(&[0x04, 0x85, 1, 1, 1, 1, 1]).read(),
            Err(BerError::LengthTooLong(5))
        );
        assert_eq!(
            Reader::new(&[0x1f, 0x01]).read(),
            Err(BerError::HighTagNumber)
        );
        assert_eq!(decode_integer(&[]), Err(BerError::BadInteger(0)));
        assert_eq!(
            parse_structure(&[0x04, 0x00, 0x00]),
            Err(BerError::TrailingBytes(1))
        );
        let mut deep = vec![0x04, 0x00];
        for _ in 0..=MAX_DEPTH {
            let mut outer = Vec::new();
            write_tlv(&mut outer, TAG_SEQUENCE, &deep);
            deep = outer;
        }
        assert_eq!(parse_structure(&deep), Err(BerError::TooDeep));
    }

    #[test]
    fn structure_keeps_class_id_and_payload() {
        // [APPLICATION 4] { OCTET STRING "a", SEQUENCE {} }
        let tag = parse_structure(&[0x64, 0x05, 0x04, 0x01, b'a', 0x30, 0x00]).unwrap();
        assert_eq!(tag.class, TagClass::Application);
        assert_eq!(tag.id, 4);
        let PL::C(children) = tag.payload else {
            panic!("constructed expected")
        };
        assert_eq!(children[0].payload, PL::P(b"a".to_vec()));
        assert_eq!(children[1].payload, PL::C(vec![]));
    }
}
