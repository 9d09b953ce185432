//! The event journal. Enters: event batches with source checkpoints. Leaves: events in sequence order, cursors.
//!
//! The event journal: a durable, ordered log of [`Event`]s in sled, with source checkpoints and consumer
//! cursors.
//!
//! Enters: batches of events from the sources, each optionally with the source checkpoint (DirSync cookie,
//! USN, …) that covers them. Leaves: [`Record`]s in sequence order for projection and the `cloudsync journal`
//! tooling; the stored checkpoints for the sources on restart.
//!
//! # On-disk format (v1)
//! One sled database per journal directory. Tree `meta` holds `format_version` (u32 big-endian), managed by
//! the `cloudsync-migrations` crate. Tree `journal` holds everything else, so that one sled `Batch` — atomic
//! on one tree — can write events, their checkpoint and the high-water mark together:
//!
//! ```text
//! key                                  value (always an envelope)
//! 'e' ++ seq: u64 BE                   Event       bincode { appended_at_unix_ms: i64, event: Event }
//! 'c' ++ source ++ 0x00 ++ domain      Checkpoint  bincode { domain, source, data: bytes, covers_seq: u64 }
//! 'k' ++ cursor name                   Cursor      bincode u64 (last consumed seq)
//! 's'                                  HighWater   bincode u64 (last seq ever assigned)
//!
//! struct Envelope {              // little-endian
//!     magic: [u8; 4] = "CSJR",
//!     format_version: u16 = 1,
//!     record_type: u8,           // 1 event, 2 checkpoint, 3 cursor, 4 high-water mark
//!     reserved: u8 = 0,
//!     payload_len: u32,          // at most MAX_PAYLOAD (16 MiB)
//!     crc32c: u32,               // CRC32C (Castagnoli) of bytes 0..12 followed by the payload
//!     payload: [u8; payload_len] // bincode 2, config::standard(); decoded with codec::DECODE_LIMIT
//! }
//! ```
//!
//! Sequence numbers start at 1 and are not reused: the high-water mark is written in the same batch as the
//! events, so it survives pruning (which anyway never removes the last record). The one exception is a
//! corrupt tail record dropped by recovery: its seq is given to the next event, and recovery moves every
//! cursor past it back and drops the checkpoint that covered it, so no consumer skips the replacement.
//! A journal's records form one contiguous run `first..=last`; below `first` they were pruned.
//!
//! # When records may be deleted
//! Only by [`Journal::prune`], only below the lowest persisted cursor (a record *at* a cursor is kept), only
//! when every cursor named in [`JournalOptions::required_cursors`] exists, and keeping the newest
//! [`Retention::keep_consumed`] consumed records for diagnostics.
//!
//! # Durability contract of [`Journal::append`]
//! 1. The caller's events get the next sequence numbers under the writer lock; the high-water mark and the
//!    optional checkpoint (with `covers_seq` = the batch's last seq) join them in one sled `Batch`.
//! 2. The batch is applied: sled logs it so that recovery sees all of it or none of it.
//! 3. The caller waits for a flush that started after its batch was applied. Concurrent callers share
//!    one flush (group commit): whoever holds the flush lock flushes everything applied so far.
//! 4. Only then does `append` return the [`AppendAck`], and only then do readers ([`Journal::read`],
//!    [`Journal::last_seq`]) and cursors see the new records — a consumer never acts on a record that a crash
//!    could still take away.
//! 5. If step 2 or 3 fails the handle is poisoned: every later write returns [`JournalError::Poisoned`].
//!    Reopening recovers the last durable state (sled replays its log up to the last complete batch).
//! 6. Before step 1, a write is refused with [`JournalError::DiskFull`] while the file system has less
//!    than [`JournalOptions::min_free_bytes`] free: nothing is written, the handle is not poisoned, and
//!    the caller retries later (the sources from their last checkpoint, so nothing is lost).
//!
//! sled's flush is `sync_file_range` plus a periodic `sync_all` (see docs/journal.md): it survives a process
//! kill (tested by SIGKILL), and power loss is bounded by sled's 500 ms `sync_all` interval. The journal is
//! rebuildable from AD (cookies and USNs are the source of truth), which is why this trade-off is acceptable.
//!
//! # Recovery on open
//! The highest event record is checked. If its envelope is corrupt it is removed with a warning, together
//! with any checkpoint whose `covers_seq` reaches it (so its source re-reads rather than skips), and cursors
//! beyond it move back by one. Corruption
//! anywhere else is reported as [`JournalError::Corrupt`] naming the seq when the record is read, and by
//! [`Journal::verify`].

pub mod codec;
mod crash;
mod cursor;
pub use crash::crash_event;
mod error;
mod open;
mod read;
mod recovery;
mod store;
pub mod view;

pub use codec::{BINCODE, HEADER_LEN, MAGIC, MAX_PAYLOAD, RecordType};
pub use error::{Damage, JournalError, REBUILD_HINT};
pub use recovery::VerifyReport;
pub use store::Journal;

use crate::event::{Event, SourceKind};

/// The on-disk format version this build writes.
pub const FORMAT_VERSION: u32 = 1;
const _: () = assert!(FORMAT_VERSION == cloudsync_migrations::LATEST_VERSION);

/// The cursor the projection stage advances.
pub const CURSOR_PROJECTION: &str = "projection";
/// The cursor the push stage advances.
pub const CURSOR_PUSH: &str = "push";

/// A source's resume point for one domain, stored with the events it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The domain (DNS name).
    pub domain: String,
    /// The reader that owns it.
    pub source: SourceKind,
    /// Opaque to the journal (a DirSync cookie, a USN, …).
    pub data: Vec<u8>,
}

/// The acknowledgement of a durable [`Journal::append`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendAck {
    /// The first sequence number assigned; `None` when only a checkpoint was written.
    pub first_seq: Option<u64>,
    /// The last sequence number assigned; `None` when only a checkpoint was written.
    pub last_seq: Option<u64>,
}

/// One event as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// When its batch was appended (Unix milliseconds, wall clock).
    pub appended_at_unix_ms: i64,
    /// The event.
    pub event: Event,
}

/// How much consumed history [`Journal::prune`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How many records below the lowest cursor to keep anyway (for `journal replay` after the fact).
    /// `u64::MAX` keeps everything.
    pub keep_consumed: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_consumed: 100_000,
        }
    }
}

/// Options for [`Journal::open`].
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// What pruning keeps.
    pub retention: Retention,
    /// Cursors that must exist before anything is pruned (a consumer that has not started yet must not
    /// lose records it has never seen). Defaults to [`CURSOR_PROJECTION`].
    pub required_cursors: Vec<String>,
    /// sled's page cache size in bytes.
    pub cache_capacity_bytes: u64,
    /// Writes are refused ([`JournalError::DiskFull`], retriable, the handle stays healthy) while the
    /// journal's file system has less than this many bytes free; 0 turns the check off. sled that
    /// meets a full disk fails its flush, which poisons the handle and stops the agent (and a service
    /// manager would restart it into the same wall); refusing first lets the sources wait and retry
    /// from their last checkpoint, and leaves the reserve to projection and the outbox, which only
    /// write what the journal already holds. Default [`DEFAULT_MIN_FREE_BYTES`].
    pub min_free_bytes: u64,
}

/// The free space the journal leaves on its file system by default (32 MiB).
pub const DEFAULT_MIN_FREE_BYTES: u64 = 32 * 1024 * 1024;

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            retention: Retention::default(),
            required_cursors: vec![CURSOR_PROJECTION.to_string()],
            cache_capacity_bytes: 64 * 1024 * 1024,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

#[cfg(test)]
mod tests;
