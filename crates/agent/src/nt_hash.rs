//! The NT hash: a leaf type shared by the readers that obtain it and the library that hashes it.
//!
//! Enters: 16 bytes (a decrypted `unicodePwd` from `source::drsr` or `source::samba_priv`), a gMSA's
//! raw UTF-16LE password (`account::gmsa_blob`) or a
//! cleartext password (NTLM authentication, tests, the `phs` CLI). Leaves: an [`NtHash`], zeroized on
//! drop, whose `Debug` never shows the bytes (there is no `Display`); `phs` turns it into a salted
//! OrgId string, `source::drsr::ntlm` into NTLMv2 proofs. Imports nothing of the crate.

use std::fmt;

use md4::{Digest, Md4};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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

    /// Computes the NT hash of a password given as raw UTF-16LE bytes: MD4(bytes). A group managed
    /// service account's password (`msDS-ManagedPassword`) is 256 random bytes that are often not valid
    /// UTF-16 (unpaired surrogates), so it cannot pass through a `&str`; this hashes it as the DC does.
    pub fn from_utf16le(bytes: &[u8]) -> NtHash {
        let mut digest = Md4::digest(bytes);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
