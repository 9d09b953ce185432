//! Fuzzes the endpoint mapper's `ept_map` response and tower decoders.
#![no_main]

use cloudsync_agent::source::drsr::epm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = epm::parse_map_response(data);
    let _ = epm::tcp_port(data);
});
