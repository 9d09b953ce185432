//! NTLMv2 authentication with session security (MS-NLMP), as DCE/RPC packet privacy uses it.
//!
//! Only the modern profile is offered and accepted: NTLMv2 responses, extended session security,
//! 128-bit keys, key exchange, sign and seal. A server that does not agree to all of them is refused.
//!
//! Messages (all little-endian; "fields" = `u16 len, u16 max_len, u32 offset`):
//! ```text
//! NEGOTIATE    "NTLMSSP\0" | u32 1 | u32 flags | fields domain | fields workstation
//! CHALLENGE    "NTLMSSP\0" | u32 2 | fields target_name | u32 flags | u8[8] challenge | u8[8] 0
//!              | fields target_info | [version]
//! AUTHENTICATE "NTLMSSP\0" | u32 3 | fields lm | fields nt | fields domain | fields user
//!              | fields workstation | fields encrypted_random_session_key | u32 flags | payload
//! ```
//! The session this establishes (sealing, signatures, the exported session key) is in
//! [`super::sealing`].

use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};
use zeroize::Zeroizing;

use super::error::DrsrError;
pub use super::sealing::Session;
use crate::nt_hash::NtHash;

type HmacMd5 = hmac::Hmac<Md5>;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NTLMSSP_NEGOTIATE_UNICODE.
pub const UNICODE: u32 = 0x0000_0001;
/// NTLMSSP_REQUEST_TARGET.
pub const REQUEST_TARGET: u32 = 0x0000_0004;
/// NTLMSSP_NEGOTIATE_SIGN.
pub const SIGN: u32 = 0x0000_0010;
/// NTLMSSP_NEGOTIATE_SEAL.
pub const SEAL: u32 = 0x0000_0020;
/// NTLMSSP_NEGOTIATE_NTLM.
pub const NTLM: u32 = 0x0000_0200;
/// NTLMSSP_NEGOTIATE_ALWAYS_SIGN.
pub const ALWAYS_SIGN: u32 = 0x0000_8000;
/// NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY.
pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
/// NTLMSSP_NEGOTIATE_TARGET_INFO.
pub const TARGET_INFO: u32 = 0x0080_0000;
/// NTLMSSP_NEGOTIATE_128.
pub const NEGOTIATE_128: u32 = 0x2000_0000;
/// NTLMSSP_NEGOTIATE_KEY_EXCH.
pub const KEY_EXCH: u32 = 0x4000_0000;
/// NTLMSSP_NEGOTIATE_56.
pub const NEGOTIATE_56: u32 = 0x8000_0000;

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

/// AV pair id of MsvAvTimestamp.
const AV_TIMESTAMP: u16 = 7;

/// Who authenticates: the sync account. The password lives in a zeroizing buffer.
pub struct Credentials {
    /// The account's sAMAccountName (or UPN user part).
    pub user: String,
    /// The NetBIOS domain name.
    pub domain: String,
    /// The password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The NEGOTIATE message.
pub fn negotiate() -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    m.extend_from_slice(&[0u8; 16]);
    m
}

/// The parts of a CHALLENGE message we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Flags the server agreed to.
    pub flags: u32,
    /// The 8-byte server challenge.
    pub server_challenge: [u8; 8],
    /// The AV pairs (target info), verbatim.
    pub target_info: Vec<u8>,
}

fn field<'a>(msg: &'a [u8], at: usize, what: &'static str) -> Result<&'a [u8], DrsrError> {
    let bad = |d: &str| DrsrError::malformed("NTLM CHALLENGE", format!("{what}: {d}"));
    let f = msg.get(at..at + 8).ok_or_else(|| bad("truncated"))?;
    let len = usize::from(u16::from_le_bytes([f[0], f[1]]));
    let off = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    msg.get(off..off.saturating_add(len))
        .ok_or_else(|| bad("points outside the message"))
}

/// Decodes a CHALLENGE message and checks that the server grants the session security we need.
pub fn parse_challenge(msg: &[u8]) -> Result<Challenge, DrsrError> {
    if msg.len() < 48 || &msg[..8] != SIGNATURE || msg[8..12] != 2u32.to_le_bytes() {
        return Err(DrsrError::malformed(
            "NTLM CHALLENGE",
            "not an NTLMSSP type 2 message",
        ));
    }
    let flags = u32::from_le_bytes([msg[20], msg[21], msg[22], msg[23]]);
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(&msg[24..32]);
    let target_info = field(msg, 40, "target info")?.to_vec();
    if flags & REQUIRED != REQUIRED {
        return Err(DrsrError::Ntlm(format!(
            "the server did not grant NTLMv2 session security with 128-bit keys, key exchange, \
             signing and sealing (flags {flags:#010x}, need {REQUIRED:#010x})"
        )));
    }
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// The MsvAvTimestamp AV pair, if the server sent one.
fn av_timestamp(target_info: &[u8]) -> Option<[u8; 8]> {
    let mut at = 0;
    while let Some(h) = target_info.get(at..at + 4) {
        let id = u16::from_le_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let value = target_info.get(at + 4..at + 4 + len)?;
        if id == 0 {
            return None;
        }
        if id == AV_TIMESTAMP {
            return value.try_into().ok();
        }
        at += 4 + len;
    }
    None
}

pub(super) fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 16]> {
    let mut out = Zeroizing::new([0u8; 16]);
    if let Ok(mut mac) = HmacMd5::new_from_slice(key) {
        for p in parts {
            mac.update(p);
        }
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

pub(super) fn md5(parts: &[&[u8]]) -> Zeroizing<[u8; 16]> {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&h.finalize());
    out
}

pub(super) fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Inputs that must be random in production and fixed in tests.
#[derive(Clone)]
pub struct Nonces {
    /// The client challenge.
    pub client_challenge: [u8; 8],
    /// The exported session key (sent encrypted under the key-exchange key).
    pub session_key: Zeroizing<[u8; 16]>,
    /// The time stamp (FILETIME) to use when the server sent none.
    pub now_filetime: u64,
}

impl Nonces {
    /// Fresh random nonces and the current time.
    pub fn random() -> Nonces {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Nonces {
            client_challenge: rand::random(),
            session_key: Zeroizing::new(rand::random()),
            now_filetime: (unix + 11_644_473_600) * 10_000_000,
        }
    }
}

/// Builds the AUTHENTICATE message and the session it establishes.
pub fn authenticate(
    creds: &Credentials,
    challenge: &Challenge,
    nonces: &Nonces,
) -> Result<(Vec<u8>, Session), DrsrError> {
    let nt = NtHash::from_password(&creds.password);
    let identity = utf16le(&(creds.user.to_uppercase() + &creds.domain));
    let response_key = hmac_md5(nt.expose(), &[&identity]);
    let server_timestamp = av_timestamp(&challenge.target_info);
    let timestamp = server_timestamp.unwrap_or(nonces.now_filetime.to_le_bytes());
    let mut temp = Vec::with_capacity(32 + challenge.target_info.len());
    temp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    temp.extend_from_slice(&timestamp);
    temp.extend_from_slice(&nonces.client_challenge);
    temp.extend_from_slice(&[0u8; 4]);
    temp.extend_from_slice(&challenge.target_info);
    temp.extend_from_slice(&[0u8; 4]);
    let proof = hmac_md5(&response_key[..], &[&challenge.server_challenge, &temp]);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&temp);
    let lm_response = if server_timestamp.is_some() {
        vec![0u8; 24]
    } else {
        let mut lm = hmac_md5(
            &response_key[..],
            &[&challenge.server_challenge, &nonces.client_challenge],
        )
        .to_vec();
        lm.extend_from_slice(&nonces.client_challenge);
        lm
    };
    // NTLMv2: KeyExchangeKey = SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr).
    let key_exchange_key = hmac_md5(&response_key[..], &[&proof[..]]);
    let mut encrypted_key = *nonces.session_key;
    rc4(&key_exchange_key[..])?.apply_keystream(&mut encrypted_key);
    let flags = CLIENT_FLAGS & challenge.flags;
    let domain = utf16le(&creds.domain);
    let user = utf16le(&creds.user);
    let workstation = utf16le("CLOUDSYNC");
    let payload: [&[u8]; 6] = [
        &lm_response,
        &nt_response,
        &domain,
        &user,
        &workstation,
        &encrypted_key,
    ];
    let mut msg = Vec::new();
    msg.extend_from_slice(SIGNATURE);
    msg.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = 64u32;
    for p in payload {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&offset.to_le_bytes());
        offset += u32::from(len);
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    for p in payload {
        msg.extend_from_slice(p);
    }
    Ok((msg, Session::new(&nonces.session_key)?))
}

/// An RC4 cipher (keys of 1 to 256 bytes).
pub fn rc4(key: &[u8]) -> Result<Rc4, DrsrError> {
    Rc4::new_from_slice(key).map_err(|_| DrsrError::Ntlm("invalid RC4 key length".into()))
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
                password: Zeroizing::new("Password".into()),
            },
            Challenge {
                flags: 0xe28a8233,
                server_challenge: hex::decode("0123456789abcdef").unwrap().try_into().unwrap(),
                target_info,
            },
            Nonces {
                client_challenge: [0xaa; 8],
                session_key: Zeroizing::new([0x55; 16]),
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
        let mut msg = Vec::from(*SIGNATURE);
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
