//! The push stage. Enters: operations in the durable outbox. Leaves: batches over HTTPS, an in-order checkpoint.
//!
//! The push stage: delivers the durable outbox of cloud operations to the tenant, batched, in
//! order per object, resumable, and exactly once in effect.
//!
//! Enters: [`OutboxOp`]s that projection (or the synthetic driver) enqueues with
//! [`Outbox::enqueue`], the `[push]` settings ([`PushConfig`]) and the agent's tenant client
//! ([`crate::control::tenant_client`]). Leaves: HTTPS batch posts to the tenant (only [`cloudsync_api`] wire types), the
//! push checkpoint, a local provisioning log of objects the tenant refused, and a [`PushStatus`].
//!
//! # On-disk format: the outbox (format 2: a segmented log, separate from the journal)
//!
//! A FIFO queue needs no B-tree: the outbox is an append-only log of segments, as vector's disk
//! buffer and Kafka keep theirs, so memory is an index of the unacknowledged window (one entry per
//! 128 operations), not resident tree nodes (format 1, a sled database, held every enqueued
//! operation in memory: `docs/bench.md` § Where the memory goes).
//!
//! ```text
//! <outbox dir>/            0700
//!   lock                   0600, flock'ed while a handle is open (one process at a time)
//!   log/                   0700
//!     seg-<id, 20 digits>.log   0600, ids consecutive; closed at 64 MiB, then the next begins
//!     state.log                 0600
//!
//! struct Frame {               // every record of both files
//!     magic:   [u8; 4],         // "CSOR" in segments, "CSOS" in state.log
//!     version: u16 BE  = 1,
//!     len:     u32 BE,          // body bytes
//!     crc32c:  u32 BE,          // CRC32C (Castagnoli) of the body
//!     body:    [u8; len],
//! }
//! struct SegmentRecordBody {    // one enqueue, or a segment's opening snapshot
//!     first_seq: u64 BE,        // = the next sequence of the record before it
//!     count:     u32 BE,        // operations (0 in a snapshot, or for a cursor/epoch only)
//!     meta_len:  u32 BE,
//!     meta:      [u8; meta_len],  // JSON {cursors: {name: u64}, leaseEpochs: {uuid: u64}}
//!     ops:       [Envelope; count],  // first_seq, first_seq + 1, … (below)
//! }
//! // state.log bodies, JSON, tagged by "kind":
//! //   snapshot {checkpoint, log: [QuarantinedObject], quarantined: [source anchor]}  (first record)
//! //   ack      {checkpoint, quarantined: [QuarantinedObject]}
//! //   release  {anchor}
//! struct Envelope {            // one operation; see envelope.rs
//!     magic:   [u8; 4] = "CSOB",
//!     version: u16 BE  = 1,
//!     len:     u32 BE,          // payload bytes
//!     crc32c:  u32 BE,          // CRC32C (Castagnoli) of the payload
//!     payload: [u8; len],       // JSON {configurationId, operation: api::ops::Operation, originSeq}
//! }
//! ```
//! JSON because `Operation` is an internally tagged enum, which bincode cannot encode; the payload is
//! exactly the wire shape. Every segment opens with a snapshot record (the next sequence, every
//! producer cursor and lease epoch), so deleting older segments loses no meta. A segment is deleted
//! once every operation in it is at or below the push checkpoint (never the newest segment); the
//! state log is rewritten as one snapshot (temporary file, fsync, rename) once it passes 1 MiB and
//! twice its last snapshot. An outbox of format 1 (sled's `conf`/`db` in the directory) is migrated
//! on open: what is pending, the meta and the quarantine are written to `log.tmp/`, which is renamed
//! to `log/`, and then sled's files are removed (a crash at any point redoes or finishes it).
//!
//! Recovery on open reads every record of every segment and of the state log. A record failing any
//! check (magic, version, length, CRC32C, body layout, sequence continuity) is reported
//! ([`OutboxError::CorruptLog`]; an operation failing its envelope check when read:
//! [`OutboxError::Corrupt`]), never skipped — except the last record of the newest segment or of the
//! state log when no valid record follows it: that is a write a crash cut short (its enqueue or
//! acknowledgement never returned), and it is truncated away with a warning.
//!
//! # Durability contract of the outbox
//! 1. `enqueue` writes ONE record holding the operations under fresh sequences AND the producer's
//!    cursor (or the lease epoch), fsyncs the segment (`fdatasync`), and only then publishes the
//!    operations to readers and returns. A failed write or fsync poisons the outbox (writes refused).
//! 2. A new segment is written as a temporary file with its snapshot, fsynced, renamed in, and the
//!    directory fsynced, before any record goes into it.
//! 3. `acknowledge` appends ONE record to the state log (the new checkpoint and the objects it
//!    quarantines), fsyncs it, then updates memory and deletes fully acknowledged segments. The
//!    checkpoint never moves backwards or past the last sequence.
//! 4. A crash at any byte leaves a valid prefix: at most the record being written is incomplete, and
//!    recovery truncates exactly that.

//! # Delivery contract
//! 1. `enqueue` writes the operations under fresh sequences AND the producer's cursor in one record
//!    of the outbox log, then fsyncs, before returning; a failed write poisons the outbox (above).
//! 2. The push loop reads entries after the checkpoint into a bounded window (`max_pending`).
//! 3. A batch takes due entries in sequence order for one configuration, up to `max_batch_ops`
//!    (≤ 500) and `max_batch_bytes`, after waiting at most `linger` for a full batch. A run of
//!    upserts of one object with nothing else touching it in between collapses to the last (full
//!    image, higher version). No operation moves ahead of an earlier one touching the same object
//!    (membership operations touch the group and the member).
//! 4. Up to `max_in_flight` batches are in flight, and no two touch the same object.
//! 5. Batch ids are deterministic: UUIDv8 of SHA-256 over the configuration id and each item's
//!    sequences and retry count. A resend after a crash reuses the id, and the tenant returns its
//!    stored results; per-object versions make any other replay a `skipped` no-op.
//! 6. A whole call that fails (transport, 5xx, 429, 401 after one token refresh, undecodable answer)
//!    is resent under the same id after exponential backoff with jitter, or exactly `Retry-After`.
//!    While calls fail, at most one batch is in flight. 413 splits the batch.
//! 7. Per operation: `success`/`skipped` acknowledge it; a retriable error requeues it at its order
//!    position with its own backoff, together with every later operation of the same object in that
//!    batch (resent after it); a permanent error quarantines that object in the local provisioning log
//!    with the tenant's message and acknowledges it. The rest of the batch proceeds. Exception: a
//!    waiting membership or password-hash operation lets later upserts of its objects overtake it
//!    (that is what resolves `ReferenceNotFound`); it gives up after `max_reference_attempts`.
//!    A per-item `Throttled` error carries `retryAfterSeconds`: that item is not resent before it, and
//!    no batch is sent before it either (the write budget is the tenant's, not the item's).
//! 8. The checkpoint advances to just below the lowest sequence not yet acknowledged, in one record
//!    of the state log with the new quarantine entries, then an fsync; acknowledged segments go.
//! 9. Shutdown (cancellation): no new batches; in-flight batches get up to `shutdown_grace`; then the
//!    loop stops with the checkpoint exactly at the last acknowledged prefix.
//!
//! 10. Under leases ([`crate::control::lease`], [`run_leased`]): only configurations this agent
//!     holds are batched, each batch carries the epoch in its body and in its id; a `LeaseLost`
//!     answer puts the batch's operations back and stops that configuration until a heartbeat
//!     grants it again; a whole-batch retry built under another epoch is taken apart and rebuilt.
//!     In the daemon a standby's operations (configurations another agent holds) are acknowledged
//!     without being sent, so its outbox stays bounded; on a takeover projection enqueues this
//!     agent's full image of the configuration and an `imageComplete` (`runtime::takeover`), which
//!     goes only once everything before it is acknowledged. `agent sync-once` keeps them waiting
//!     instead (it makes no image).
//!
//! Quarantine of the whole configuration is described in [`quarantine`].

pub mod ack;
pub mod batcher;
pub mod client;
pub mod envelope;
pub mod outbox;
mod outbox_frame;
mod outbox_log;
mod outbox_migrate;
mod outbox_state;
mod outbox_types;
mod outcome;
pub mod pacer;
mod pusher;
pub mod quarantine;
pub mod retry;
mod settings;
pub mod synthetic;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::control::tenant_client::TenantClient;

pub use client::CallError;
pub use outbox::{Outbox, OutboxError, OutboxOp, QuarantinedObject};
pub use quarantine::{PushStatus, QuarantinePolicy, QuarantineReason};
pub use retry::{Backoff, MAX_SERVER_DELAY};
pub use settings::PushConfig;

/// Errors that stop the push stage (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The outbox failed (I/O, corruption, poisoned after a failed flush).
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A batch could not be serialised.
    #[error("encoding a batch: {0}")]
    Encode(serde_json::Error),
}

impl PushError {
    /// Whether restarting the stage may help (a transient I/O error of the outbox).
    pub fn is_retriable(&self) -> bool {
        match self {
            PushError::Outbox(e) => e.is_retriable(),
            PushError::Encode(_) => false,
        }
    }
}

/// What the stage reports when it stops.
#[derive(Debug, Clone)]
pub struct PushSummary {
    /// The persisted checkpoint.
    pub checkpoint: u64,
    /// The final status.
    pub status: PushStatus,
}

/// Runs the push stage until `cancel` fires (or, with `stop_when_drained`, the outbox is drained).
/// Progress is published on `status`.
#[tracing::instrument(skip_all)]
pub async fn run(
    outbox: Arc<Outbox>,
    client: Arc<TenantClient>,
    cfg: PushConfig,
    cancel: CancellationToken,
    status: watch::Sender<PushStatus>,
) -> Result<PushSummary, PushError> {
    run_leased(outbox, client, cfg, cancel, status, None, false).await
}

/// [`run`] under leases: only the configurations `leases` says this agent holds are pushed, each
/// batch stamped with the epoch (see [`crate::control::lease`]); `None` is [`run`]. With
/// `standby_discards` (the daemon, whose projection re-sends an image on a takeover) the operations
/// of configurations another agent holds are acknowledged without being sent; without it they wait.
#[tracing::instrument(skip_all)]
pub async fn run_leased(
    outbox: Arc<Outbox>,
    client: Arc<TenantClient>,
    cfg: PushConfig,
    cancel: CancellationToken,
    status: watch::Sender<PushStatus>,
    leases: Option<Arc<crate::control::lease::Leases>>,
    standby_discards: bool,
) -> Result<PushSummary, PushError> {
    pusher::Pusher::new(outbox, client, cfg, status)?
        .with_leases(leases, standby_discards)
        .run(cancel)
        .await
}
