//! NTLMSSP messages with NTLMv2 computed from an NT hash (MS-NLMP), shared by both NTLM users.
//!
//! Enters: an account name, a domain, an [`NtHash`], a server's CHALLENGE message and, over TLS, the
//! server certificate for channel bindings. Leaves: NEGOTIATE and AUTHENTICATE messages. The callers
//! pick the flag profile: `source::drsr::ntlm` (DCE/RPC packet privacy: sign, seal, key exchange) and
//! `source::ldap::ntlm_bind` (SASL `GSS-SPNEGO` over TLS: no sign or seal, channel bindings). Only
//! NTLMv2 with extended session security is ever built; no LM or NTLMv1.
//!
//! Messages (all little-endian; "fields" = `u16 len, u16 max_len, u32 offset`):
//! ```text
//! NEGOTIATE    "NTLMSSP\0" | u32 1 | u32 flags | fields domain | fields workstation
//! CHALLENGE    "NTLMSSP\0" | u32 2 | fields target_name | u32 flags | u8[8] challenge | u8[8] 0
//!              | fields target_info | [version]
//! AUTHENTICATE "NTLMSSP\0" | u32 3 | fields lm | fields nt | fields domain | fields user
//!              | fields workstation | fields encrypted_random_session_key | u32 flags | payload
//! ```
//! Target info is a list of AV pairs (`u16 id, u16 len, value`) ending with MsvAvEOL (id 0).

use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};
use zeroize::Zeroizing;

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

/// AV pair id of MsvAvEOL.
const AV_EOL: u16 = 0;
/// AV pair id of MsvAvTimestamp.
const AV_TIMESTAMP: u16 = 7;
/// AV pair id of MsvAvChannelBindings.
const AV_CHANNEL_BINDINGS: u16 = 10;

/// Why an NTLMSSP message could not be read or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// The server's message does not decode (what is wrong, in words).
    #[error("malformed NTLM CHALLENGE: {0}")]
    Malformed(String),
    /// A value does not fit the message (an over-long name) or a cipher could not be keyed.
    #[error("NTLM: {0}")]
    Build(String),
}

/// The NEGOTIATE message offering `flags` (no domain or workstation).
pub fn negotiate(flags: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
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

fn field<'a>(msg: &'a [u8], at: usize, what: &'static str) -> Result<&'a [u8], NtlmError> {
    let bad = |d: &str| NtlmError::Malformed(format!("{what}: {d}"));
    let f = msg.get(at..at + 8).ok_or_else(|| bad("truncated"))?;
    let len = usize::from(u16::from_le_bytes([f[0], f[1]]));
    let off = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    msg.get(off..off.saturating_add(len))
        .ok_or_else(|| bad("points outside the message"))
}

/// Decodes a CHALLENGE message. The caller checks the granted flags against its profile.
pub fn parse_challenge(msg: &[u8]) -> Result<Challenge, NtlmError> {
    if msg.len() < 48 || &msg[..8] != SIGNATURE || msg[8..12] != 2u32.to_le_bytes() {
        return Err(NtlmError::Malformed("not an NTLMSSP type 2 message".into()));
    }
    let flags = u32::from_le_bytes([msg[20], msg[21], msg[22], msg[23]]);
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(&msg[24..32]);
    let target_info = field(msg, 40, "target info")?.to_vec();
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// The AV pairs of a target info, up to (not including) MsvAvEOL; `None` when a pair runs past the
/// end or MsvAvEOL is missing.
fn av_pairs(target_info: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut pairs = Vec::new();
    let mut at = 0usize;
    loop {
        let h = target_info.get(at..at + 4)?;
        let id = u16::from_le_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let value = target_info.get(at + 4..at + 4 + len)?;
        if id == AV_EOL {
            return Some(pairs);
        }
        pairs.push((id, value));
        at += 4 + len;
    }
}

/// The MsvAvTimestamp AV pair, if the server sent one.
fn av_timestamp(target_info: &[u8]) -> Option<[u8; 8]> {
    let mut at = 0;
    while let Some(h) = target_info.get(at..at + 4) {
        let id = u16::from_le_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let value = target_info.get(at + 4..at + 4 + len)?;
        if id == AV_EOL {
            return None;
        }
        if id == AV_TIMESTAMP {
            return value.try_into().ok();
        }
        at += 4 + len;
    }
    None
}

/// The server's target info with an MsvAvChannelBindings pair (replacing any the server sent)
/// before MsvAvEOL, as the client echoes it inside its NTLMv2 response.
pub fn with_channel_bindings(
    target_info: &[u8],
    bindings: &[u8; 16],
) -> Result<Vec<u8>, NtlmError> {
    let pairs = av_pairs(target_info).ok_or_else(|| {
        NtlmError::Malformed(
            "target info: an AV pair runs past the end or MsvAvEOL is missing".into(),
        )
    })?;
    let mut out = Vec::with_capacity(target_info.len() + 20);
    for (id, value) in pairs
        .into_iter()
        .filter(|(id, _)| *id != AV_CHANNEL_BINDINGS)
    {
        out.extend_from_slice(&id.to_le_bytes());
        // `value` came out of a u16-length pair, so its length fits.
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&AV_CHANNEL_BINDINGS.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(bindings);
    out.extend_from_slice(&[0u8; 4]);
    Ok(out)
}

/// The MsvAvChannelBindings value for `application_data` (e.g. `tls-server-end-point:` ‖ hash):
/// MD5 of the GSS-API `gss_channel_bindings_struct` with no addresses (RFC 2744 §3.11, MS-NLMP
/// 3.1.5.1.2): four zero `u32`s, the application data length as `u32` LE, the data.
pub fn channel_bindings_hash(application_data: &[u8]) -> [u8; 16] {
    let len = u32::try_from(application_data.len()).unwrap_or(u32::MAX);
    *md5(&[&[0u8; 16], &len.to_le_bytes(), application_data])
}

/// HMAC-MD5 over the concatenation of `parts`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 16]> {
    let mut out = Zeroizing::new([0u8; 16]);
    if let Ok(mut mac) = HmacMd5::new_from_slice(key) {
        for p in parts {
            mac.update(p);
        }
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// MD5 over the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> Zeroizing<[u8; 16]> {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&h.finalize());
    out
}

/// UTF-16LE bytes of `s`.
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// An RC4 cipher (keys of 1 to 256 bytes).
pub fn rc4(key: &[u8]) -> Result<Rc4, NtlmError> {
    Rc4::new_from_slice(key).map_err(|_| NtlmError::Build("invalid RC4 key length".into()))
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

/// Who authenticates, by NT hash.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The account name (sAMAccountName), or a UPN with an empty `domain`.
    pub user: &'a str,
    /// The NetBIOS domain name (or empty with a UPN).
    pub domain: &'a str,
    /// The account's NT hash.
    pub nt_hash: &'a NtHash,
}

/// Builds the AUTHENTICATE message (NTLMv2) answering `challenge`.
///
/// `offered` are the flags the NEGOTIATE offered; the message carries `offered & challenge.flags`.
/// `channel_bindings` (MD5 of the TLS channel bindings, see [`channel_bindings_hash`]) is added to
/// the echoed target info as MsvAvChannelBindings. With KEY_EXCH agreed, `nonces.session_key` is
/// sent encrypted under the key-exchange key and becomes the session key; without it, none is sent.
pub fn authenticate(
    id: Identity<'_>,
    challenge: &Challenge,
    nonces: &Nonces,
    offered: u32,
    channel_bindings: Option<&[u8; 16]>,
) -> Result<Vec<u8>, NtlmError> {
    let target_info = match channel_bindings {
        Some(cb) => with_channel_bindings(&challenge.target_info, cb)?,
        None => challenge.target_info.clone(),
    };
    let identity = utf16le(&(id.user.to_uppercase() + id.domain));
    let response_key = hmac_md5(id.nt_hash.expose(), &[&identity]);
    let server_timestamp = av_timestamp(&challenge.target_info);
    let timestamp = server_timestamp.unwrap_or(nonces.now_filetime.to_le_bytes());
    let mut temp = Vec::with_capacity(32 + target_info.len());
    temp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    temp.extend_from_slice(&timestamp);
    temp.extend_from_slice(&nonces.client_challenge);
    temp.extend_from_slice(&[0u8; 4]);
    temp.extend_from_slice(&target_info);
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
    let flags = offered & challenge.flags;
    let encrypted_key = if flags & KEY_EXCH != 0 {
        // NTLMv2: KeyExchangeKey = SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr).
        let key_exchange_key = hmac_md5(&response_key[..], &[&proof[..]]);
        let mut encrypted = *nonces.session_key;
        rc4(&key_exchange_key[..])?.apply_keystream(&mut encrypted);
        encrypted.to_vec()
    } else {
        Vec::new()
    };
    let domain = utf16le(id.domain);
    let user = utf16le(id.user);
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
        let len = u16::try_from(p.len())
            .map_err(|_| NtlmError::Build("a name or the target info is too long".into()))?;
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&offset.to_le_bytes());
        offset += u32::from(len);
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    for p in payload {
        msg.extend_from_slice(p);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-NLMP §4.2.4 target info: MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", EOL.
    const SPEC_TARGET_INFO: &str =
        "02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";

    #[test]
    fn channel_bindings_pair_goes_before_eol_and_replaces_a_sent_one() {
        let ti = hex::decode(SPEC_TARGET_INFO).unwrap();
        let out = with_channel_bindings(&ti, &[0xcb; 16]).unwrap();
        // The original pairs unchanged, then 0a00 1000 <16 bytes>, then EOL.
        assert_eq!(out[..ti.len() - 4], ti[..ti.len() - 4]);
        assert_eq!(
            hex::encode(&out[ti.len() - 4..]),
            format!("0a001000{}00000000", "cb".repeat(16))
        );
        // Applying it again replaces, does not duplicate.
        let again = with_channel_bindings(&out, &[0x11; 16]).unwrap();
        assert_eq!(again.len(), out.len());
        assert!(hex::encode(&again).contains(&"11".repeat(16)));
        assert!(!hex::encode(&again).contains(&"cb".repeat(16)));
    }

    #[test]
    fn target_info_without_eol_or_with_an_overlong_pair_is_refused() {
        assert!(matches!(
            with_channel_bindings(&hex::decode("02000c0044006f00").unwrap(), &[0; 16]),
            Err(NtlmError::Malformed(_))
        ));
        assert!(with_channel_bindings(&hex::decode("0100ffff00").unwrap(), &[0; 16]).is_err());
        assert!(with_channel_bindings(&[], &[0; 16]).is_err());
    }

    #[test]
    fn channel_bindings_hash_is_md5_of_the_gss_struct() {
        // Independently: MD5(00×16 ‖ 05000000 ‖ "hello"), computed with `md5sum` over those bytes.
        assert_eq!(
            hex::encode(channel_bindings_hash(b"hello")),
            "50f40d34cd26c144fc662ed1ec783a94"
        );
    }

    /// MS-NLMP §4.2.4 from the NT hash alone (no password string, as for a gMSA): NTOWFv1 of
    /// "Password" is a4f49c406510bdcab6824ee7c30fd852 (§4.2.2.1.2); with it, the NTLMv2 response
    /// starts with NTProofStr 68cd0ab851e51c96aabc927bebef6a1c (§4.2.4.2.2) and the encrypted session
    /// key is c5dad2544fc9799094ce1ce90bc9d03e (§4.2.4.2.3). The DRSR module checks the same vector
    /// from the password.
    #[test]
    fn ntlmv2_from_the_hash_alone_matches_ms_nlmp_4_2_4() {
        let nt = NtHash::from_bytes(
            hex::decode("a4f49c406510bdcab6824ee7c30fd852")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let challenge = Challenge {
            flags: 0xe28a8233,
            server_challenge: hex::decode("0123456789abcdef").unwrap().try_into().unwrap(),
            target_info: hex::decode(SPEC_TARGET_INFO).unwrap(),
        };
        let nonces = Nonces {
            client_challenge: [0xaa; 8],
            session_key: Zeroizing::new([0x55; 16]),
            now_filetime: 0,
        };
        let id = Identity {
            user: "User",
            domain: "Domain",
            nt_hash: &nt,
        };
        let msg = authenticate(id, &challenge, &nonces, 0xe28a8233, None).unwrap();
        let at = |o: usize| u32::from_le_bytes(msg[o..o + 4].try_into().unwrap()) as usize;
        assert_eq!(
            hex::encode(&msg[at(24)..at(24) + 16]),
            "68cd0ab851e51c96aabc927bebef6a1c"
        );
        assert_eq!(
            hex::encode(&msg[at(56)..at(56) + 16]),
            "c5dad2544fc9799094ce1ce90bc9d03e"
        );
        // With channel bindings the echoed target info carries the pair, so the proof changes.
        let cb = authenticate(id, &challenge, &nonces, 0xe28a8233, Some(&[0xcb; 16])).unwrap();
        let nt_len = usize::from(u16::from_le_bytes([cb[20], cb[21]]));
        let nt_off = u32::from_le_bytes(cb[24..28].try_into().unwrap()) as usize;
        let response = hex::encode(&cb[nt_off..nt_off + nt_len]);
        assert!(response.contains(&format!("0a001000{}", "cb".repeat(16))));
        assert_ne!(&response[..32], "68cd0ab851e51c96aabc927bebef6a1c");
    }

    #[test]
    fn without_key_exch_no_session_key_is_sent() {
        let nt = NtHash::from_password("Password");
        let challenge = Challenge {
            flags: UNICODE | NTLM | EXTENDED_SESSIONSECURITY | TARGET_INFO | KEY_EXCH,
            server_challenge: [1; 8],
            target_info: hex::decode(SPEC_TARGET_INFO).unwrap(),
        };
        let nonces = Nonces {
            client_challenge: [0xaa; 8],
            session_key: Zeroizing::new([0x55; 16]),
            now_filetime: 0,
        };
        let id = Identity {
            user: "User",
            domain: "Domain",
            nt_hash: &nt,
        };
        let offered = UNICODE | NTLM | EXTENDED_SESSIONSECURITY | TARGET_INFO;
        let msg = authenticate(id, &challenge, &nonces, offered, None).unwrap();
        assert_eq!(&msg[52..54], &[0, 0], "empty EncryptedRandomSessionKey");
        assert_eq!(u32::from_le_bytes(msg[60..64].try_into().unwrap()), offered);
        let with_kx = authenticate(id, &challenge, &nonces, offered | KEY_EXCH, None).unwrap();
        assert_eq!(&with_kx[52..54], &[16, 0]);
    }

    proptest::proptest! {
        /// Whatever the server sends, the LDAP path returns a value or a typed error.
        #[test]
        fn challenge_handling_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = with_channel_bindings(&data, &[1; 16]);
            let mut msg = b"NTLMSSP\0\x02\0\0\0".to_vec();
            msg.extend_from_slice(&data);
            for m in [&data, &msg] {
                if let Ok(challenge) = parse_challenge(m) {
                    let nt = NtHash::from_bytes([7; 16]);
                    let id = Identity { user: "svc", domain: "CORP", nt_hash: &nt };
                    let _ = authenticate(id, &challenge, &Nonces::random(), u32::MAX, Some(&[1; 16]));
                }
            }
        }
    }
}
