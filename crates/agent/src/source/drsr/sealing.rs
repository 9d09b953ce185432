//! NTLM session security (MS-NLMP §3.4.3, §3.4.4.2) with extended session security, 128-bit keys and
//! key exchange: per direction a signing key MD5(K ‖ magic) and an RC4 handle keyed with MD5(K ‖ magic);
//! a message is encrypted with the handle, then its signature is
//! `01000000 | RC4(HMAC_MD5(signing key, seq ‖ message)[..8]) | seq`.
//!
//! For DCE/RPC packet privacy the signed message is the whole PDU up to the auth value (header, stub,
//! padding, security trailer) in plaintext, while only the stub and padding are encrypted.

use rc4::{Rc4, StreamCipher};
use zeroize::{Zeroize, Zeroizing};

use super::error::DrsrError;
use super::ntlm::{hmac_md5, md5, rc4};

/// One direction of session security.
struct Direction {
    signing_key: Zeroizing<[u8; 16]>,
    handle: Rc4,
    seq: u32,
}

impl Direction {
    fn new(
        session_key: &[u8; 16],
        sign_magic: &[u8],
        seal_magic: &[u8],
    ) -> Result<Direction, DrsrError> {
        let signing_key = md5(&[session_key, sign_magic]);
        let sealing_key = md5(&[session_key, seal_magic]);
        Ok(Direction {
            signing_key,
            handle: rc4(&sealing_key[..])?,
            seq: 0,
        })
    }

    fn checksum(&mut self, message: &[u8]) -> [u8; 8] {
        let mac = hmac_md5(&self.signing_key[..], &[&self.seq.to_le_bytes(), message]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&mac[..8]);
        self.handle.apply_keystream(&mut checksum);
        checksum
    }
}

/// An established NTLM security context: sealing both ways and the exported session key.
pub struct Session {
    session_key: Zeroizing<[u8; 16]>,
    client: Direction,
    server: Direction,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(<redacted>)")
    }
}

impl Session {
    pub(super) fn new(session_key: &[u8; 16]) -> Result<Session, DrsrError> {
        Ok(Session {
            session_key: Zeroizing::new(*session_key),
            client: Direction::new(
                session_key,
                b"session key to client-to-server signing key magic constant\0",
                b"session key to client-to-server sealing key magic constant\0",
            )?,
            server: Direction::new(
                session_key,
                b"session key to server-to-client signing key magic constant\0",
                b"session key to server-to-client sealing key magic constant\0",
            )?,
        })
    }

    /// A session from a bare key, for fuzzing the unsealing path without a handshake.
    pub fn for_fuzzing(session_key: &[u8; 16]) -> Result<Session, DrsrError> {
        Session::new(session_key)
    }

    /// The peer's view of a session (directions swapped), to test both ends of sealing.
    #[cfg(test)]
    pub(crate) fn server_role(session_key: &[u8; 16]) -> Result<Session, DrsrError> {
        let mut s = Session::new(session_key)?;
        std::mem::swap(&mut s.client, &mut s.server);
        Ok(s)
    }

    /// The exported session key (what MS-DRSR calls the session key for secret encryption).
    pub fn session_key(&self) -> &[u8; 16] {
        &self.session_key
    }

    /// Seals `pdu[range]` in place and returns the 16-byte signature over the whole (plaintext) `pdu`.
    pub fn seal(&mut self, pdu: &mut [u8], range: std::ops::Range<usize>) -> [u8; 16] {
        let d = &mut self.client;
        let mac = hmac_md5(&d.signing_key[..], &[&d.seq.to_le_bytes(), pdu]);
        if let Some(part) = pdu.get_mut(range) {
            d.handle.apply_keystream(part);
        }
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&mac[..8]);
        d.handle.apply_keystream(&mut checksum);
        let sig = signature(checksum, d.seq);
        d.seq = d.seq.wrapping_add(1);
        sig
    }

    /// Unseals `pdu[range]` in place and verifies `sig` over the whole (now plaintext) `pdu`.
    pub fn unseal(
        &mut self,
        pdu: &mut [u8],
        range: std::ops::Range<usize>,
        sig: &[u8],
    ) -> Result<(), DrsrError> {
        let d = &mut self.server;
        if let Some(part) = pdu.get_mut(range) {
            d.handle.apply_keystream(part);
        }
        let expected = signature(d.checksum(pdu), d.seq);
        d.seq = d.seq.wrapping_add(1);
        let diff = expected
            .iter()
            .zip(sig)
            .fold(u8::from(sig.len() != 16), |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(())
        } else {
            Err(DrsrError::BadSignature)
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.session_key.zeroize();
    }
}

fn signature(checksum: [u8; 8], seq: u32) -> [u8; 16] {
    let mut sig = [0u8; 16];
    sig[..4].copy_from_slice(&1u32.to_le_bytes());
    sig[4..12].copy_from_slice(&checksum);
    sig[12..].copy_from_slice(&seq.to_le_bytes());
    sig
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntlmssp::utf16le;

    #[test]
    fn sealing_matches_ms_nlmp_4_2_4_4() {
        // §4.2.4.4: "Plaintext" sealed with seq 0 → 54e50165bf1936dc996020c1811b0f06fb5f,
        // signature 01000000 7fb38ec5c55d4976 00000000.
        // MS-NLMP §4.2.4 random session key: 55 × 16.
        let mut session = Session::new(&[0x55; 16]).unwrap();
        let mut data = utf16le("Plaintext");
        let sig = session.seal(&mut data, 0..18);
        assert_eq!(hex::encode(&data), "54e50165bf1936dc996020c1811b0f06fb5f");
        assert_eq!(hex::encode(sig), "010000007fb38ec5c55d497600000000");
    }

    #[test]
    fn unseal_verifies_and_detects_tampering() {
        let key = [7u8; 16];
        let mut client = Session::new(&key).unwrap();
        // A peer whose "client" direction is our "server" direction: swap roles by hand.
        let mut server = Session::new(&key).unwrap();
        std::mem::swap(&mut server.client, &mut server.server);
        for round in 0..3u8 {
            let mut pdu = vec![round; 40];
            let plain = pdu.clone();
            let sig = server.seal(&mut pdu, 10..30);
            assert_ne!(pdu, plain);
            client.unseal(&mut pdu, 10..30, &sig).unwrap();
            assert_eq!(pdu, plain);
        }
        let mut pdu = vec![9u8; 40];
        let sig = server.seal(&mut pdu, 10..30);
        pdu[35] ^= 1; // signed but not encrypted part
        assert!(matches!(
            client.unseal(&mut pdu, 10..30, &sig),
            Err(DrsrError::BadSignature)
        ));
    }
}
