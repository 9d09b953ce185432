//! The Active Directory controls this source sends and the DirSync response it decodes.
//!
//! Wire formats (MS-ADTS 3.1.1.3.4.1):
//! ```text
//! DirSyncRequestValue  ::= SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }
//! DirSyncResponseValue ::= SEQUENCE { moreResults INTEGER, unused INTEGER, cookie OCTET STRING }
//! ```
//! The flags are a 32-bit mask sent as a signed INTEGER, so `INCREMENTAL_VALUES` (0x80000000) is the
//! four octets `80 00 00 00`. The notification (1.2.840.113556.1.4.528) and Show Deleted
//! (1.2.840.113556.1.4.417) controls carry no value.

use ldap3::controls::RawControl;

use super::ber::{self, BerError, Reader, TAG_BOOLEAN, TAG_INTEGER, TAG_SEQUENCE};

/// OID of the DirSync control.
pub const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
/// OID of the change-notification control.
pub const NOTIFICATION_OID: &str = "1.2.840.113556.1.4.528";
/// OID of the Show Deleted control.
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";

/// `LDAP_DIRSYNC_OBJECT_SECURITY`: return only what the caller may read (no replication right needed).
pub const FLAG_OBJECT_SECURITY: u32 = 0x0000_0001;
/// `LDAP_DIRSYNC_ANCESTORS_FIRST_ORDER`: parents before children.
pub const FLAG_ANCESTORS_FIRST_ORDER: u32 = 0x0000_0800;
/// `LDAP_DIRSYNC_PUBLIC_DATA_ONLY`: omit secret attributes.
pub const FLAG_PUBLIC_DATA_ONLY: u32 = 0x0000_2000;
/// `LDAP_DIRSYNC_INCREMENTAL_VALUES`: linked values as `;range=1-1` (added) and `;range=0-0` (removed).
pub const FLAG_INCREMENTAL_VALUES: u32 = 0x8000_0000;

/// The DirSync request this source sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSyncRequest {
    /// The `FLAG_*` bits.
    pub flags: u32,
    /// The reply size hint in bytes (Samba ignores it).
    pub max_bytes: i32,
    /// The opaque cookie of the last pass; empty for a full read.
    pub cookie: Vec<u8>,
}

impl DirSyncRequest {
    /// Encodes the control value.
    pub fn encode(&self) -> Vec<u8> {
        let mut content = Vec::with_capacity(self.cookie.len() + 16);
        // The mask is a 32-bit quantity carried as a signed INTEGER.
        ber::write_integer(&mut content, i64::from(self.flags as i32));
        ber::write_integer(&mut content, i64::from(self.max_bytes));
        ber::write_tlv(&mut content, ber::TAG_OCTET_STRING, &self.cookie);
        let mut out = Vec::with_capacity(content.len() + 6);
        ber::write_tlv(&mut out, TAG_SEQUENCE, &content);
        out
    }

    /// The control, critical: a server that ignores DirSync must fail the search, not return a plain one.
    pub fn to_control(&self) -> RawControl {
        RawControl {
            ctype: DIRSYNC_OID.to_string(),
            crit: true,
            val: Some(self.encode()),
        }
    }
}

/// The decoded DirSync response control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSyncResponse {
    /// The server has more changes: call again at once with the new cookie.
    pub more_results: bool,
    /// The cookie to store with this page's events.
    pub cookie: Vec<u8>,
}

impl DirSyncResponse {
    /// Decodes a response control value; every malformed input is an error.
    pub fn decode(value: &[u8]) -> Result<DirSyncResponse, BerError> {
        let mut outer = Reader::new(value);
        let mut seq = outer.sequence()?;
        outer.finish()?;
        // Some servers encode moreResults as BOOLEAN; accept both.
        let more = seq.read()?;
        let more_results = match more.tag {
            TAG_INTEGER => ber::decode_integer(more.value)? != 0,
            TAG_BOOLEAN => ber::decode_boolean(more.value)?,
            found => {
                return Err(BerError::UnexpectedTag {
                    expected: TAG_INTEGER,
                    found,
                });
            }
        };
        let _unused = seq.integer()?;
        let cookie = seq.octets()?.to_vec();
        seq.finish()?;
        Ok(DirSyncResponse {
            more_results,
            cookie,
        })
    }
}

/// The change-notification control (critical, no value).
pub fn notification() -> RawControl {
    RawControl {
        ctype: NOTIFICATION_OID.to_string(),
        crit: true,
        val: None,
    }
}

/// The Show Deleted control (critical, no value).
pub fn show_deleted() -> RawControl {
    RawControl {
        ctype: SHOW_DELETED_OID.to_string(),
        crit: true,
        val: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_the_bytes_measured_against_samba() {
        // crates.md §3: flags OBJECT_SECURITY|ANCESTORS_FIRST_ORDER|INCREMENTAL_VALUES, maxBytes 1 MiB,
        // empty cookie -> 300d 0204 80000801 0203 100000 0400.
        let req = DirSyncRequest {
            flags: FLAG_OBJECT_SECURITY | FLAG_ANCESTORS_FIRST_ORDER | FLAG_INCREMENTAL_VALUES,
            max_bytes: 1 << 20,
            cookie: Vec::new(),
        };
        assert_eq!(
            hex::encode(req.encode()),
            "300d020480000801020310000004 00".replace(' ', "")
        );
    }

    #[test]
    fn response_decodes_integer_and_boolean_forms() {
        // SEQUENCE { INTEGER 1, INTEGER 0, OCTET STRING "MSDS" }
        let value = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x04, b'M', b'S', b'D', b'S',
        ];
        let resp = DirSyncResponse::decode(&value).unwrap();
        assert!(resp.more_results);
        assert_eq!(resp.cookie, b"MSDS");
        let mut boolean = value;
        boolean[2] = 0x01;
        boolean[4] = 0x00;
        assert!(!DirSyncResponse::decode(&boolean).unwrap().more_results);
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert!(DirSyncResponse::decode(&[]).is_err());
        assert!(DirSyncResponse::decode(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        // Cookie length beyond the input.
        assert!(
            DirSyncResponse::decode(&[0x30, 0x08, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x09])
                .is_err()
        );
        // Trailing bytes after the sequence.
        assert!(
            DirSyncResponse::decode(&[
                0x30, 0x08, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00, 0xff
            ])
            .is_err()
        );
    }
}
