//! Errors of the migration framework.

/// Why the stored format could not be brought to the version this build writes.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database was written by a newer cloudsync; downgrades are refused, never attempted.
    #[error(
        "the journal is format v{found}, newer than this build supports (v{supported}); \
         downgrades are refused: run a cloudsync build that supports v{found}, or move the journal \
         directory aside and let the agent rebuild it from Active Directory"
    )]
    NewerThanBuild {
        /// The version stored in the database.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The database is older than this build and the caller asked not to migrate (read-only tooling).
    #[error(
        "the journal is format v{found}; this build reads v{supported} only after migration: \
         start the agent (or `cloudsync journal migrate`) once to upgrade it"
    )]
    NeedsMigration {
        /// The version stored in the database.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The database holds data but no format version, so it is not a journal this code wrote.
    #[error("not a cloudsync journal: {reason}")]
    NotAJournal {
        /// What was found instead.
        reason: String,
    },
    /// The stored version marker is unreadable.
    #[error("the journal's format version marker is corrupt ({len} bytes, expected 4)")]
    CorruptVersion {
        /// The length of the stored value.
        len: usize,
    },
    /// No chain of steps leads from the stored version to the requested one.
    #[error("no migration step starts at format v{from}")]
    NoPath {
        /// The version no step starts from.
        from: u32,
    },
    /// A step failed; nothing after it ran and the stored version still names the step's start.
    #[error("migration step v{from}->v{to} ({name}) failed: {reason}")]
    StepFailed {
        /// The step's start version.
        from: u32,
        /// The step's target version.
        to: u32,
        /// The step's name.
        name: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The storage engine failed.
    #[error("journal storage error during migration: {0}")]
    Storage(#[from] sled::Error),
}

impl MigrationError {
    /// True when retrying the same operation later may succeed (storage errors only); version mismatches and
    /// foreign data never fix themselves.
    pub fn is_retriable(&self) -> bool {
        matches!(self, MigrationError::Storage(_))
    }
}
