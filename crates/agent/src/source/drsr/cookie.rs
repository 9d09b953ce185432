//! The replication cookie: where the next incremental GetNCChanges starts.
//!
//! It is stored as the `Drsr` source checkpoint in the same atomic journal write as the events it
//! covers. On-disk format (little-endian), version 1:
//! ```text
//! u8  version = 1
//! u8[16] invocation id of the source DC (the high-water mark is only valid against it)
//! u64 usnHighObjUpdate | u64 usnReserved | u64 usnHighPropUpdate      (USN_VECTOR, the HWM)
//! u32 cursor count, then per cursor: u8[16] DSA invocation id | u64 usnHighPropUpdate (UTD vector)
//! ```
//! An empty byte string means "no cookie": the next cycle is a full replication.

use super::error::DrsrError;
use super::ndr::Guid;

/// Current cookie format version.
pub const COOKIE_VERSION: u8 = 1;
/// Most cursors a cookie may hold (one per DC that ever wrote to the domain).
pub const MAX_CURSORS: usize = 100_000;

/// MS-DRSR USN_VECTOR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsnVector {
    /// usnHighObjUpdate.
    pub high_obj_update: u64,
    /// usnReserved.
    pub reserved: u64,
    /// usnHighPropUpdate.
    pub high_prop_update: u64,
}

/// One up-to-dateness cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The DSA's invocation id.
    pub dsa: Guid,
    /// Highest USN of that DSA already seen.
    pub usn: u64,
}

/// High-water mark and up-to-dateness vector of the last complete replication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cookie {
    /// The source DC's invocation id.
    pub invocation_id: Guid,
    /// The high-water mark.
    pub hwm: UsnVector,
    /// The up-to-dateness vector.
    pub cursors: Vec<Cursor>,
}

impl Cookie {
    /// Encodes the cookie for the journal checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 + 24 + 4 + 24 * self.cursors.len());
        out.push(COOKIE_VERSION);
        out.extend_from_slice(&self.invocation_id);
        for v in [
            self.hwm.high_obj_update,
            self.hwm.reserved,
            self.hwm.high_prop_update,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.cursors.len() as u32).to_le_bytes());
        for c in &self.cursors {
            out.extend_from_slice(&c.dsa);
            out.extend_from_slice(&c.usn.to_le_bytes());
        }
        out
    }

    /// Decodes a stored cookie; `Ok(None)` for an empty checkpoint.
    pub fn from_bytes(b: &[u8]) -> Result<Option<Cookie>, DrsrError> {
        let bad = |d: &str| DrsrError::malformed("DRSR cookie", d.to_owned());
        let Some((&version, rest)) = b.split_first() else {
            return Ok(None);
        };
        if version != COOKIE_VERSION {
            return Err(bad("unknown version"));
        }
        let mut r = super::ndr::NdrReader::new(rest, "DRSR cookie");
        let mut invocation_id = [0u8; 16];
        invocation_id.copy_from_slice(r.take(16)?);
        let mut u64s = [0u64; 3];
        for v in &mut u64s {
            *v = u64::from_le_bytes(fixed(r.take(8)?));
        }
        let n = u32::from_le_bytes(fixed(r.take(4)?)) as usize;
        if n > MAX_CURSORS || r.remaining() != n * 24 {
            return Err(bad("cursor count does not match the length"));
        }
        let mut cursors = Vec::with_capacity(n);
        for _ in 0..n {
            let mut dsa = [0u8; 16];
            dsa.copy_from_slice(r.take(16)?);
            let usn = u64::from_le_bytes(fixed(r.take(8)?));
            cursors.push(Cursor { dsa, usn });
        }
        Ok(Some(Cookie {
            invocation_id,
            hwm: UsnVector {
                high_obj_update: u64s[0],
                reserved: u64s[1],
                high_prop_update: u64s[2],
            },
            cursors,
        }))
    }
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N.min(b.len())]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_and_round_trip() {
        let c = Cookie {
            invocation_id: [0x11; 16],
            hwm: UsnVector {
                high_obj_update: 0x0102,
                reserved: 0,
                high_prop_update: 0x0304,
            },
            cursors: vec![Cursor {
                dsa: [0x22; 16],
                usn: 5,
            }],
        };
        let b = c.to_bytes();
        let expected = format!(
            "01{}{}{}{}{}{}{}",
            "11".repeat(16),
            "0201000000000000",
            "0000000000000000",
            "0403000000000000",
            "01000000",
            "22".repeat(16),
            "0500000000000000"
        );
        assert_eq!(hex::encode(&b), expected);
        assert_eq!(Cookie::from_bytes(&b).unwrap(), Some(c));
        assert_eq!(Cookie::from_bytes(&[]).unwrap(), None);
    }

    #[test]
    fn rejects_bad_versions_and_lengths() {
        let b = Cookie::default().to_bytes();
        let mut v2 = b.clone();
        v2[0] = 2;
        assert!(Cookie::from_bytes(&v2).is_err());
        for cut in 1..b.len() {
            assert!(Cookie::from_bytes(&b[..cut]).is_err());
        }
        let mut lying = b.clone();
        let n = lying.len();
        lying[n - 4] = 9;
        assert!(Cookie::from_bytes(&lying).is_err());
    }
}
