//! Fuzzes the journal's record decoding (`journal::codec`): the envelope checks (magic, version,
//! type, length, CRC32C) and the bincode payload behind them, for every record type the journal
//! reads back (event, checkpoint, cursor, high-water mark).
//!
//! Input: byte 0 picks the mode. Even: the rest is a stored value as is (the envelope checks see
//! garbage). Odd: the rest is a *payload*, framed here with a correct header and CRC of the record
//! type `byte 0 / 2 % 4 + 1`, so bincode itself sees the hostile bytes — a CRC guard would otherwise
//! stop almost every input. Decoding must fail with a typed error, never panic or allocate without
//! bound; a decoded event encodes and decodes back to itself.
#![no_main]

use cloudsync_agent::journal::FORMAT_VERSION;
use cloudsync_agent::journal::codec::{
    self, HEADER_LEN, MAGIC, RecordType, StoredCheckpoint, decode_event, encode_event,
};
use libfuzzer_sys::fuzz_target;

fn frame(record_type: RecordType, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&(FORMAT_VERSION as u16).to_le_bytes());
    out[6] = record_type as u8;
    out[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[0..12]), payload);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode_all(bytes: &[u8]) {
    if let Ok(record) = decode_event(7, bytes) {
        assert_eq!(record.seq, 7);
        let (_, again) = encode_event(7, record.appended_at_unix_ms, &record.event)
            .expect("a decoded event encodes");
        let back = decode_event(7, &again).expect("an encoded event decodes");
        assert_eq!(back.event, record.event);
        assert_eq!(back.appended_at_unix_ms, record.appended_at_unix_ms);
    }
    let _ = codec::open::<StoredCheckpoint>(RecordType::Checkpoint, bytes);
    let _ = codec::open::<u64>(RecordType::Cursor, bytes);
    let _ = codec::open::<u64>(RecordType::HighWater, bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        decode_all(rest);
    } else {
        let record_type = match (mode / 2) % 4 {
            0 => RecordType::Event,
            1 => RecordType::Checkpoint,
            2 => RecordType::Cursor,
            _ => RecordType::HighWater,
        };
        let framed = frame(record_type, rest);
        decode_all(&framed);
    }
});
