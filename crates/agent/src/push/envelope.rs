//! The outbox record envelope: `magic ‖ version ‖ len ‖ crc32c ‖ payload`, payload = JSON of
//! [`OutboxOp`]. JSON, not bincode: [`cloudsync_api::ops::Operation`] is an internally tagged enum
//! (`"op": "upsert"`), which bincode cannot encode, and the outbox holds exactly the wire shape.

use super::outbox::OutboxOp;

/// The four magic bytes every outbox record starts with.
pub const MAGIC: [u8; 4] = *b"CSOB";
/// The envelope/payload format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the payload: magic (4) + version (2) + length (4) + CRC32C (4).
pub const HEADER_LEN: usize = 14;

/// Why a stored record was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than the header or than the length it announces, or longer.
    #[error("record has {actual} bytes, expected {expected}")]
    Length {
        /// Bytes expected from the header.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The magic bytes are wrong.
    #[error("bad magic {0:02x?}")]
    Magic([u8; 4]),
    /// A format version this build does not know.
    #[error("unknown record version {0}")]
    Version(u16),
    /// The payload's CRC32C does not match.
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// The stored CRC32C.
        stored: u32,
        /// The CRC32C of the payload as read.
        computed: u32,
    },
    /// The payload is not a valid JSON [`OutboxOp`].
    #[error("payload: {0}")]
    Payload(serde_json::Error),
}

/// Encodes one operation into an envelope.
pub fn encode(op: &OutboxOp) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    encode_into(&mut out, op)?;
    Ok(out)
}

/// Appends the envelope of `op` to `out` (the outbox log writes many into one record this way).
/// On an error `out` is left as it was.
pub fn encode_into(out: &mut Vec<u8>, op: &OutboxOp) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    if let Err(e) = serde_json::to_writer(&mut *out, op) {
        out.truncate(start);
        return Err(e);
    }
    let body = start + HEADER_LEN;
    // Payloads are far below 4 GiB (the API caps a request at 8 MiB).
    let len = u32::try_from(out.len() - body).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(out.get(body..).unwrap_or_default());
    if let Some(header) = out.get_mut(start + 6..body) {
        header[..4].copy_from_slice(&len.to_be_bytes());
        header[4..].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}

/// Decodes an envelope, checking magic, version, length and checksum.
pub fn decode(bytes: &[u8]) -> Result<OutboxOp, EnvelopeError> {
    let header = bytes.get(..HEADER_LEN).ok_or(EnvelopeError::Length {
        expected: HEADER_LEN,
        actual: bytes.len(),
    })?;
    let field = |range: std::ops::Range<usize>| header.get(range).unwrap_or_default();
    let magic: [u8; 4] = field(0..4).try_into().unwrap_or_default();
    if magic != MAGIC {
        return Err(EnvelopeError::Magic(magic));
    }
    let version = u16::from_be_bytes(field(4..6).try_into().unwrap_or_default());
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let len = u32::from_be_bytes(field(6..10).try_into().unwrap_or_default()) as usize;
    let stored = u32::from_be_bytes(field(10..14).try_into().unwrap_or_default());
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(EnvelopeError::Length {
            expected: HEADER_LEN + len,
            actual: bytes.len(),
        });
    }
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(EnvelopeError::Checksum { stored, computed });
    }
    serde_json::from_slice(payload).map_err(EnvelopeError::Payload)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use cloudsync_api::ops::Operation;

    fn sample() -> OutboxOp {
        OutboxOp {
            configuration_id: Uuid::nil(),
            operation: Operation::AddMember {
                group_anchor: "g".into(),
                member_anchor: "m".into(),
            },
            origin_seq: 7,
            reason: None,
        }
    }

    #[test]
    fn golden_bytes() {
        // Built by hand from the documented layout; the CRC32C is the published Castagnoli
        // check value for "123456789" (0xE3069283) applied to a fixed payload below.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let bytes = encode(&sample()).unwrap();
        let payload = br#"{"configurationId":"00000000-0000-0000-0000-000000000000","operation":{"op":"addMember","groupAnchor":"g","memberAnchor":"m"},"originSeq":7}"#;
        let mut expected = b"CSOB\x00\x01".to_vec();
        expected.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        expected.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        expected.extend_from_slice(payload);
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_header_fault_is_refused() {
        let good = encode(&sample()).unwrap();
        assert!(matches!(
            decode(&good[..5]),
            Err(EnvelopeError::Length { .. })
        ));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(decode(&bad), Err(EnvelopeError::Magic(_))));
        let mut bad = good.clone();
        bad[5] = 9;
        assert!(matches!(decode(&bad), Err(EnvelopeError::Version(9))));
        let mut bad = good.clone();
        bad.push(b' ');
        assert!(matches!(decode(&bad), Err(EnvelopeError::Length { .. })));
        let mut bad = good.clone();
        let n = bad.len() - 3;
        bad[n] ^= 1;
        assert!(matches!(decode(&bad), Err(EnvelopeError::Checksum { .. })));
    }
}
