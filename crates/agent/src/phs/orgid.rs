//! The salted OrgId hash of an NT hash: derived with this crate's PBKDF2 kernel, written and read as
//! the contract's string.
//!
//! Enters: an [`NtHash`] (and, for [`OrgIdHash::compute`], a salt and iteration count). Leaves: an
//! [`OrgIdHash`], whose `Display` and `FromStr` are the contract's formatter and parser
//! ([`cloudsync_api::orgid`]: `v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;`, every part bounded).
//! `hash = PBKDF2-HMAC-SHA256(P = UTF-16LE(uppercase hex(NT hash)), S = salt, c = iterations, dkLen = 32)`.

use std::fmt;
use std::str::FromStr;

use cloudsync_api::orgid::{ITERATIONS, OrgIdError, OrgIdString, SALT_LEN};

use super::kernel::{self, HmacKey};
use crate::nt_hash::NtHash;

/// The HMAC key for the PBKDF2 run over `nt`, with its chaining states precomputed.
pub fn hmac_key(nt: &NtHash) -> HmacKey {
    HmacKey::new(&nt.pbkdf2_password()[..])
}

/// A salted OrgId hash: what leaves the PHS stage, and the only form the journal ever sees.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgIdHash(OrgIdString);

impl fmt::Debug for OrgIdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The salted value is not a secret in the design, but keep logs short.
        f.debug_struct("OrgIdHash")
            .field("iterations", &self.0.iterations)
            .field("salt_len", &self.0.salt.len())
            .finish_non_exhaustive()
    }
}

impl OrgIdHash {
    /// Derives the hash of `nt` with the given salt and iteration count.
    pub fn compute(nt: &NtHash, salt: &[u8], iterations: u32) -> OrgIdHash {
        let mut hash = [0u8; 32];
        kernel::pbkdf2(&hmac_key(nt), salt, iterations, &mut hash);
        OrgIdHash::from_parts(salt.to_vec(), iterations, hash)
    }

    /// Derives the hash with a fresh random 10-byte salt and 1,000 iterations, as the cloud expects.
    pub fn compute_new(nt: &NtHash) -> OrgIdHash {
        let salt: [u8; SALT_LEN] = rand::random();
        OrgIdHash::compute(nt, &salt, ITERATIONS)
    }

    /// Builds a value from its parts (the pool's two-lane kernel computes the hash itself).
    pub(crate) fn from_parts(salt: Vec<u8>, iterations: u32, hash: [u8; 32]) -> OrgIdHash {
        OrgIdHash(OrgIdString {
            salt,
            iterations,
            hash,
        })
    }

    /// The salt bytes.
    pub fn salt(&self) -> &[u8] {
        &self.0.salt
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.0.iterations
    }

    /// The 32-byte derived key.
    pub fn hash(&self) -> &[u8; 32] {
        &self.0.hash
    }

    /// Whether this value was derived from `nt` (constant-time comparison of the derived key).
    pub fn matches(&self, nt: &NtHash) -> bool {
        let other = OrgIdHash::compute(nt, self.salt(), self.iterations());
        other
            .hash()
            .iter()
            .zip(self.hash().iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for OrgIdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for OrgIdHash {
    type Err = OrgIdError;

    fn from_str(s: &str) -> Result<OrgIdHash, OrgIdError> {
        OrgIdString::parse(s).map(OrgIdHash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DSInternals' ConvertTo-OrgIdHash test: 'Pa$$w0rd' with salt 317ee9d1dec6508fa510.
    const DSINTERNALS: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

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
    fn debug_never_shows_secrets() {
        let nt = NtHash::from_password("password");
        assert_eq!(format!("{nt:?}"), "NtHash(<redacted>)");
        assert!(!format!("{:?}", hmac_key(&nt)).contains(char::is_numeric));
    }
}
