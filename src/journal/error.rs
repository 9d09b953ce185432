//! The journal's error type.

use std::path::PathBuf;

/// Everything that can go wrong opening, writing or reading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The storage engine (sled) failed: I/O error, lock held by another process, engine-level corruption.
    #[error("journal storage error: {0}")]
    Storage(#[from] sled::Error),
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
    Encode(String),
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
    /// The blocking task behind an async call panicked or was cancelled.
    #[error("the journal's blocking task failed: {0}")]
    Task(String),
}

impl JournalError {
    /// True when the same call may succeed later on this handle without operator action.
    ///
    /// Storage errors during reads are transient at best; every write failure poisons the handle, so
    /// [`JournalError::Poisoned`] is not retriable here (the caller must reopen).
    pub fn is_retriable(&self) -> bool {
        matches!(self, JournalError::Task(_) | JournalError::Locked { .. })
    }

    /// True when the journal's data is damaged (a record, an entry or the sequence), as opposed to the
    /// environment (I/O, locks) or the caller.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            JournalError::Corrupt { .. }
                | JournalError::CorruptEntry { .. }
                | JournalError::Gap { .. }
                | JournalError::Storage(sled::Error::Corruption { .. })
        )
    }
}
