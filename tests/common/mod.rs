//! Fixtures shared by the integration tests. Each test crate includes this module with `mod common;`.
//!
//! - [`lab`] — a real Samba AD DC per test, cloned from a cached, seeded template on its own 127.0.0.N.
//!
//! Not every test crate uses every helper, hence `dead_code` is allowed here. Fixtures panic with a
//! clear message when the environment is missing something: a test never skips silently.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod lab;

/// Every file's bytes under `dir`, recursively (a secret must not appear in any of them).
pub fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

/// The NT hash of `password` in hex, computed with the `md4` crate (the oracle the replicated hashes are
/// compared with): MD4 over the password's UTF-16LE bytes.
pub fn md4_hex(password: &str) -> String {
    use md4::{Digest, Md4};
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    hex::encode(Md4::digest(&utf16))
}
