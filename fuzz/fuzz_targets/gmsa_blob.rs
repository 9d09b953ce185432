//! Fuzzes the `msDS-ManagedPassword` decoder: any input decodes or fails, never panics; a decoded blob's
//! previous password is present only when its offset was non-zero.
#![no_main]

use cloudsync_agent::account::gmsa_blob::ManagedPassword;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ManagedPassword::decode(data) {
        let previous_offset = u16::from_le_bytes([data[10], data[11]]);
        assert_eq!(p.previous.is_some(), previous_offset != 0);
    }
});
