//! Fuzzes the self-relative security descriptor parser and writer: any input parses or fails, never
//! panics; a parsed descriptor writes back to bytes that parse to the same descriptor, and writing
//! that again gives the same bytes (parse → write → parse equal; write is a fixed point).
#![no_main]

use cloudsync_agent::account::security_descriptor::SecurityDescriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = SecurityDescriptor::parse(data) {
        // A part too large for its 16-bit size field is refused by the writer, not truncated.
        if let Ok(bytes) = sd.to_bytes() {
            let again = SecurityDescriptor::parse(&bytes).expect("written descriptor parses");
            assert_eq!(again, sd);
            assert_eq!(again.to_bytes().expect("writes again"), bytes);
        }
    }
});
