//! Fuzzes the outbox's record decoding: the envelope (`push::envelope::decode`: magic, version,
//! length, CRC32C, then the JSON `OutboxOp`) and the quarantine records (JSON `QuarantinedObject`,
//! read with `serde_json::from_slice` as `Outbox::quarantined_objects` reads them).
//!
//! Input: byte 0 picks the mode. Even: the rest is a stored value as is. Odd: the rest is a payload,
//! framed here with a correct header and CRC so the JSON decoder sees the hostile bytes. Decoding
//! fails with a typed error, never panics; a decoded operation encodes and decodes back to itself.
#![no_main]

use cloudsync_agent::push::QuarantinedObject;
use cloudsync_agent::push::envelope::{self, HEADER_LEN, MAGIC, VERSION};
use libfuzzer_sys::fuzz_target;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stored = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        frame(rest)
    };
    if let Ok(op) = envelope::decode(&stored) {
        let again = envelope::encode(&op).expect("a decoded operation encodes");
        assert_eq!(envelope::decode(&again).expect("and decodes"), op);
    }
    if let Ok(q) = serde_json::from_slice::<QuarantinedObject>(rest) {
        let again = serde_json::to_vec(&q).expect("a quarantine record encodes");
        assert_eq!(
            serde_json::from_slice::<QuarantinedObject>(&again).expect("and decodes"),
            q
        );
    }
});
