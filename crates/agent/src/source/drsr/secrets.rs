//! Decrypting a replicated `unicodePwd` (MS-DRSR 4.1.10.6.17 and 4.1.10.2.16, MS-SAMR 2.2.11.1).
//!
//! Wire value: `salt[16] | RC4(key = MD5(session key ‖ salt), CRC32(plain) as u32 LE ‖ plain)`;
//! `plain` is the NT hash under two DES-ECB blocks keyed from the account's RID.

use des::Des;
use des::cipher::{BlockCipherDecrypt, KeyInit};
use md5::{Digest, Md5};
use rc4::StreamCipher;
use zeroize::{Zeroize, Zeroizing};

use super::ntlm::rc4;
use crate::nt_hash::NtHash;

/// Why a secret could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The value is not 16 + 4 + 16 bytes.
    #[error("the encrypted value has the wrong length")]
    Length,
    /// The CRC32 of the decrypted value does not match (wrong session key or corruption).
    #[error("the CRC32 of the decrypted value does not match")]
    Checksum,
    /// RID 0 cannot key the DES layer.
    #[error("the object has no RID")]
    NoRid,
}

/// Decrypts an encrypted `unicodePwd` value into the NT hash.
pub fn decrypt_unicode_pwd(
    session_key: &[u8; 16],
    value: &[u8],
    rid: u32,
) -> Result<NtHash, SecretError> {
    if value.len() != 16 + 4 + 16 {
        return Err(SecretError::Length);
    }
    if rid == 0 {
        return Err(SecretError::NoRid);
    }
    let (salt, encrypted) = value.split_at(16);
    let mut key = Md5::new();
    key.update(session_key);
    key.update(salt);
    let mut key = key.finalize();
    let mut plain = Zeroizing::new([0u8; 20]);
    plain.copy_from_slice(encrypted);
    let cipher = rc4(&key);
    key.as_mut_slice().zeroize();
    cipher
        .map_err(|_| SecretError::Length)?
        .apply_keystream(&mut plain[..]);
    let crc = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]);
    if crc32fast::hash(&plain[4..]) != crc {
        return Err(SecretError::Checksum);
    }
    let mut hash = Zeroizing::new([0u8; 16]);
    hash.copy_from_slice(&plain[4..]);
    remove_rid_layer(&mut hash, rid);
    Ok(NtHash::from_bytes(*hash))
}

/// Expands 7 key bytes to an 8-byte DES key (parity bits left clear; DES ignores them).
fn des_key(k: [u8; 7]) -> [u8; 8] {
    [
        k[0] >> 1,
        ((k[0] & 0x01) << 6) | (k[1] >> 2),
        ((k[1] & 0x03) << 5) | (k[2] >> 3),
        ((k[2] & 0x07) << 4) | (k[3] >> 4),
        ((k[3] & 0x0f) << 3) | (k[4] >> 5),
        ((k[4] & 0x1f) << 2) | (k[5] >> 6),
        ((k[5] & 0x3f) << 1) | (k[6] >> 7),
        k[6] & 0x7f,
    ]
    .map(|b| b << 1)
}

/// MS-SAMR 2.2.11.1.3: decrypts the two 8-byte halves with keys derived from the RID.
fn remove_rid_layer(hash: &mut [u8; 16], rid: u32) {
    let i = rid.to_le_bytes();
    let k1 = des_key([i[0], i[1], i[2], i[3], i[0], i[1], i[2]]);
    let k2 = des_key([i[3], i[0], i[1], i[2], i[3], i[0], i[1]]);
    for (half, key) in hash.chunks_exact_mut(8).zip([k1, k2]) {
        let cipher = Des::new(&key.into());
        let mut block = [0u8; 8];
        block.copy_from_slice(half);
        cipher.decrypt_block((&mut block).into());
        half.copy_from_slice(&block);
        block.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use des::cipher::BlockCipherEncrypt;

    /// Builds a wire value the way a DC does (MS-DRSR 4.1.10.6.x, reversed), from independent parts.
    fn encrypt(session_key: &[u8; 16], salt: [u8; 16], nt: [u8; 16], rid: u32) -> Vec<u8> {
        let i = rid.to_le_bytes();
        let keys = [
            des_key([i[0], i[1], i[2], i[3], i[0], i[1], i[2]]),
            des_key([i[3], i[0], i[1], i[2], i[3], i[0], i[1]]),
        ];
        let mut layered = nt;
        for (half, key) in layered.chunks_exact_mut(8).zip(keys) {
            let mut block = [0u8; 8];
            block.copy_from_slice(half);
            Des::new(&key.into()).encrypt_block((&mut block).into());
            half.copy_from_slice(&block);
        }
        let mut plain = crc32fast::hash(&layered).to_le_bytes().to_vec();
        plain.extend_from_slice(&layered);
        let mut key = Md5::new();
        key.update(session_key);
        key.update(salt);
        rc4(&key.finalize()).unwrap().apply_keystream(&mut plain);
        let mut out = salt.to_vec();
        out.extend_from_slice(&plain);
        out
    }

    #[test]
    fn des_key_expansion_reproduces_the_published_lm_hash() {
        // The LM hash uses the same 7→8 byte key expansion: LM("PASSWORD") starts with
        // DES(key("PASSWOR"), "KGS!@#$%") = e52cac67419a9a22 (widely published).
        let key = des_key(*b"PASSWOR");
        let mut block = *b"KGS!@#$%";
        Des::new(&key.into()).encrypt_block((&mut block).into());
        assert_eq!(hex::encode(block), "e52cac67419a9a22");
    }

    #[test]
    fn decrypts_what_a_dc_encrypts() {
        let nt = *NtHash::from_password("Init!Pass00001").expose();
        let key = [0x42; 16];
        let wire = encrypt(&key, [7; 16], nt, 1102);
        let got = decrypt_unicode_pwd(&key, &wire, 1102).unwrap();
        // Known value from the lab notes: MD4('Init!Pass00001').
        assert_eq!(
            hex::encode(got.expose()),
            "8135b01c06c1d9fec986fbccd32ccfce"
        );
        assert_eq!(
            decrypt_unicode_pwd(&[0x43; 16], &wire, 1102).unwrap_err(),
            SecretError::Checksum
        );
        assert_ne!(
            decrypt_unicode_pwd(&key, &wire, 1103).unwrap().expose(),
            &nt
        );
        assert_eq!(
            decrypt_unicode_pwd(&key, &wire[..30], 1102).unwrap_err(),
            SecretError::Length
        );
        assert_eq!(
            decrypt_unicode_pwd(&key, &wire, 0).unwrap_err(),
            SecretError::NoRid
        );
    }
}
