//! Fuzzes the stored DRSR cookie decoder and the replicated-secret decryption (length, CRC, RID
//! checks): a decoded cookie re-encodes to the same bytes.
#![no_main]

use cloudsync_agent::source::drsr::cookie::Cookie;
use cloudsync_agent::source::drsr::secrets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(cookie)) = Cookie::from_bytes(data) {
        assert_eq!(cookie.to_bytes(), data);
    }
    if data.len() >= 4 {
        let rid = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let _ = secrets::decrypt_unicode_pwd(&[1; 16], &data[4..], rid);
    }
});
