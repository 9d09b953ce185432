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
//! # On-disk format: the outbox (its own sled database, separate from the journal)
//!
//! | tree | key | value |
//! |---|---|---|
//! | `ops` | outbox sequence, u64 big-endian (1, 2, …) | envelope, below |
//! | `meta` | `next_seq` · `push_checkpoint` · `cursor/<producer>` · `lease_epoch/<configuration id>` (the epoch of this agent's last takeover, [`Outbox::enqueue_takeover`]) | u64 big-endian each |
//! | `provisioning_log` | sled `generate_id`, u64 big-endian | JSON [`QuarantinedObject`] |
//! | `quarantined` | source anchor (UTF-8) | JSON [`QuarantinedObject`] (the latest refusal) |
//!
//! ```text
//! struct Envelope {            // see envelope.rs
//!     magic:   [u8; 4] = "CSOB",
//!     version: u16 BE  = 1,
//!     len:     u32 BE,          // payload bytes
//!     crc32c:  u32 BE,          // CRC32C (Castagnoli) of the payload
//!     payload: [u8; len],       // JSON {configurationId, operation: api::ops::Operation, originSeq}
//! }
//! ```
//! JSON because `Operation` is an internally tagged enum, which bincode cannot encode; the payload is
//! exactly the wire shape. A record failing any check is reported ([`OutboxError::Corrupt`]), never
//! skipped. Entries up to the push checkpoint are deleted in the same atomic write that moves it.
//!
//! # Delivery contract
//! 1. `enqueue` writes the operations under fresh sequences AND the producer's cursor in one sled
//!    transaction, then flushes, before returning; a failed flush poisons the outbox (writes refused).
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
//! 8. The checkpoint advances to just below the lowest sequence not yet acknowledged, in one atomic
//!    write with new provisioning-log entries and the pruning of acknowledged entries, then a flush.
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
