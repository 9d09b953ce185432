//! The record envelope and the key layout (see the module doc of [`crate::journal`] for the format).

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Deserialize, Serialize};

use super::JournalError;
use crate::event::{Event, SourceKind};

/// The envelope's magic bytes.
pub const MAGIC: [u8; 4] = *b"CSJR";
/// The envelope header length.
pub const HEADER_LEN: usize = 16;
/// The largest payload one record may have (16 MiB).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// The bincode limit when a payload is decoded, so a corrupt length prefix inside one cannot make
/// the decoder allocate without bound. bincode counts the memory a decode *claims*, not the bytes
/// it reads: 8 for every varint (most are one byte on disk), 24 for each element of a container
/// while it is decoded. So a payload under [`MAX_PAYLOAD`] can claim several times its size — a
/// group of 250,000 members with 63-byte DNs is a 16.0 MB event that claims 17.8 MB — and a decode
/// limit equal to the write limit refused to read back records the journal had accepted (found by
/// `cloudsync bench --objects 300000`). 32 bytes claimed per byte read bounds every record the
/// writer accepts.
pub const DECODE_LIMIT: usize = 32 * MAX_PAYLOAD;
/// The one bincode configuration of the journal: `standard()` (varint, little-endian) with a size
/// limit. Encoding is checked against [`MAX_PAYLOAD`] by length; decoding uses [`BINCODE_DECODE`].
pub const BINCODE: Configuration<LittleEndian, Varint, Limit<MAX_PAYLOAD>> =
    bincode::config::standard().with_limit::<MAX_PAYLOAD>();
/// [`BINCODE`] with the decode limit [`DECODE_LIMIT`].
pub const BINCODE_DECODE: Configuration<LittleEndian, Varint, Limit<DECODE_LIMIT>> =
    bincode::config::standard().with_limit::<DECODE_LIMIT>();

/// What kind of value an envelope holds (byte 6 of the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// An event record.
    Event = 1,
    /// A source checkpoint.
    Checkpoint = 2,
    /// A consumer cursor.
    Cursor = 3,
    /// The sequence high-water mark.
    HighWater = 4,
}

/// Key prefix of event records (`'e'` + seq as u64 big-endian).
pub const EVENT_PREFIX: u8 = b'e';
/// Key prefix of checkpoints (`'c'` + source name + 0x00 + domain).
pub const CHECKPOINT_PREFIX: u8 = b'c';
/// Key prefix of cursors (`'k'` + name).
pub const CURSOR_PREFIX: u8 = b'k';
/// Key of the sequence high-water mark.
pub const HIGH_WATER_KEY: &[u8] = b"s";

/// The key of event `seq`.
pub fn event_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = EVENT_PREFIX;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number in an event key, if it is one.
pub fn seq_of_key(key: &[u8]) -> Option<u64> {
    match key {
        [EVENT_PREFIX, rest @ ..] => <[u8; 8]>::try_from(rest).ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// The key of the checkpoint of `domain` from `source`.
pub fn checkpoint_key(domain: &str, source: SourceKind) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + source.as_str().len() + domain.len());
    key.push(CHECKPOINT_PREFIX);
    key.extend_from_slice(source.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(domain.as_bytes());
    key
}

/// The key of cursor `name`.
pub fn cursor_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(CURSOR_PREFIX);
    key.extend_from_slice(name.as_bytes());
    key
}

/// A printable form of any key, for error messages.
pub fn describe_key(key: &[u8]) -> String {
    if let Some(seq) = seq_of_key(key) {
        return format!("event seq {seq}");
    }
    let text: String = key
        .iter()
        .map(|&b| if b == 0 { '/' } else { char::from(b) })
        .collect();
    format!("{text:?}")
}

/// Payload of an event record as written.
#[derive(Serialize)]
pub(super) struct StoredEventRef<'a> {
    pub appended_at_unix_ms: i64,
    pub event: &'a Event,
}

/// Payload of an event record as read (same shape as [`StoredEventRef`]).
#[derive(Deserialize)]
pub(super) struct StoredEvent {
    pub appended_at_unix_ms: i64,
    pub event: Event,
}

/// Payload of a checkpoint: the checkpoint plus the last seq assigned when it was written.
/// `pub` (hidden) only so that the fuzz target `journal_record` can call [`open`] with it as the
/// journal does; the journal's own API returns [`super::Checkpoint`].
#[doc(hidden)]
#[derive(Serialize, Deserialize)]
pub struct StoredCheckpoint {
    pub domain: String,
    pub source: SourceKind,
    pub data: Vec<u8>,
    /// The journal's last sequence number when this checkpoint was written (0: none). If recovery drops a
    /// corrupt tail record at or below this, the checkpoint no longer covers durable events and is dropped.
    pub covers_seq: u64,
}

/// Encodes `value` with [`BINCODE`] and wraps it in an envelope.
pub fn seal<T: Serialize>(record_type: RecordType, value: &T) -> Result<Vec<u8>, JournalError> {
    let mut out = Vec::with_capacity(HEADER_LEN + 256);
    seal_into(&mut out, record_type, value)?;
    Ok(out)
}

/// Appends the envelope of `value` to `out` and returns where it lies. Batches encode into one buffer so
/// that each record costs one allocation (sled's copy) rather than two.
pub fn seal_into<T: Serialize>(
    out: &mut Vec<u8>,
    record_type: RecordType,
    value: &T,
) -> Result<std::ops::Range<usize>, JournalError> {
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    let encoded = bincode::serde::encode_into_std_write(value, out, BINCODE);
    let len = out.len() - start - HEADER_LEN;
    let failure = match encoded {
        Err(e) => Some(JournalError::Encode(e)),
        Ok(_) if len > MAX_PAYLOAD => Some(JournalError::TooLarge {
            size: len,
            limit: MAX_PAYLOAD,
        }),
        Ok(_) => None,
    };
    if let Some(err) = failure {
        out.truncate(start);
        return Err(err);
    }
    let record = &mut out[start..];
    record[0..4].copy_from_slice(&MAGIC);
    record[4..6].copy_from_slice(&(super::FORMAT_VERSION as u16).to_le_bytes());
    record[6] = record_type as u8;
    record[7] = 0;
    record[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&record[0..12]), &record[HEADER_LEN..]);
    record[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(start..out.len())
}

/// Checks an envelope (magic, version, type, length, CRC32C) and decodes its payload.
/// The error is a reason for [`JournalError::Corrupt`]/[`JournalError::CorruptEntry`].
pub fn open<T: serde::de::DeserializeOwned>(
    expected: RecordType,
    bytes: &[u8],
) -> Result<T, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    if bytes[0..4] != MAGIC {
        return Err(format!("bad magic {:02x?}", &bytes[0..4]));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if u32::from(version) != super::FORMAT_VERSION {
        return Err(format!(
            "envelope version {version}, this build reads {}",
            super::FORMAT_VERSION
        ));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let payload = &bytes[HEADER_LEN..];
    if len != payload.len() {
        return Err(format!(
            "length field {len} but {} payload bytes",
            payload.len()
        ));
    }
    let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..12]), payload);
    if stored != computed {
        return Err(format!(
            "CRC32C mismatch: stored {stored:08x}, computed {computed:08x}"
        ));
    }
    if bytes[6] != expected as u8 {
        return Err(format!(
            "record type {}, expected {}",
            bytes[6], expected as u8
        ));
    }
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(payload, BINCODE_DECODE)
        .map_err(|e| format!("payload does not decode: {e}"))?;
    if used != payload.len() {
        return Err(format!("{} trailing payload bytes", payload.len() - used));
    }
    Ok(value)
}

/// The key and envelope of event `seq` as the journal stores it (for fixtures, tooling and fuzzing).
pub fn encode_event(
    seq: u64,
    appended_at_unix_ms: i64,
    event: &Event,
) -> Result<(Vec<u8>, Vec<u8>), JournalError> {
    let value = seal(
        RecordType::Event,
        &StoredEventRef {
            appended_at_unix_ms,
            event,
        },
    )?;
    Ok((event_key(seq).to_vec(), value))
}

/// Checks and decodes a stored event envelope; the error names `seq`.
pub fn decode_event(seq: u64, bytes: &[u8]) -> Result<super::Record, JournalError> {
    let stored = open::<StoredEvent>(RecordType::Event, bytes)
        .map_err(|reason| JournalError::Corrupt { seq, reason })?;
    Ok(super::Record {
        seq,
        appended_at_unix_ms: stored.appended_at_unix_ms,
        event: stored.event,
    })
}

/// The key and envelope of a checkpoint written when the last assigned seq was `covers_seq`.
pub fn encode_checkpoint(
    checkpoint: &super::Checkpoint,
    covers_seq: u64,
) -> Result<(Vec<u8>, Vec<u8>), JournalError> {
    let stored = StoredCheckpoint {
        domain: checkpoint.domain.clone(),
        source: checkpoint.source,
        data: checkpoint.data.clone(),
        covers_seq,
    };
    Ok((
        checkpoint_key(&checkpoint.domain, checkpoint.source),
        seal(RecordType::Checkpoint, &stored)?,
    ))
}

/// The key and envelope of cursor `name` at `seq`.
pub fn encode_cursor(name: &str, seq: u64) -> Result<(Vec<u8>, Vec<u8>), JournalError> {
    Ok((cursor_key(name), seal(RecordType::Cursor, &seq)?))
}

/// The key and envelope of the high-water mark `seq`.
pub fn encode_high_water(seq: u64) -> Result<(Vec<u8>, Vec<u8>), JournalError> {
    Ok((HIGH_WATER_KEY.to_vec(), seal(RecordType::HighWater, &seq)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event::ResyncCompleted {
            domain: "corp.example.test".into(),
            source: SourceKind::LdapDirSync,
        }
    }

    #[test]
    fn header_fields_are_where_the_format_says() {
        let bytes = seal(
            RecordType::Event,
            &StoredEventRef {
                appended_at_unix_ms: 1,
                event: &sample(),
            },
        )
        .unwrap();
        assert_eq!(&bytes[0..4], b"CSJR");
        assert_eq!(&bytes[4..6], &[1, 0]);
        assert_eq!(bytes[6], 1);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 16);
        // CRC32C computed here with the crate's one-shot function over header-without-crc ++ payload.
        let mut covered = bytes[0..12].to_vec();
        covered.extend_from_slice(&bytes[16..]);
        assert_eq!(
            u32::from_le_bytes(bytes[12..16].try_into().unwrap()),
            crc32c::crc32c(&covered)
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = seal(
            RecordType::Event,
            &StoredEventRef {
                appended_at_unix_ms: 42,
                event: &sample(),
            },
        )
        .unwrap();
        assert!(open::<StoredEvent>(RecordType::Event, &bytes).is_ok());
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open::<StoredEvent>(RecordType::Event, &bad).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_and_wrong_type_are_rejected() {
        let bytes = seal(RecordType::HighWater, &7u64).unwrap();
        assert_eq!(open::<u64>(RecordType::HighWater, &bytes), Ok(7));
        for cut in 0..bytes.len() {
            assert!(open::<u64>(RecordType::HighWater, &bytes[..cut]).is_err());
        }
        let err = open::<u64>(RecordType::Cursor, &bytes).unwrap_err();
        assert!(err.contains("record type 4"), "{err}");
    }

    #[test]
    fn an_encode_failure_keeps_bincode_s_error_as_its_source() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("refused"))
            }
        }
        let err = seal(RecordType::HighWater, &Refuses).unwrap_err();
        assert!(matches!(err, JournalError::Encode(_)), "{err:?}");
        let source = std::error::Error::source(&err).expect("the bincode error is kept");
        assert!(source.to_string().contains("refused"), "{source}");
        assert!(
            err.to_string()
                .starts_with("could not encode a journal record: "),
            "{err}"
        );
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(event_key(255) < event_key(256));
        assert!(event_key(u64::MAX - 1) < event_key(u64::MAX));
        assert_eq!(seq_of_key(&event_key(0x0102_0304)), Some(0x0102_0304));
        assert_eq!(seq_of_key(b"s"), None);
        assert_eq!(describe_key(&event_key(9)), "event seq 9");
    }

    proptest::proptest! {
        /// Stored bytes are outside input: any bytes, even with a valid envelope around a random payload
        /// (correct CRC, so bincode itself sees garbage), must give an error, never a panic or a huge
        /// allocation.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let _ = decode_event(1, &bytes);
            let mut framed = vec![0u8; HEADER_LEN];
            framed[0..4].copy_from_slice(&MAGIC);
            framed[4..6].copy_from_slice(&1u16.to_le_bytes());
            framed[6] = RecordType::Event as u8;
            framed[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&framed[0..12]), &payload);
            framed[12..16].copy_from_slice(&crc.to_le_bytes());
            framed.extend_from_slice(&payload);
            let _ = decode_event(1, &framed);
            let _ = open::<StoredCheckpoint>(RecordType::Checkpoint, &framed);
        }
    }
}
