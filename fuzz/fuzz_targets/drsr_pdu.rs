//! Fuzzes the DCE/RPC PDU decoders (header, split into body/trailer/auth value, bind_ack, fault):
//! any input decodes or fails with a typed error, never panics; a split body stays inside the input.
#![no_main]

use cloudsync_agent::source::drsr::pdu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pdu::Header::parse(data);
    if let Ok(s) = pdu::split(data) {
        assert!(s.body.len() + pdu::HEADER_LEN <= data.len());
        let _ = pdu::fault_status(s.body);
    }
    let _ = pdu::parse_bind_ack(data);
});
