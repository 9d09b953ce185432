//! Format v1, frozen: the key layout, the record envelope and the payload types exactly as v1 writes them.
//!
//! Nothing here may change once released: a later step (v1 -> v2) reads v1 records through these
//! definitions after the live types in the `cloudsync` crate have moved on. The golden fixture under
//! `tests/fixtures/journal-v1/` pins the bytes; this crate's tests decode it with these types.

pub mod envelope;
pub mod types;

/// The sled tree that holds all journal data (events, checkpoints, cursors, the sequence high-water mark).
pub const JOURNAL_TREE: &str = "journal";

/// Key prefix of event records: `b'e'` + sequence number, u64 big-endian (so sled's order is seq order).
pub const EVENT_PREFIX: u8 = b'e';
/// Key prefix of source checkpoints: `b'c'` + source name + `0x00` + domain.
pub const CHECKPOINT_PREFIX: u8 = b'c';
/// Key prefix of consumer cursors: `b'k'` + cursor name.
pub const CURSOR_PREFIX: u8 = b'k';
/// Key of the sequence high-water mark (the last sequence number ever assigned).
pub const HIGH_WATER_KEY: &[u8] = b"s";

/// The key of the event with sequence number `seq`.
pub fn event_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = EVENT_PREFIX;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}
