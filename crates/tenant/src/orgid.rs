//! Sign-in verification of a synced OrgId hash, with a PBKDF2 of the tenant's own.
//!
//! Enters: a stored credential string and a cleartext password. Leaves: whether they match. The
//! string is read only through the contract's parser ([`cloudsync_api::orgid`], every part bounded;
//! the iteration count is parsed, never assumed):
//! hash = PBKDF2-HMAC-SHA256(password = UTF-16LE(uppercase hex(MD4(UTF-16LE(cleartext)))),
//! salt = the salt bytes, iterations, dkLen = 32).
//!
//! The PBKDF2 here (over the `hmac`/`sha2` crates) is deliberately **not** the agent's: the agent
//! derives keys with its own kernel over the raw SHA-256 compression function
//! (`cloudsync_agent::phs::kernel`), and this independent implementation is what cross-checks it end
//! to end — a sign-in that succeeds proves both computed the same value (tests/phs_tenant.rs).

use cloudsync_api::orgid::OrgIdString;
use hmac::{KeyInit, Mac};
use md4::{Digest, Md4};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Whether `password` produces the derived key of `hash` (constant-time comparison).
pub fn verify(hash: &OrgIdString, password: &str) -> bool {
    let nt = nt_hash(password);
    let mut derived = [0u8; 32];
    pbkdf2_hmac_sha256(
        &nt_hash_password_bytes(&nt),
        &hash.salt,
        hash.iterations,
        &mut derived,
    );
    constant_time_eq(&derived, &hash.hash)
}

/// MD4 over the UTF-16LE encoding of the password: the NT hash.
pub fn nt_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    Md4::digest(&utf16).into()
}

/// The PBKDF2 "password" the cloud derives from an NT hash: UTF-16LE of its uppercase hex.
pub fn nt_hash_password_bytes(nt: &[u8; 16]) -> Vec<u8> {
    hex::encode_upper(nt)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SHA256, filling `out`.
pub fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let Ok(prf) = HmacSha256::new_from_slice(password) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return;
    };
    for (block_index, chunk) in out.chunks_mut(32).enumerate() {
        let mut mac = prf.clone();
        mac.update(salt);
        mac.update(&(block_index as u32 + 1).to_be_bytes());
        let mut u: [u8; 32] = mac.finalize().into_bytes().into();
        let mut t = u;
        for _ in 1..iterations {
            let mut mac = prf.clone();
            mac.update(&u);
            u = mac.finalize().into_bytes().into();
            for (t, u) in t.iter_mut().zip(u.iter()) {
                *t ^= u;
            }
        }
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
}

/// Compares two byte strings without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pbkdf2_hex(p: &[u8], s: &[u8], c: u32, len: usize) -> String {
        let mut out = vec![0u8; len];
        pbkdf2_hmac_sha256(p, s, c, &mut out);
        hex::encode(out)
    }

    #[test]
    fn pbkdf2_matches_rfc7914_vectors() {
        // RFC 7914 §11, PBKDF2-HMAC-SHA256 test vectors.
        assert_eq!(
            pbkdf2_hex(b"passwd", b"salt", 1, 64),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        assert_eq!(
            pbkdf2_hex(b"Password", b"NaCl", 80000, 64),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        );
    }

    #[test]
    fn pbkdf2_matches_widely_published_vectors() {
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 1, 32),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 4096, 32),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
    }

    #[test]
    fn nt_hash_of_password_is_the_known_value() {
        assert_eq!(
            hex::encode_upper(nt_hash("password")),
            "8846F7EAEE8FB117AD06BDD830B7586C"
        );
    }

    #[test]
    fn verifies_the_dsinternals_published_orgid_hash() {
        // DSInternals ConvertTo-OrgIdHash Pester test: 'Pa$$w0rd' with a fixed salt.
        let h = OrgIdString::parse(
            "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;",
        )
        .unwrap();
        assert_eq!(h.iterations, 1000);
        assert_eq!(h.salt.len(), 10);
        assert!(verify(&h, "Pa$$w0rd"));
        assert!(!verify(&h, "Pa$$w0rD"));
    }
}
