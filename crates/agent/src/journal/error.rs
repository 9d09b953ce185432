//! The journal's error type.

use std::path::PathBuf;

/// Where sled found its own files damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A checksum failed reading sled's log: `file` is `db` or a `blobs/N` file; the offset
    /// is the log offset of the damaged item when sled knew it.
    Log {
        /// The file, relative to the journal directory.
        file: PathBuf,
        /// The log offset.
        offset: Option<u64>,
    },
    /// sled's `conf` (its storage parameters) did not parse; sled's own text misreads this as
    /// "a sled version earlier than 0.29".
    Conf {
        /// sled's message.
        detail: String,
    },
    /// sled panicked reading its files at open (it does so on some damaged logs).
    Panicked {
        /// The panic's message and location.
        message: String,
    },
}

impl Damage {
    /// Classifies a sled error: `Some` for damage to sled's own files, `None` for anything else.
    pub fn of(error: &sled::Error) -> Option<Damage> {
        match error {
            sled::Error::Corruption { at, .. } => Some(match at {
                Some(sled::DiskPtr::Blob(_, blob)) => Damage::Log {
                    file: PathBuf::from("blobs").join(blob.to_string()),
                    offset: None,
                },
                Some(ptr) => Damage::Log {
                    file: PathBuf::from("db"),
                    offset: Some(ptr.lid()),
                },
                None => Damage::Log {
                    file: PathBuf::from("db"),
                    offset: None,
                },
            }),
            // Only sled's complaints about its stored parameters; other `Unsupported` errors are
            // misuse, not damage.
            sled::Error::Unsupported(detail)
                if detail.contains("sled version") || detail.contains("config") =>
            {
                Some(Damage::Conf {
                    detail: detail.clone(),
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Log { file, offset } => {
                write!(
                    f,
                    "a checksum failed reading sled's file `{}`",
                    file.display()
                )?;
                match offset {
                    Some(o) => write!(f, " at log offset {o}")?,
                    None => write!(f, " (sled did not say at which offset)")?,
                }
                write!(
                    f,
                    ": the file was changed outside sled, or the disk lost or flipped data"
                )
            }
            Damage::Conf { detail } => write!(
                f,
                "sled's storage parameters file `conf` is damaged or not sled's (sled says: {detail})"
            ),
            Damage::Panicked { message } => write!(
                f,
                "sled failed reading its log file `db` while recovering it at open (sled panicked: {message}); a byte in it was changed outside sled, or the disk lost data"
            ),
        }
    }
}

/// The text that says what to do about a damaged journal (also in `docs/journal.md`).
pub const REBUILD_HINT: &str = "the journal can be rebuilt from AD: stop the agent and run `cloudsync journal rebuild --config <agent.toml>`, which moves the damaged journal aside and re-reads every domain in full (docs/journal.md, Rebuilding from AD)";

fn damaged_message(dir: Option<&std::path::Path>, damage: &Damage) -> String {
    match dir {
        Some(d) => format!(
            "the journal at {} is damaged: {damage}; {REBUILD_HINT}",
            d.display()
        ),
        None => format!("the journal is damaged: {damage}; {REBUILD_HINT}"),
    }
}

/// Everything that can go wrong opening, writing or reading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The storage engine (sled) failed: I/O error, lock held by another process. Damage to
    /// sled's own files is [`JournalError::Damaged`] instead (see the `From` impl).
    #[error("journal storage error: {0}")]
    Storage(sled::Error),
    /// sled's own files are damaged: the journal cannot be read; rebuild it from AD.
    #[error("{}", damaged_message(.dir.as_deref(), .damage))]
    Damaged {
        /// The journal directory, when known where the error arose.
        dir: Option<PathBuf>,
        /// What is damaged, and where.
        damage: Damage,
    },
    /// An earlier write or flush failed, so what is on disk is unknown; this handle refuses all writes.
    /// Reopen the journal (which recovers to the last durable state) to continue.
    #[error("the journal is poisoned by an earlier failed write or flush; reopen it to recover")]
    Poisoned,
    /// The event record with this sequence number failed its envelope or payload check.
    #[error("journal record seq {seq} is corrupt: {reason}")]
    Corrupt {
        /// The record's sequence number.
        seq: u64,
        /// What check failed.
        reason: String,
    },
    /// A non-event entry (checkpoint, cursor, high-water mark) failed its check.
    #[error("journal entry {key} is corrupt: {reason}")]
    CorruptEntry {
        /// The entry's key, printable.
        key: String,
        /// What check failed.
        reason: String,
    },
    /// Sequence numbers are not contiguous: a record in the middle is missing.
    #[error("journal sequence gap: expected seq {expected}, found seq {found}")]
    Gap {
        /// The next sequence number that should have followed.
        expected: u64,
        /// The one found instead.
        found: u64,
    },
    /// Another process (or a handle not yet fully closed) holds the journal's lock.
    #[error("the journal at {} is in use by another process (is a cloudsync agent running?)", dir.display())]
    Locked {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The directory does not exist (tooling never creates one).
    #[error("no journal at {}: the directory does not exist", dir.display())]
    NotFound {
        /// The directory given.
        dir: PathBuf,
    },
    /// The directory exists but holds no cloudsync journal.
    #[error("{} is not a cloudsync journal: {reason}", dir.display())]
    NotAJournal {
        /// The directory given.
        dir: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The stored format version is not one this build can use (newer: refused; older: needs migration).
    #[error(transparent)]
    Migration(#[from] cloudsync_migrations::MigrationError),
    /// An event, once encoded, is larger than one record may be.
    #[error("an encoded record of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit ([`crate::journal::MAX_PAYLOAD`]).
        limit: usize,
    },
    /// bincode refused to encode a value (not expected for the journal's own types).
    #[error("could not encode a journal record: {0}")]
    Encode(#[source] bincode::error::EncodeError),
    /// A cursor may only point at a durable record.
    #[error("cursor `{name}` cannot move to seq {seq}: the last durable record is {last}")]
    CursorBeyondEnd {
        /// The cursor's name.
        name: String,
        /// The requested position.
        seq: u64,
        /// The last durable sequence number (0 when the journal is empty).
        last: u64,
    },
    /// A cursor name must be 1..=64 printable ASCII characters.
    #[error("invalid cursor name {0:?}: use 1 to 64 printable ASCII characters")]
    InvalidCursorName(String),
    /// [`crate::journal::Journal::start_after`] on a journal that already holds events.
    #[error("the journal at {} already holds events; only an empty journal can start after a given sequence", dir.display())]
    NotEmpty {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The blocking task behind an async call panicked or was cancelled.
    #[error("the journal's blocking task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The journal's file system has less free space than the journal keeps in reserve
    /// ([`crate::journal::JournalOptions::min_free_bytes`]): nothing was written, the handle is
    /// healthy, and the same write succeeds once space is freed.
    #[error(
        "the disk holding the journal at {} has {} bytes free, less than the {} bytes the journal keeps in reserve: not writing until space is freed (nothing is lost: the sources retry from their last checkpoint)",
        dir.display(), available, reserve
    )]
    DiskFull {
        /// The journal directory.
        dir: PathBuf,
        /// Bytes available to the agent on its file system.
        available: u64,
        /// The reserve.
        reserve: u64,
    },
}

impl From<sled::Error> for JournalError {
    fn from(error: sled::Error) -> Self {
        match Damage::of(&error) {
            Some(damage) => JournalError::Damaged { dir: None, damage },
            None => JournalError::Storage(error),
        }
    }
}

impl JournalError {
    /// Names the journal directory in a [`JournalError::Damaged`] that does not name one yet.
    pub fn in_dir(self, journal_dir: &std::path::Path) -> Self {
        match self {
            JournalError::Damaged { dir: None, damage } => JournalError::Damaged {
                dir: Some(journal_dir.to_path_buf()),
                damage,
            },
            other => other,
        }
    }

    /// True when sled's own files are damaged and the journal must be rebuilt from AD.
    pub fn is_damaged(&self) -> bool {
        matches!(self, JournalError::Damaged { .. })
    }

    /// True when the same call may succeed later on this handle without operator action.
    ///
    /// Storage errors during reads are transient at best; every write failure poisons the handle, so
    /// [`JournalError::Poisoned`] is not retriable here (the caller must reopen).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            JournalError::Task(_) | JournalError::Locked { .. } | JournalError::DiskFull { .. }
        )
    }

    /// True when the journal's data is damaged (a record, an entry or the sequence), as opposed to the
    /// environment (I/O, locks) or the caller.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            JournalError::Corrupt { .. }
                | JournalError::CorruptEntry { .. }
                | JournalError::Gap { .. }
                | JournalError::Damaged { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_damage_is_classified_and_says_where_and_what_to_do() {
        let at = |ptr| sled::Error::Corruption { at: ptr, bt: () };
        let e = JournalError::from(at(Some(sled::DiskPtr::Inline(4096)))).in_dir("/j".as_ref());
        let text = e.to_string();
        assert!(e.is_damaged() && e.is_corruption(), "{e:?}");
        assert!(text.starts_with("the journal at /j is damaged: a checksum failed reading sled's file `db` at log offset 4096"), "{text}");
        assert!(
            text.contains("cloudsync journal rebuild --config"),
            "{text}"
        );
        assert!(
            JournalError::from(at(None))
                .to_string()
                .contains("sled did not say at which offset")
        );
        let conf = sled::Error::Unsupported(
            "failed to open database that may have been created using a sled version earlier than 0.29".into(),
        );
        assert!(matches!(Damage::of(&conf), Some(Damage::Conf { .. })));
        // Misuse is not damage; I/O is not damage.
        assert_eq!(
            Damage::of(&sled::Error::Unsupported(
                "cannot open the default tree".into()
            )),
            None
        );
        let io = sled::Error::Io(std::io::Error::other("disk full"));
        assert!(!JournalError::from(io).is_damaged());
    }

    #[tokio::test]
    async fn a_failed_blocking_task_keeps_tokio_s_error_as_its_source() {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let Err(join) = task.await else {
            panic!("an aborted task cannot finish")
        };
        let err = JournalError::Task(join);
        assert!(err.is_retriable());
        let source = std::error::Error::source(&err).expect("the join error is kept");
        assert!(source.to_string().contains("cancelled"), "{source}");
        assert_eq!(
            err.to_string(),
            format!("the journal's blocking task failed: {source}")
        );
    }
}
