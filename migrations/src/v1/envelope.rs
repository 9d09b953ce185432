//! The v1 record envelope, frozen.
//!
//! ```text
//! offset size  field
//!  0      4    magic            b"CSJR"
//!  4      2    format version   u16 little-endian, 1
//!  6      1    record type      1 event, 2 checkpoint, 3 cursor, 4 high-water mark
//!  7      1    reserved         0
//!  8      4    payload length   u32 little-endian
//! 12      4    CRC32C           u32 little-endian, over bytes 0..12 followed by the payload
//! 16      len  payload          bincode 2 `config::standard()`
//! ```

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

/// The envelope's magic bytes.
pub const MAGIC: [u8; 4] = *b"CSJR";
/// The envelope version v1 writes.
pub const VERSION: u16 = 1;
/// The header length in bytes.
pub const HEADER_LEN: usize = 16;
/// The largest payload v1 accepts (16 MiB): bounds what a corrupt length can make a decoder allocate.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// The bincode configuration of every v1 payload.
pub const BINCODE: Configuration<LittleEndian, Varint, Limit<MAX_PAYLOAD>> =
    bincode::config::standard().with_limit::<MAX_PAYLOAD>();

/// Record type byte of an event record.
pub const TYPE_EVENT: u8 = 1;
/// Record type byte of a source checkpoint.
pub const TYPE_CHECKPOINT: u8 = 2;
/// Record type byte of a consumer cursor.
pub const TYPE_CURSOR: u8 = 3;
/// Record type byte of the sequence high-water mark.
pub const TYPE_HIGH_WATER: u8 = 4;

/// Wraps `payload` in a v1 envelope of the given record type.
pub fn seal(record_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(record_type);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a v1 envelope and returns its record type and payload, or a reason it is invalid.
pub fn open(bytes: &[u8]) -> Result<(u8, &[u8]), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    if bytes[0..4] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(format!("envelope version {version}, expected {VERSION}"));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if len != bytes.len() - HEADER_LEN {
        return Err(format!(
            "length field {len} but {} payload bytes",
            bytes.len() - HEADER_LEN
        ));
    }
    let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let payload = &bytes[HEADER_LEN..];
    let actual = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..12]), payload);
    if stored != actual {
        return Err(format!(
            "CRC32C mismatch: stored {stored:08x}, computed {actual:08x}"
        ));
    }
    Ok((bytes[6], payload))
}
