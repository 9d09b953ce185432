//! `msDS-ManagedPassword`: the MSDS-MANAGEDPASSWORD_BLOB a DC computes for a group managed service
//! account (MS-ADTS 2.2.19). Enters: the attribute's bytes as the DC served them (only over an encrypted
//! connection, only to a principal in the account's `msDS-GroupMSAMembership`). Leaves: a
//! [`ManagedPassword`] — the current and previous passwords' NT hashes and the two intervals — or a
//! [`BlobError`] naming the field that is wrong. The cleartext passwords never leave this module: they
//! are hashed where they lie in the buffer (the NT hash is MD4 of the raw bytes; they are rarely valid
//! UTF-16) and the caller's buffer is its own to zeroize.
//!
//! ```text
//! offset size
//!  0     u16  Version = 1
//!  2     u16  Reserved = 0
//!  4     u32  Length (the whole blob)
//!  8     u16  CurrentPasswordOffset
//! 10     u16  PreviousPasswordOffset (0: none)
//! 12     u16  QueryPasswordIntervalOffset
//! 14     u16  UnchangedPasswordIntervalOffset
//!  …          CurrentPassword: UTF-16LE bytes + a 2-byte NUL, ending where the next field starts
//!  …          PreviousPassword: the same form, when present
//!  …     u64  QueryPasswordInterval (100 ns units: time until the password changes)
//!  …     u64  UnchangedPasswordInterval (100 ns units: time the current password stays unchanged)
//! ```
//! All little-endian. The specification says the intervals are 8-byte aligned; Windows and Samba put
//! them right after the passwords (offset 274 for a 256-byte password), so the offsets are read, never
//! computed. Every offset and length is checked against the buffer: a hostile or truncated value is an
//! error, not a panic.

use std::time::Duration;

use crate::nt_hash::NtHash;

/// A decoded `msDS-ManagedPassword`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPassword {
    /// The NT hash of the current password.
    pub current: NtHash,
    /// The NT hash of the previous password, when the DC still lists it.
    pub previous: Option<NtHash>,
    /// Time until the DC changes the password (QueryPasswordInterval).
    pub next_change_in: Duration,
    /// Time the current password has left unchanged (UnchangedPasswordInterval).
    pub unchanged_for: Duration,
}

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// Shorter than its 16-byte header.
    #[error("msDS-ManagedPassword is {0} bytes, shorter than its 16-byte header")]
    TooShort(usize),
    /// A version other than 1.
    #[error("msDS-ManagedPassword has version {0}; only version 1 is defined (MS-ADTS 2.2.19)")]
    Version(u16),
    /// The length field disagrees with the bytes received.
    #[error("msDS-ManagedPassword says it is {said} bytes but {got} arrived")]
    Length {
        /// The Length field.
        said: u32,
        /// The bytes received.
        got: usize,
    },
    /// An offset points outside the blob or fields overlap.
    #[error("msDS-ManagedPassword field {field} at offset {offset} does not fit a {len}-byte blob")]
    Field {
        /// The field.
        field: &'static str,
        /// Its offset.
        offset: usize,
        /// The blob's length.
        len: usize,
    },
    /// A password that is empty, odd-sized or not NUL-terminated.
    #[error("msDS-ManagedPassword field {0} is not a NUL-terminated UTF-16 password")]
    Password(&'static str),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u64_at(b: &[u8], field: &'static str, at: usize) -> Result<u64, BlobError> {
    let bytes: [u8; 8] = at
        .checked_add(8)
        .and_then(|end| b.get(at..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(BlobError::Field {
            field,
            offset: at,
            len: b.len(),
        })?;
    Ok(u64::from_le_bytes(bytes))
}

/// The password field from `start` to `end` (the next field's offset): UTF-16 code units and a NUL.
fn password(b: &[u8], field: &'static str, start: usize, end: usize) -> Result<NtHash, BlobError> {
    let bad = BlobError::Field {
        field,
        offset: start,
        len: b.len(),
    };
    if start < 16 || end <= start || end > b.len() {
        return Err(bad);
    }
    let with_nul = &b[start..end];
    if with_nul.len() < 4
        || !with_nul.len().is_multiple_of(2)
        || with_nul[with_nul.len() - 2..] != [0, 0]
    {
        return Err(BlobError::Password(field));
    }
    Ok(NtHash::from_utf16le(&with_nul[..with_nul.len() - 2]))
}

/// 100-nanosecond units as a duration (saturating: a DC's "never" is `u64::MAX`).
fn ticks(t: u64) -> Duration {
    Duration::from_secs(t / 10_000_000) + Duration::from_nanos((t % 10_000_000) * 100)
}

impl ManagedPassword {
    /// Decodes a blob (see the module doc).
    pub fn decode(b: &[u8]) -> Result<ManagedPassword, BlobError> {
        if b.len() < 16 {
            return Err(BlobError::TooShort(b.len()));
        }
        let version = u16_at(b, 0);
        if version != 1 {
            return Err(BlobError::Version(version));
        }
        let said = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if usize::try_from(said).ok() != Some(b.len()) {
            return Err(BlobError::Length { said, got: b.len() });
        }
        let current_at = usize::from(u16_at(b, 8));
        let previous_at = usize::from(u16_at(b, 10));
        let query_at = usize::from(u16_at(b, 12));
        let unchanged_at = usize::from(u16_at(b, 14));
        let current_end = if previous_at != 0 {
            previous_at
        } else {
            query_at
        };
        let current = password(b, "CurrentPassword", current_at, current_end)?;
        let previous = match previous_at {
            0 => None,
            at => Some(password(b, "PreviousPassword", at, query_at)?),
        };
        let query = u64_at(b, "QueryPasswordInterval", query_at)?;
        let unchanged = u64_at(b, "UnchangedPasswordInterval", unchanged_at)?;
        Ok(ManagedPassword {
            current,
            previous,
            next_change_in: ticks(query),
            unchanged_for: ticks(unchanged),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A gMSA's value read from Windows AD, with the NT hash AD holds for it: the published vector of
    /// DSInternals (`Src/DSInternals.Common.Test/ManagedPasswordTester.cs`, MIT licence).
    const DSINTERNALS_BLOB: &str = "01000000220100001000000012011a011609f270f541c315ffee9fcd22a98447b5c6e6fb7151cb020a2b017bb4e003647949967fc96f7c9ec3426b80901bb9c162867cbc68c520c4d7a431c3d9a670f8aa41d2ae5c0c08f27f8698b90c18a5a576e9933fb0cadaf8e661be2f58308c580866b1ae582ee50a9aa7c5d65a312dbbc3542c51c7e0b2d4c61e9763de481d9963367273aa72b53c2e402e31c6cd38e7785ad06639cdfa07738d19ae20c370e06787ad2f600823c505fc9dd32b3f06505da37b86b298d3650140af83c1f01c907964d182ea0efb19e74c949f58123fdecb41f78ed0eabbde31bb46afd3134da82550380ed36038d100f71095404a97e52d661dbe4f74deef4122a102dca698960000864973f96017000086eba24660170000";
    const DSINTERNALS_NT_HASH: &str = "1fe07f47bfa7f511d902ed5cfb79cc4d";

    #[test]
    fn the_published_windows_blob_gives_the_nt_hash_ad_holds() {
        let blob = hex::decode(DSINTERNALS_BLOB).unwrap();
        let p = ManagedPassword::decode(&blob).unwrap();
        assert_eq!(hex::encode(p.current.expose()), DSINTERNALS_NT_HASH);
        assert_eq!(p.previous, None);
        // QueryPasswordInterval 0x1760f9734986 ticks: about 29.75 days.
        assert_eq!(p.next_change_in, ticks(0x1760_f973_4986));
        let days = p.next_change_in.as_secs_f64() / 86_400.0;
        assert!((29.0..30.0).contains(&days), "{days}");
        assert_eq!(p.unchanged_for, ticks(0x1760_46a2_eb86));
    }

    /// A blob with a previous password, built by hand in the layout Windows and Samba use.
    fn with_previous(current: &[u8; 256], previous: &[u8; 256]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&548u32.to_le_bytes());
        for off in [16u16, 274, 532, 540] {
            b.extend_from_slice(&off.to_le_bytes());
        }
        b.extend_from_slice(current);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(previous);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&36_000_000_000u64.to_le_bytes()); // one hour
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b
    }

    #[test]
    fn a_previous_password_is_hashed_on_its_own() {
        let blob = with_previous(&[0x41; 256], &[0x42; 256]);
        let p = ManagedPassword::decode(&blob).unwrap();
        assert_eq!(p.current, NtHash::from_utf16le(&[0x41; 256]));
        assert_eq!(p.previous, Some(NtHash::from_utf16le(&[0x42; 256])));
        assert_ne!(Some(p.current.clone()), p.previous);
        assert_eq!(p.next_change_in, Duration::from_secs(3600));
        // "Never" saturates instead of overflowing.
        assert!(p.unchanged_for > Duration::from_secs(1 << 40));
    }

    #[test]
    fn the_nt_hash_is_md4_of_the_raw_bytes_as_for_a_text_password() {
        let text: Vec<u8> = "password"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            NtHash::from_utf16le(&text),
            NtHash::from_password("password")
        );
    }

    #[test]
    fn damaged_blobs_are_errors_naming_the_field() {
        let good = with_previous(&[0x41; 256], &[0x42; 256]);
        assert_eq!(
            ManagedPassword::decode(&good[..10]),
            Err(BlobError::TooShort(10))
        );
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(ManagedPassword::decode(&v2), Err(BlobError::Version(2)));
        assert!(matches!(
            ManagedPassword::decode(&good[..500]),
            Err(BlobError::Length {
                said: 548,
                got: 500
            })
        ));
        // The query interval pointing past the end.
        let mut far = good.clone();
        far[12..14].copy_from_slice(&600u16.to_le_bytes());
        assert!(matches!(
            ManagedPassword::decode(&far),
            Err(BlobError::Field { .. })
        ));
        // A password without its NUL.
        let mut no_nul = good.clone();
        no_nul[272] = 1;
        assert_eq!(
            ManagedPassword::decode(&no_nul),
            Err(BlobError::Password("CurrentPassword"))
        );
        // The current password overlapping the header.
        let mut overlap = good;
        overlap[8..10].copy_from_slice(&4u16.to_le_bytes());
        assert!(matches!(
            ManagedPassword::decode(&overlap),
            Err(BlobError::Field { .. })
        ));
    }

    #[test]
    fn no_input_panics() {
        // Every truncation and every single-byte change of both sample blobs: an error or a value, never
        // a panic (the fuzz target covers the rest).
        let samples = [
            hex::decode(DSINTERNALS_BLOB).unwrap(),
            with_previous(&[0x41; 256], &[0x42; 256]),
        ];
        for s in &samples {
            for n in 0..s.len() {
                let _ = ManagedPassword::decode(&s[..n]);
            }
            for i in 0..16 {
                for v in [0u8, 1, 0x7f, 0xff] {
                    let mut m = s.clone();
                    m[i] = v;
                    let _ = ManagedPassword::decode(&m);
                }
            }
        }
    }
}
