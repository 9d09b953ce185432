//! The OrgId password hash string: the one formatter and the one parser both sides use.
//!
//! Enters: a string from the wire or the journal (parse), or salt, iteration count and derived key
//! (format). Leaves: [`OrgIdString`] (the three parts) or the string. No hashing here: the agent derives
//! the key with its own PBKDF2 kernel (`cloudsync_agent::phs`), the tenant checks sign-ins with an
//! independent PBKDF2 (`cloudsync_tenant::orgid`); both read and write the string only through this module.
//!
//! Format (all hex lowercase): `v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;` where
//! `hash = PBKDF2-HMAC-SHA256(P = UTF-16LE(uppercase hex(NT hash)), S = salt, c = iterations, dkLen = 32)`.
//! The cloud uses a fresh 10-byte random salt per change and 1,000 iterations; the parser reads the
//! iteration count from the string rather than assuming it, and bounds every part (a verifier must not
//! be made to run a billion iterations, or decode a megabyte of salt, by a string it was sent).

use std::fmt;
use std::str::FromStr;

/// Iterations the cloud expects for new hashes.
pub const ITERATIONS: u32 = 1000;
/// Salt length, in bytes, for new hashes.
pub const SALT_LEN: usize = 10;
/// Largest iteration count the parser accepts (guards verifiers against a cost bomb).
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Largest salt the parser accepts, in bytes.
pub const MAX_SALT_LEN: usize = 256;
/// Length of the derived key, in bytes.
pub const HASH_LEN: usize = 32;

const PREFIX: &str = "v1;PPH1_MD4,";

/// Why an OrgId string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgIdError {
    /// The string does not start with `v1;PPH1_MD4,` or does not end with `;`.
    #[error("not a v1;PPH1_MD4 string")]
    Prefix,
    /// Not exactly salt, iterations and hash separated by commas.
    #[error("expected salt, iterations and hash separated by commas")]
    Fields,
    /// The salt is not lowercase hex, empty, or longer than MAX_SALT_LEN bytes.
    #[error("the salt is not 1 to {MAX_SALT_LEN} bytes of hex")]
    Salt,
    /// The iteration count is not a decimal number between 1 and MAX_ITERATIONS.
    #[error("the iteration count is not a number between 1 and {MAX_ITERATIONS}")]
    Iterations,
    /// The hash is not 32 bytes of lowercase hex.
    #[error("the hash is not 32 bytes of hex")]
    Hash,
}

/// The parts of an OrgId string. `Display` writes the string, [`OrgIdString::parse`] (or `FromStr`)
/// reads it; a parsed value prints back verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgIdString {
    /// Salt bytes (10 for new hashes; 1 to [`MAX_SALT_LEN`] when parsed).
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count (1,000 for new hashes, 100 in older vectors; at most [`MAX_ITERATIONS`]
    /// when parsed).
    pub iterations: u32,
    /// The derived key.
    pub hash: [u8; HASH_LEN],
}

impl fmt::Debug for OrgIdString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The salted value is not a secret in the design, but it cracks offline: keep it out of logs.
        f.debug_struct("OrgIdString")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl OrgIdString {
    /// Parses `v1;PPH1_MD4,<salt>,<iterations>,<hash>;`, bounding every part; never panics.
    pub fn parse(s: &str) -> Result<OrgIdString, OrgIdError> {
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
        // Lowercase only, like the iteration count below: one spelling per value (`hex` alone would take
        // `AB` too and print it back as `ab`; found by the fuzz target `phs_orgid`).
        if !is_lower_hex(salt) {
            return Err(OrgIdError::Salt);
        }
        let salt = hex::decode(salt).map_err(|_| OrgIdError::Salt)?;
        // Digits only, no sign, no leading zero: one spelling per count, so a value prints back verbatim.
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
        if !is_lower_hex(hash) {
            return Err(OrgIdError::Hash);
        }
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(hash, &mut out).map_err(|_| OrgIdError::Hash)?;
        Ok(OrgIdString {
            salt,
            iterations,
            hash: out,
        })
    }
}

/// Whether `s` has only the characters `Display` writes for hex (`0-9`, `a-f`).
fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for OrgIdString {
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

impl FromStr for OrgIdString {
    type Err = OrgIdError;

    fn from_str(s: &str) -> Result<OrgIdString, OrgIdError> {
        OrgIdString::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DSInternals' ConvertTo-OrgIdHash test: 'Pa$$w0rd' with salt 317ee9d1dec6508fa510 (the derived
    /// key is checked by the agent's kernel and the tenant's sign-in, each against this same string).
    const DSINTERNALS: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

    #[test]
    fn parses_and_prints_back_the_dsinternals_vector() {
        let h = OrgIdString::parse(DSINTERNALS).unwrap();
        assert_eq!(h.iterations, 1000);
        assert_eq!(h.salt, hex::decode("317ee9d1dec6508fa510").unwrap());
        assert_eq!(
            hex::encode(h.hash),
            "7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531"
        );
        assert_eq!(h.to_string(), DSINTERNALS);
        assert_eq!(DSINTERNALS.parse::<OrgIdString>(), Ok(h));
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
            // Uppercase hex would print back in lowercase: not the string that was parsed.
            (format!("v1;PPH1_MD4,0A,1,{h};"), OrgIdError::Salt),
            (
                format!("v1;PPH1_MD4,0a,1,{}A0;", "00".repeat(31)),
                OrgIdError::Hash,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(OrgIdString::parse(&input), Err(expected), "{input}");
        }
    }

    /// The tenant's former parser's cases (it had one `Hex` error for salt and hash).
    #[test]
    fn rejects_the_tenants_malformed_cases() {
        assert_eq!(
            OrgIdString::parse("v2;PPH1_MD4,00,1,00;"),
            Err(OrgIdError::Prefix)
        );
        assert_eq!(
            OrgIdString::parse("v1;PPH1_MD4,00,1;"),
            Err(OrgIdError::Fields)
        );
        assert_eq!(
            OrgIdString::parse("v1;PPH1_MD4,zz,1,00;"),
            Err(OrgIdError::Salt)
        );
        assert_eq!(
            OrgIdString::parse(&format!("v1;PPH1_MD4,00,0,{};", "00".repeat(32))),
            Err(OrgIdError::Iterations)
        );
        assert_eq!(
            OrgIdString::parse("v1;PPH1_MD4,00,1,0011;"),
            Err(OrgIdError::Hash)
        );
    }

    #[test]
    fn salt_and_iteration_bounds_are_inclusive() {
        let h = "ab".repeat(32);
        let longest = format!(
            "v1;PPH1_MD4,{},{MAX_ITERATIONS},{h};",
            "01".repeat(MAX_SALT_LEN)
        );
        let parsed = OrgIdString::parse(&longest).unwrap();
        assert_eq!(parsed.salt.len(), MAX_SALT_LEN);
        assert_eq!(parsed.iterations, MAX_ITERATIONS);
        let too_long = format!("v1;PPH1_MD4,{},1,{h};", "01".repeat(MAX_SALT_LEN + 1));
        assert_eq!(OrgIdString::parse(&too_long), Err(OrgIdError::Salt));
    }

    #[test]
    fn debug_shows_neither_salt_nor_hash() {
        let h = OrgIdString::parse(DSINTERNALS).unwrap();
        let debug = format!("{h:?}");
        assert!(
            !debug.contains("317e") && !debug.contains("7eae"),
            "{debug}"
        );
        assert!(debug.contains("1000"), "{debug}");
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
            t in "v1;PPH1_MD4,[0-9a-fA-Fz]{0,24},[0-9+-]{0,9},[0-9a-fA-F]{0,70};?",
        ) {
            let _ = s.parse::<OrgIdString>();
            if let Ok(h) = t.parse::<OrgIdString>() {
                prop_assert_eq!(h.to_string(), t);
            }
        }

        /// The tenant's former proptest (its parser's own input shapes).
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}", t in "v1;PPH1_MD4,[0-9a-fz]{0,24},[0-9-]{0,9},[0-9a-f]{0,70};?") {
            let _ = OrgIdString::parse(&s);
            if let Ok(h) = OrgIdString::parse(&t) {
                prop_assert_eq!(h.hash.len(), 32);
            }
        }
    }
}
