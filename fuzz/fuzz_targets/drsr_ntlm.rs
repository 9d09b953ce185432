//! Fuzzes the NTLM CHALLENGE decoder and the unsealing of a response with an arbitrary signature:
//! garbage yields a typed error (malformed, too weak, bad signature), never a panic.
#![no_main]

use cloudsync_agent::source::drsr::ntlm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ntlm::parse_challenge(data);
    if data.len() >= 16 {
        let (sig, rest) = data.split_at(16);
        let mut pdu = rest.to_vec();
        let end = pdu.len() / 2;
        if let Ok(mut session) = ntlm::Session::for_fuzzing(&[7; 16]) {
            let _ = session.unseal(&mut pdu, 0..end, sig);
        }
    }
});
