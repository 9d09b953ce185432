//! Fuzzes the IDL_DRSBind and IDL_DRSGetNCChanges reply decoders (NDR with hostile counts, pointers
//! and linked lists): decode or fail with a typed error, never panic or allocate without bound.
#![no_main]

use cloudsync_agent::source::drsr::{drsuapi, getncchanges};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = drsuapi::parse_bind_reply(data);
    if let Ok(reply) = getncchanges::decode_reply(data) {
        assert!(reply.objects.len() <= data.len() / 32);
    }
});
