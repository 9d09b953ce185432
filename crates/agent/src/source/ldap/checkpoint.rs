//! The source checkpoints stored in the journal (format in the [module doc](super)).

use super::error::LdapSourceError;

const VERSION: u8 = 1;
const FLAG_FULL_READ: u8 = 0x01;

/// A DirSync checkpoint: the opaque cookie and whether a full read is still under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSyncCheckpoint {
    /// The server's cookie, stored verbatim.
    pub cookie: Vec<u8>,
    /// True between the first and the last page of a full read.
    pub full_read_in_progress: bool,
}

/// A uSNChanged-poll checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsnCheckpoint {
    /// Every change up to and including this USN has been read.
    pub highest_usn: u64,
    /// True while a full read is under way.
    pub full_read_in_progress: bool,
}

fn header(full: bool) -> [u8; 2] {
    [VERSION, if full { FLAG_FULL_READ } else { 0 }]
}

fn split(data: &[u8]) -> Result<(bool, &[u8]), LdapSourceError> {
    match data {
        [VERSION, flags, rest @ ..] => Ok((flags & FLAG_FULL_READ != 0, rest)),
        [v, ..] => Err(LdapSourceError::Protocol(format!(
            "unknown checkpoint version {v}"
        ))),
        [] => Err(LdapSourceError::Protocol("empty checkpoint".into())),
    }
}

impl DirSyncCheckpoint {
    /// Encodes for the journal.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(self.full_read_in_progress).to_vec();
        out.extend_from_slice(&self.cookie);
        out
    }

    /// Decodes what [`DirSyncCheckpoint::encode`] wrote.
    pub fn decode(data: &[u8]) -> Result<Self, LdapSourceError> {
        let (full, rest) = split(data)?;
        Ok(DirSyncCheckpoint {
            cookie: rest.to_vec(),
            full_read_in_progress: full,
        })
    }
}

impl UsnCheckpoint {
    /// Encodes for the journal.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(self.full_read_in_progress).to_vec();
        out.extend_from_slice(&self.highest_usn.to_be_bytes());
        out
    }

    /// Decodes what [`UsnCheckpoint::encode`] wrote.
    pub fn decode(data: &[u8]) -> Result<Self, LdapSourceError> {
        let (full, rest) = split(data)?;
        let bytes: [u8; 8] = rest
            .try_into()
            .map_err(|_| LdapSourceError::Protocol("USN checkpoint is not 8 bytes".into()))?;
        Ok(UsnCheckpoint {
            highest_usn: u64::from_be_bytes(bytes),
            full_read_in_progress: full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_as_documented() {
        let d = DirSyncCheckpoint {
            cookie: b"MSDS\x03".to_vec(),
            full_read_in_progress: true,
        };
        assert_eq!(d.encode(), b"\x01\x01MSDS\x03");
        assert_eq!(DirSyncCheckpoint::decode(&d.encode()).unwrap(), d);
        let u = UsnCheckpoint {
            highest_usn: 0x0102,
            full_read_in_progress: false,
        };
        assert_eq!(u.encode(), [1, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(UsnCheckpoint::decode(&u.encode()).unwrap(), u);
        assert!(DirSyncCheckpoint::decode(&[2, 0]).is_err());
        assert!(UsnCheckpoint::decode(&[1, 0, 1]).is_err());
    }
}
