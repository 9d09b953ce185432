//! The OrgId password hash string and the NT hash it is derived from.
//!
//! Format (all hex lowercase): `v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;` where
//! `hash = PBKDF2-HMAC-SHA256(P = UTF-16LE(uppercase hex(NT hash)), S = salt, c = iterations, dkLen = 32)`.
//! The cloud uses a fresh 10-byte random salt per change and 1,000 iterations; the parser reads the
//! iteration count from the string rather than assuming it.

use std::fmt;
use std::str::FromStr;

use md4::{Digest, Md4};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::kernel::{self, HmacKey};

/// Iterations the cloud expects for new hashes.
pub const ITERATIONS: u32 = 1000;
/// Salt length, in bytes, for new hashes.
pub const SALT_LEN: usize = 10;
/// Largest iteration count the parser accepts (guards verifiers against a cost bomb).
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Largest salt the parser accepts, in bytes.
pub const MAX_SALT_LEN: usize = 256;

const PREFIX: &str = "v1;PPH1_MD4,";

/// An NT hash (MD4 of the UTF-16LE password). Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct NtHash([u8; 16]);

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NtHash(<redacted>)")
    }
}

impl NtHash {
    /// Wraps 16 bytes (e.g. a decrypted `unicodePwd`). The caller should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; 16]) -> NtHash {
        NtHash(bytes)
    }

    /// Computes the NT hash of a cleartext password: MD4(UTF-16LE(password)).
    pub fn from_password(password: &str) -> NtHash {
        let utf16: Zeroizing<Vec<u8>> =
            Zeroizing::new(password.encode_utf16().flat_map(u16::to_le_bytes).collect());
        let mut digest = Md4::digest(&utf16[..]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest);
        digest.as_mut_slice().zeroize();
        NtHash(out)
    }

    /// The raw bytes. Keep every copy in a zeroizing buffer.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// The PBKDF2 password the cloud derives from the NT hash: UTF-16LE of its uppercase hex (64 bytes).
    pub fn pbkdf2_password(&self) -> Zeroizing<[u8; 64]> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = Zeroizing::new([0u8; 64]);
        for (i, byte) in self.0.iter().enumerate() {
            out[i * 4] = HEX[usize::from(byte >> 4)];
            out[i * 4 + 2] = HEX[usize::from(byte & 0x0f)];
        }
        out
    }

    /// The HMAC key for the PBKDF2 run, with its chaining states precomputed.
    pub fn hmac_key(&self) -> HmacKey {
        HmacKey::new(&self.pbkdf2_password()[..])
    }
}

/// Why an OrgId string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgIdError {
    /// The string does not start with `v1;PPH1_MD4,` or does not end with `;`.
    #[error("not a v1;PPH1_MD4 string")]
    Prefix,
    /// Not exactly salt, iterations and hash separated by commas.
    #[error("expected salt, iterations and hash separated by commas")]
    Fields,
    /// The salt is not hex, empty, or longer than MAX_SALT_LEN bytes.
    #[error("the salt is not 1 to {MAX_SALT_LEN} bytes of hex")]
    Salt,
    /// The iteration count is not a decimal number between 1 and MAX_ITERATIONS.
    #[error("the iteration count is not a number between 1 and {MAX_ITERATIONS}")]
    Iterations,
    /// The hash is not 32 bytes of hex.
    #[error("the hash is not 32 bytes of hex")]
    Hash,
}

/// A salted OrgId hash: what leaves the PHS stage, and the only form the journal ever sees.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgIdHash {
    salt: Vec<u8>,
    iterations: u32,
    hash: [u8; 32],
}

impl fmt::Debug for OrgIdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The salted value is not a secret in the design, but keep logs short.
        f.debug_struct("OrgIdHash")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl OrgIdHash {
    /// Derives the hash of `nt` with the given salt and iteration count.
    pub fn compute(nt: &NtHash, salt: &[u8], iterations: u32) -> OrgIdHash {
        let mut hash = [0u8; 32];
        kernel::pbkdf2(&nt.hmac_key(), salt, iterations, &mut hash);
        OrgIdHash {
            salt: salt.to_vec(),
            iterations,
            hash,
        }
    }

    /// Derives the hash with a fresh random 10-byte salt and 1,000 iterations, as the cloud expects.
    pub fn compute_new(nt: &NtHash) -> OrgIdHash {
        let salt: [u8; SALT_LEN] = rand::random();
        OrgIdHash::compute(nt, &salt, ITERATIONS)
    }

    /// Builds a value from its parts (the pool's two-lane kernel computes the hash itself).
    pub(crate) fn from_parts(salt: Vec<u8>, iterations: u32, hash: [u8; 32]) -> OrgIdHash {
        OrgIdHash {
            salt,
            iterations,
            hash,
        }
    }

    /// The salt bytes.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The 32-byte derived key.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// Whether this value was derived from `nt` (constant-time comparison of the derived key).
    pub fn matches(&self, nt: &NtHash) -> bool {
        let other = OrgIdHash::compute(nt, &self.salt, self.iterations);
        other
            .hash
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for OrgIdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{},{},{};",
            hex::encode(&self.salt),
            self.iterations,
            hex::encode(self.hash)
        )
    }
}

impl FromStr for OrgIdHash {
    type Err = OrgIdError;

    fn from_str(s: &str) -> Result<OrgIdHash, OrgIdError> {
        let body = s
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(';'))
            .ok_or(OrgIdError::Prefix)?;
        let mut fields = body.split(',');
        let (Some(salt), Some(iterations), Some(hash), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(OrgIdError::Fields);
        };
        if salt.is_empty() || salt.len() > 2 * MAX_SALT_LEN {
            return Err(OrgIdError::Salt);
        }
        let salt = hex::decode(salt).map_err(|_| OrgIdError::Salt)?;
        if iterations.is_empty()
            || iterations.len() > 7
            || iterations.starts_with('0')
            || !iterations.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(OrgIdError::Iterations);
        }
        let iterations: u32 = iterations.parse().map_err(|_| OrgIdError::Iterations)?;
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err(OrgIdError::Iterations);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out).map_err(|_| OrgIdError::Hash)?;
        Ok(OrgIdHash {
            salt,
            iterations,
            hash: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DSInternals' ConvertTo-OrgIdHash test: 'Pa$$w0rd' with salt 317ee9d1dec6508fa510.
    const DSINTERNALS: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

    #[test]
    fn nt_hash_of_password_is_the_published_value() {
        // The classic NTLM test value for "password".
        assert_eq!(
            hex::encode_upper(NtHash::from_password("password").expose()),
            "8846F7EAEE8FB117AD06BDD830B7586C"
        );
    }

    #[test]
    fn pbkdf2_password_is_utf16le_uppercase_hex() {
        let nt = NtHash::from_bytes([
            0x88, 0x46, 0xf7, 0xea, 0xee, 0x8f, 0xb1, 0x17, 0xad, 0x06, 0xbd, 0xd8, 0x30, 0xb7,
            0x58, 0x6c,
        ]);
        let expected: Vec<u8> = "8846F7EAEE8FB117AD06BDD830B7586C"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(&nt.pbkdf2_password()[..], &expected[..]);
    }

    #[test]
    fn computes_the_dsinternals_vector() {
        let nt = NtHash::from_password("Pa$$w0rd");
        let salt = hex::decode("317ee9d1dec6508fa510").unwrap();
        assert_eq!(
            OrgIdHash::compute(&nt, &salt, 1000).to_string(),
            DSINTERNALS
        );
    }

    #[test]
    fn parses_and_matches_the_dsinternals_vector() {
        let h: OrgIdHash = DSINTERNALS.parse().unwrap();
        assert_eq!(h.iterations(), 1000);
        assert_eq!(h.salt().len(), 10);
        assert_eq!(h.to_string(), DSINTERNALS);
        assert!(h.matches(&NtHash::from_password("Pa$$w0rd")));
        assert!(!h.matches(&NtHash::from_password("Pa$$w0rD")));
    }

    #[test]
    fn the_iteration_count_is_read_not_assumed() {
        let nt = NtHash::from_password("Pa$$w0rd");
        let h = OrgIdHash::compute(&nt, b"0123456789", 100);
        let parsed: OrgIdHash = h.to_string().parse().unwrap();
        assert_eq!(parsed.iterations(), 100);
        assert!(parsed.matches(&nt));
        // Same salt, other count: another value.
        assert_ne!(
            OrgIdHash::compute(&nt, b"0123456789", 1000).hash(),
            h.hash()
        );
    }

    #[test]
    fn new_hashes_use_a_fresh_ten_byte_salt_and_1000_iterations() {
        let nt = NtHash::from_password("x");
        let a = OrgIdHash::compute_new(&nt);
        let b = OrgIdHash::compute_new(&nt);
        assert_eq!(a.salt().len(), 10);
        assert_eq!(a.iterations(), 1000);
        assert_ne!(a.salt(), b.salt());
        assert!(a.matches(&nt) && b.matches(&nt));
        let s = a.to_string();
        assert_eq!(s, s.to_lowercase().replace("pph1_md4", "PPH1_MD4"));
    }

    #[test]
    fn rejects_malformed_strings() {
        let h = "00".repeat(32);
        let cases = [
            ("v2;PPH1_MD4,00,1,00;".to_owned(), OrgIdError::Prefix),
            (format!("v1;PPH1_MD4,00,1,{h}"), OrgIdError::Prefix),
            ("v1;PPH1_MD4,00,1;".to_owned(), OrgIdError::Fields),
            (format!("v1;PPH1_MD4,00,1,{h},x;"), OrgIdError::Fields),
            (format!("v1;PPH1_MD4,zz,1,{h};"), OrgIdError::Salt),
            (format!("v1;PPH1_MD4,,1,{h};"), OrgIdError::Salt),
            (format!("v1;PPH1_MD4,0,1,{h};"), OrgIdError::Salt),
            (format!("v1;PPH1_MD4,00,0,{h};"), OrgIdError::Iterations),
            (format!("v1;PPH1_MD4,00,+5,{h};"), OrgIdError::Iterations),
            (format!("v1;PPH1_MD4,00,01,{h};"), OrgIdError::Iterations),
            (
                format!("v1;PPH1_MD4,00,1000001,{h};"),
                OrgIdError::Iterations,
            ),
            ("v1;PPH1_MD4,00,1,0011;".to_owned(), OrgIdError::Hash),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<OrgIdHash>(), Err(expected), "{input}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let nt = NtHash::from_password("password");
        assert_eq!(format!("{nt:?}"), "NtHash(<redacted>)");
        assert!(!format!("{:?}", nt.hmac_key()).contains(char::is_numeric));
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(
            s in "\\PC{0,120}",
            t in "v1;PPH1_MD4,[0-9a-fz]{0,24},[0-9+-]{0,9},[0-9a-f]{0,70};?",
        ) {
            let _ = s.parse::<OrgIdHash>();
            if let Ok(h) = t.parse::<OrgIdHash>() {
                prop_assert_eq!(h.to_string(), t);
            }
        }
    }
}
