//! Rebuilding a damaged journal from AD (`cloudsync journal rebuild`). Enters: the agent's
//! configuration, with the agent stopped. Leaves: the damaged journal moved aside (kept, 0700), a
//! fresh journal whose sequence continues above everything the old one produced, and projection's
//! snapshot moved to that point, so the next pass re-reads every domain in full and converges the
//! tenant through the ordinary resync path.
//!
//! Why this is consistent (docs/journal.md, "Rebuilding from AD"):
//! 1. A fresh journal has no DirSync/USN/DRSR checkpoint, so the next pass of every domain is a
//!    full read announced by `ResyncStarted { reason: Initial }` and ended by `ResyncCompleted`, and
//!    password hash sync replicates every hash again — the same path as an invalid cookie.
//! 2. Per-object versions are journal sequence numbers and the tenant drops a write whose version
//!    is not above the stored one. The new journal starts after `base` = the highest of projection's
//!    cursor in the outbox (the last journal sequence whose operations were enqueued, so an upper
//!    bound of every version the tenant holds), projection's snapshot sequence, and the old
//!    journal's high-water mark when it can still be read.
//! 3. Projection keeps its snapshot state (as of its sequence S ≤ base) and continues at base + 1:
//!    the full read is compared with that state, so unchanged objects produce nothing new, objects
//!    changed since S are written again with higher versions (idempotent at the tenant), objects
//!    created since S are matched by source anchor, and objects no longer in AD are deleted by the
//!    resync's sweep (through the delete threshold). The outbox is kept as it is: its pending
//!    operations carry versions at most `base`, so they stay valid and in order.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::journal::{Journal, JournalError, JournalOptions};
use crate::projection::store::{ProjectionStore, StoreError};
use crate::push::{Outbox, OutboxError};

use super::outbox_sink::PRODUCER;
use super::status::file::held_by_another_process;

/// Why a rebuild was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// A running agent holds one of the databases.
    #[error("{} is in use (is the agent running?): stop it first", .0.display())]
    InUse(PathBuf),
    /// There is no journal to move aside.
    #[error("no journal at {}", .0.display())]
    NoJournal(PathBuf),
    /// Moving the journal aside or setting its mode failed.
    #[error("moving {} aside: {source}", path.display())]
    Move {
        /// The journal directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The outbox could not be read.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Projection's store could not be read or written.
    #[error(transparent)]
    Projection(#[from] StoreError),
    /// The new journal could not be created.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// Where the damaged journal now is.
    pub moved_to: PathBuf,
    /// The new journal's first sequence is `base + 1`.
    pub base: u64,
    /// Projection's cursor in the outbox.
    pub producer_cursor: u64,
    /// The old journal's high-water mark, when it could be read.
    pub old_high_water: Option<u64>,
    /// Projection's snapshot sequence (0: no snapshot).
    pub snapshot_seq: u64,
    /// Whether projection had a snapshot it could read (none, or one of an older format, means the
    /// re-read starts from an empty state and cannot sweep objects deleted in AD meanwhile).
    pub snapshot_found: bool,
}

/// Moves the journal aside and prepares the fresh one (module doc). `now` names the moved
/// directory (`<journal>.damaged-<now>`).
pub fn rebuild(config: &Config, now: &str) -> Result<Rebuilt, RebuildError> {
    let journal_dir = config.agent.journal_dir.clone();
    let projection_dir = config.agent.projection_dir();
    let outbox_dir = config.agent.outbox_dir();
    if !journal_dir.exists() {
        return Err(RebuildError::NoJournal(journal_dir));
    }
    for dir in [&journal_dir, &projection_dir, &outbox_dir] {
        if held_by_another_process(dir) {
            return Err(RebuildError::InUse(dir.clone()));
        }
    }
    let producer_cursor = if outbox_dir.exists() {
        Outbox::open(&outbox_dir)?
            .producer_cursor(PRODUCER)?
            .unwrap_or(0)
    } else {
        0
    };
    let projection = ProjectionStore::open(&projection_dir)?;
    let snapshot = projection.load_snapshot()?;
    let snapshot_found = snapshot.is_some();
    let (mut state, meta) = snapshot.unwrap_or_default();
    let snapshot_seq = state.last_seq;
    // Best effort: a journal damaged elsewhere may still say how far it went.
    let old_high_water = Journal::open_existing(&journal_dir)
        .ok()
        .and_then(|j| j.last_seq());
    let base = producer_cursor
        .max(snapshot_seq)
        .max(old_high_water.unwrap_or(0));
    let moved_to = aside(&journal_dir, now);
    std::fs::rename(&journal_dir, &moved_to).map_err(|source| RebuildError::Move {
        path: journal_dir.clone(),
        source,
    })?;
    set_private(&moved_to)?;
    tracing::warn!(from = %journal_dir.display(), to = %moved_to.display(), "Damaged journal moved aside.");
    let journal = Journal::open(&journal_dir, JournalOptions::default())?;
    journal.start_after(base)?;
    // Projection continues at base + 1 with the state it has (module doc, step 3).
    state.last_seq = base;
    projection.save_snapshot(&state, &meta.unwrap_or_default())?;
    if !snapshot_found && producer_cursor > 0 {
        tracing::warn!(
            "Projection had no usable snapshot: the re-read cannot know which objects the cloud holds, so objects deleted in AD before the rebuild stay in the cloud until removed there."
        );
    }
    tracing::info!(
        base,
        producer_cursor,
        snapshot_seq,
        old_high_water,
        "Journal rebuilt empty; the next pass re-reads every domain in full."
    );
    Ok(Rebuilt {
        moved_to,
        base,
        producer_cursor,
        old_high_water,
        snapshot_seq,
        snapshot_found,
    })
}

fn aside(journal_dir: &Path, now: &str) -> PathBuf {
    let name = journal_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    let mut candidate = journal_dir.with_file_name(format!("{name}.damaged-{now}"));
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = journal_dir.with_file_name(format!("{name}.damaged-{now}-{n}"));
    }
    candidate
}

fn set_private(dir: &Path) -> Result<(), RebuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        RebuildError::Move {
            path: dir.to_path_buf(),
            source,
        }
    })
}
