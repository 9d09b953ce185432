//! Fuzzes what the LDAP NTLM bind does with a server's CHALLENGE: decode it, add the channel
//! bindings pair to its target info, build the AUTHENTICATE. Garbage yields a typed error, never a
//! panic (the DRSR profile's checks are fuzzed by `drsr_ntlm`).
#![no_main]

use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::ntlmssp::{self, Identity, Nonces};
use cloudsync_agent::source::ldap::ntlm_bind::LDAP_FLAGS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ntlmssp::with_channel_bindings(data, &[0xcb; 16]);
    if let Ok(challenge) = ntlmssp::parse_challenge(data) {
        let nt = NtHash::from_bytes([7; 16]);
        let id = Identity {
            user: "svc",
            domain: "CORP",
            nt_hash: &nt,
        };
        let _ = ntlmssp::authenticate(
            id,
            &challenge,
            &Nonces::random(),
            LDAP_FLAGS,
            Some(&[1; 16]),
        );
    }
});
