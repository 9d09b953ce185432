//! The source anchor: `ms-DS-ConsistencyGuid` when present (16 bytes), else `objectGUID`, as base64 of the
//! raw bytes — the value Microsoft's sync writes to `onPremisesImmutableId`. Projection computes it once,
//! when the object is first seen, and keeps it for the object's life: renames, moves and UPN changes update
//! the same cloud object, and a consistency GUID written later does not re-key it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use serde::{Deserialize, Serialize};

use crate::event::Guid;

/// The 16 bytes behind an anchor, kept inline (no heap) and rendered as base64 on use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorBytes(pub [u8; 16]);

impl AnchorBytes {
    /// The base64 text (what [`std::fmt::Display`] prints), without the formatting machinery.
    pub fn text(&self) -> String {
        let mut buf = [0u8; 24];
        match STANDARD.encode_slice(self.0, &mut buf) {
            Ok(n) => std::str::from_utf8(&buf[..n])
                .map(str::to_string)
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

impl std::fmt::Display for AnchorBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 16 bytes are 24 base64 characters: render on the stack, no allocation.
        let mut buf = [0u8; 24];
        let n = STANDARD
            .encode_slice(self.0, &mut buf)
            .map_err(|_| std::fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| std::fmt::Error)?)
    }
}

/// The anchor bytes for `guid` and, if set, the raw `ms-DS-ConsistencyGuid` (used only when 16 bytes).
pub fn anchor_bytes(guid: Guid, consistency_guid: Option<&[u8]>) -> AnchorBytes {
    match consistency_guid.and_then(|v| <[u8; 16]>::try_from(v).ok()) {
        Some(bytes) => AnchorBytes(bytes),
        None => AnchorBytes(guid.0),
    }
}

/// The anchor for an object with `guid` and, if set, the raw `ms-DS-ConsistencyGuid` value.
/// A consistency GUID that is not exactly 16 bytes is ignored (AD would not accept it either).
pub fn source_anchor(guid: Guid, consistency_guid: Option<&[u8]>) -> String {
    anchor_bytes(guid, consistency_guid).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_is_base64_of_the_stored_bytes() {
        // GUID 00112233-4455-6677-8899-aabbccddeeff is stored as 33 22 11 00 55 44 77 66 88 99 …;
        // expected value from Python: base64.b64encode(uuid.UUID("00112233-…").bytes_le).
        let g = Guid::parse("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        assert_eq!(source_anchor(g, None), "MyIRAFVEd2aImaq7zN3u/w==");
        assert_eq!(anchor_bytes(g, None).text(), "MyIRAFVEd2aImaq7zN3u/w==");
        let cg = [0u8; 16];
        assert_eq!(source_anchor(g, Some(&cg)), "AAAAAAAAAAAAAAAAAAAAAA==");
        assert_eq!(
            source_anchor(g, Some(&[1, 2, 3])),
            "MyIRAFVEd2aImaq7zN3u/w=="
        );
    }
}
