//! NTLMv2 authentication with session security (MS-NLMP), as DCE/RPC packet privacy uses it.
//!
//! Only the modern profile is offered and accepted: NTLMv2 responses, extended session security,
//! 128-bit keys, key exchange, sign and seal. A server that does not agree to all of them is refused.
//! The messages themselves are built by [`crate::ntlmssp`] (shared with the LDAP NTLM bind); this
//! module holds the DCE/RPC flag profile and the password credentials.
//!
//! The session this establishes (sealing, signatures, the exported session key) is in
//! [`super::sealing`].

use super::error::DrsrError;
pub use super::sealing::Session;
use crate::nt_hash::NtHash;
use crate::ntlmssp::{self, Identity, NtlmError};
pub use crate::ntlmssp::{
    ALWAYS_SIGN, Challenge, EXTENDED_SESSIONSECURITY, KEY_EXCH, NEGOTIATE_56, NEGOTIATE_128, NTLM,
    Nonces, REQUEST_TARGET, SEAL, SIGN, TARGET_INFO, UNICODE,
};
pub(super) use crate::ntlmssp::{hmac_md5, md5};

/// The flags we offer.
pub const CLIENT_FLAGS: u32 = UNICODE
    | REQUEST_TARGET
    | SIGN
    | SEAL
    | NTLM
    | ALWAYS_SIGN
    | EXTENDED_SESSIONSECURITY
    | TARGET_INFO
    | NEGOTIATE_128
    | KEY_EXCH
    | NEGOTIATE_56;

/// The flags the server must grant.
const REQUIRED: u32 = UNICODE | SIGN | SEAL | EXTENDED_SESSIONSECURITY | NEGOTIATE_128 | KEY_EXCH;

/// Who authenticates: the sync account. The password lives in a zeroizing buffer.
#[derive(Clone)]
pub struct Credentials {
    /// The account's sAMAccountName (or UPN user part).
    pub user: String,
    /// The NetBIOS domain name.
    pub domain: String,
    /// The account's NT hash: of its password (`NtHash::from_password`), or a group managed service
    /// account's, which has no password string (`account::gmsa_blob`). NTLM never needs more.
    pub nt_hash: NtHash,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("nt_hash", &self.nt_hash)
            .finish()
    }
}

impl From<NtlmError> for DrsrError {
    fn from(e: NtlmError) -> Self {
        match e {
            NtlmError::Malformed(detail) => DrsrError::malformed("NTLM CHALLENGE", detail),
            NtlmError::Build(detail) => DrsrError::Ntlm(detail),
        }
    }
}

/// The NEGOTIATE message.
pub fn negotiate() -> Vec<u8> {
    ntlmssp::negotiate(CLIENT_FLAGS)
}

/// Decodes a CHALLENGE message and checks that the server grants the session security we need.
pub fn parse_challenge(msg: &[u8]) -> Result<Challenge, DrsrError> {
    let challenge = ntlmssp::parse_challenge(msg)?;
    let flags = challenge.flags;
    if flags & REQUIRED != REQUIRED {
        return Err(DrsrError::Ntlm(format!(
            "the server did not grant NTLMv2 session security with 128-bit keys, key exchange, \
             signing and sealing (flags {flags:#010x}, need {REQUIRED:#010x})"
        )));
    }
    Ok(challenge)
}

/// Builds the AUTHENTICATE message and the session it establishes.
pub fn authenticate(
    creds: &Credentials,
    challenge: &Challenge,
    nonces: &Nonces,
) -> Result<(Vec<u8>, Session), DrsrError> {
    let id = Identity {
        user: &creds.user,
        domain: &creds.domain,
        nt_hash: &creds.nt_hash,
    };
    let msg = ntlmssp::authenticate(id, challenge, nonces, CLIENT_FLAGS, None)?;
    Ok((msg, Session::new(&nonces.session_key)?))
}

/// An RC4 cipher (keys of 1 to 256 bytes).
pub fn rc4(key: &[u8]) -> Result<rc4::Rc4, DrsrError> {
    Ok(ntlmssp::rc4(key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-NLMP §4.2.4 (NTLMv2) test data: User "User", domain "Domain", password "Password",
    /// server challenge 0123456789abcdef, client challenge aa×8, time 0, random session key 55×16.
    fn spec_inputs() -> (Credentials, Challenge, Nonces) {
        let target_info =
            hex::decode("02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000")
                .unwrap();
        (
            Credentials {
                user: "User".into(),
                domain: "Domain".into(),
                nt_hash: NtHash::from_password("Password"),
            },
            Challenge {
                flags: 0xe28a8233,
                server_challenge: hex::decode("0123456789abcdef").unwrap().try_into().unwrap(),
                target_info,
            },
            Nonces {
                client_challenge: [0xaa; 8],
                session_key: zeroize::Zeroizing::new([0x55; 16]),
                now_filetime: 0,
            },
        )
    }

    #[test]
    fn ntlmv2_response_matches_ms_nlmp_4_2_4() {
        let (creds, challenge, nonces) = spec_inputs();
        let (msg, session) = authenticate(&creds, &challenge, &nonces).unwrap();
        // NT response starts with NTProofStr = 68cd0ab851e51c96aabc927bebef6a1c (§4.2.4.2.2).
        let nt_off = u32::from_le_bytes(msg[24..28].try_into().unwrap()) as usize;
        assert_eq!(
            hex::encode(&msg[nt_off..nt_off + 16]),
            "68cd0ab851e51c96aabc927bebef6a1c"
        );
        // LMv2 response = 86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa (§4.2.4.2.1).
        let lm_off = u32::from_le_bytes(msg[16..20].try_into().unwrap()) as usize;
        assert_eq!(
            hex::encode(&msg[lm_off..lm_off + 24]),
            "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
        );
        // Encrypted session key = c5dad2544fc9799094ce1ce90bc9d03e (§4.2.4.2.3).
        let key_off = u32::from_le_bytes(msg[56..60].try_into().unwrap()) as usize;
        assert_eq!(
            hex::encode(&msg[key_off..key_off + 16]),
            "c5dad2544fc9799094ce1ce90bc9d03e"
        );
        assert_eq!(session.session_key(), &[0x55; 16]);
    }

    #[test]
    fn challenge_parser_rejects_weak_or_malformed_messages() {
        assert!(parse_challenge(b"NTLMSSP\0").is_err());
        let mut msg = Vec::from(*b"NTLMSSP\0");
        msg.extend_from_slice(&2u32.to_le_bytes());
        msg.extend_from_slice(&[0u8; 8]);
        msg.extend_from_slice(&(REQUIRED & !SEAL).to_le_bytes());
        msg.extend_from_slice(&[1u8; 16]);
        msg.extend_from_slice(&[4, 0, 4, 0, 0xff, 0, 0, 0]); // target info outside
        assert!(parse_challenge(&msg).is_err());
        msg[44..48].copy_from_slice(&44u32.to_le_bytes());
        assert!(matches!(parse_challenge(&msg), Err(DrsrError::Ntlm(_))));
        msg[20..24].copy_from_slice(&REQUIRED.to_le_bytes());
        assert_eq!(parse_challenge(&msg).unwrap().server_challenge, [1; 8]);
    }
}
