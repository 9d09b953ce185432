//! Fuzzes the DirSync response-control decoder: any input must decode or fail, never panic, and a
//! decoded cookie must survive a request encode/decode round trip.
#![no_main]

use cloudsync_agent::source::ldap::ber::Reader;
use cloudsync_agent::source::ldap::control::{DirSyncRequest, DirSyncResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = DirSyncResponse::decode(data) {
        let req = DirSyncRequest {
            flags: 0x8000_0801,
            max_bytes: 1 << 20,
            cookie: resp.cookie.clone(),
        };
        let encoded = req.encode();
        let mut outer = Reader::new(&encoded);
        let mut seq = outer.sequence().expect("own encoding");
        assert_eq!(
            seq.integer().expect("flags"),
            i64::from(0x8000_0801u32 as i32)
        );
        assert_eq!(seq.integer().expect("max bytes"), 1 << 20);
        assert_eq!(seq.octets().expect("cookie"), &resp.cookie[..]);
    }
});
