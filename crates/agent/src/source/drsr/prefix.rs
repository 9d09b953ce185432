//! The schema prefix table: maps ATTRTYP values (`prefix index << 16 | suffix`) to OIDs (MS-DRSR 5.16.4).
//!
//! We only need to recognise a few attributes by OID, so instead of building OIDs for every attid we
//! find the index of the server's entry for the `1.2.840.113556.1.4` prefix and compute the attids of
//! the attributes we want under it.

use super::error::DrsrError;

/// BER encoding of `1.2.840.113556.1.4`, the prefix of most AD attributes.
pub const AD_ATTRIBUTE_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x01, 0x04];
/// Last arc of unicodePwd (1.2.840.113556.1.4.90).
pub const UNICODE_PWD: u16 = 90;
/// Last arc of objectSid (1.2.840.113556.1.4.146).
pub const OBJECT_SID: u16 = 146;
/// Last arc of userAccountControl (1.2.840.113556.1.4.8).
pub const USER_ACCOUNT_CONTROL: u16 = 8;

/// One prefix table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixEntry {
    /// The index (upper 16 bits of an attid).
    pub index: u32,
    /// The BER-encoded OID prefix.
    pub prefix: Vec<u8>,
}

/// A server's prefix table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixTable {
    /// The entries in wire order.
    pub entries: Vec<PrefixEntry>,
}

impl PrefixTable {
    /// The attid for `1.2.840.113556.1.4.<arc>` under this table (arcs below 16384).
    pub fn ad_attid(&self, arc: u16) -> Result<u32, DrsrError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.prefix == AD_ATTRIBUTE_PREFIX)
            .ok_or_else(|| {
                DrsrError::malformed("prefix table", "no entry for 1.2.840.113556.1.4")
            })?;
        Ok((entry.index << 16) | u32::from(arc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_unicode_pwd_under_the_usual_index() {
        // Windows and Samba map 1.2.840.113556.1.4 to index 9: unicodePwd = 0x9005a (MS-DRSR 5.16.4,
        // the attid Samba logs for unicodePwd).
        let t = PrefixTable {
            entries: vec![
                PrefixEntry {
                    index: 0,
                    prefix: vec![0x55, 0x04],
                },
                PrefixEntry {
                    index: 9,
                    prefix: AD_ATTRIBUTE_PREFIX.to_vec(),
                },
            ],
        };
        assert_eq!(t.ad_attid(UNICODE_PWD).unwrap(), 0x9005a);
        assert_eq!(t.ad_attid(OBJECT_SID).unwrap(), 0x90092);
        assert!(PrefixTable::default().ad_attid(UNICODE_PWD).is_err());
    }
}
