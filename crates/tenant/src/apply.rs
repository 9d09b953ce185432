//! Applying one operation batch to the store: the per-object semantics of the provisioning API.
//!
//! Enters: an [`OperationBatch`] for one configuration, already authenticated and size-checked, and
//! how much of it the write budget covers ([`ThrottleCut`]). Leaves: one [`OpResult`] per operation,
//! the writes in the store, and one provisioning log entry per operation. The caller holds the apply
//! lock, so nothing interleaves. The rules are listed in [`cloudsync_api::ops`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cloudsync_api::config::Health;
use cloudsync_api::logs::LogEntry;
use cloudsync_api::ops::{BatchResponse, OpError, OpErrorCode, OpResult, OpStatus, OperationBatch};

use super::store::{ConfigRecord, Store, StoreError, put_json};

/// Who sent the batch, where to, and when.
#[derive(Debug, Clone)]
pub struct BatchContext {
    /// The sending agent.
    pub agent_id: Uuid,
    /// Unix seconds now.
    pub now: i64,
    /// RFC 3339 now.
    pub now_text: String,
    /// Length of the delete-counting window.
    pub delete_window_secs: u64,
    /// Failed batches in a row before quarantine.
    pub quarantine_after: u32,
    /// The batch's lease epoch (0 without one): versions compare as (epoch, version).
    pub epoch: u64,
}

/// A stored password hash with the version that set it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Per-object version of the `setPasswordHash` operation.
    pub version: u64,
    /// Its lease epoch (absent in older records: 0).
    #[serde(default)]
    pub epoch: u64,
    /// The `v1;PPH1_MD4,…` string.
    pub credential: String,
}

/// What applying one operation did.
pub(super) enum Outcome {
    /// Applied or skipped, with the object id and a log message.
    Done(OpStatus, Option<Uuid>, &'static str),
    /// Not applied.
    Failed(Option<Uuid>, OpError),
}

pub(super) fn fail(code: OpErrorCode, message: impl Into<String>) -> Outcome {
    Outcome::Failed(None, OpError::new(code, message))
}

/// The write budget covered only the first `fits` operations of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleCut {
    /// Operations applied (from the start, in order).
    pub fits: usize,
    /// `retryAfterSeconds` for the `Throttled` answer of every later operation.
    pub retry_after_seconds: u64,
}

/// Applies a batch (the caller has checked that its id is new) and stores its results.
pub fn apply_batch(
    store: &Store,
    config: &mut ConfigRecord,
    batch: &OperationBatch,
    ctx: &BatchContext,
) -> Result<BatchResponse, StoreError> {
    apply_batch_cut(store, config, batch, ctx, None)
}

/// [`apply_batch`] for a batch the write budget covers only in part: operations from `cut.fits` on
/// are not applied and get the retriable `Throttled` error with `retryAfterSeconds` (and a
/// provisioning log entry each). The stored results, which a replay of the batch id returns, hold
/// those errors too.
pub fn apply_batch_cut(
    store: &Store,
    config: &mut ConfigRecord,
    batch: &OperationBatch,
    ctx: &BatchContext,
    cut: Option<ThrottleCut>,
) -> Result<BatchResponse, StoreError> {
    roll_delete_window(config, ctx);
    let mut results = Vec::with_capacity(batch.operations.len());
    let mut permanent_failures = 0usize;
    let mut swept = Vec::new();
    for (index, op) in batch.operations.iter().enumerate() {
        let outcome = if let Some(cut) = cut.filter(|c| index >= c.fits) {
            Outcome::Failed(None, OpError::throttled(cut.retry_after_seconds))
        } else if let Health::Quarantine { reason } = &config.config.health {
            fail(
                OpErrorCode::Quarantined,
                format!(
                    "The configuration is in quarantine ({reason}); restart it with scope Quarantine."
                ),
            )
        } else {
            super::apply_ops::apply_one(store, config, op, ctx, &mut swept)?
        };
        // Objects an `imageComplete` (or an upsert superseding a stale holder of its
        // userPrincipalName) deleted: one log entry each, before the operation's own.
        for super::apply_ops::Removed { id, anchor, why } in swept.drain(..) {
            let entry = LogEntry {
                seq: store.next_id()?,
                time: ctx.now_text.clone(),
                agent_id: ctx.agent_id,
                configuration_id: config.config.id,
                batch_id: batch.batch_id,
                object_id: Some(id),
                source_anchor: anchor,
                action: "delete".to_owned(),
                result: OpStatus::Success,
                error_code: None,
                message: match why {
                    super::apply_ops::RemovedBy::ImageComplete => format!(
                        "Not in the image of the new lease holder (epoch {}): deleted.",
                        ctx.epoch
                    ),
                    super::apply_ops::RemovedBy::SupersededInImage => format!(
                        "Written by an earlier lease holder and not re-sent by the new one (epoch {}), whose object of another anchor claims its userPrincipalName: deleted, as the image's sweep would.",
                        ctx.epoch
                    ),
                },
                reason: Some(
                    match why {
                        super::apply_ops::RemovedBy::ImageComplete => "ImageComplete",
                        super::apply_ops::RemovedBy::SupersededInImage => "SupersededInImage",
                    }
                    .to_owned(),
                ),
            };
            put_json(&store.logs, &entry.seq.to_be_bytes(), &entry)?;
        }
        let (status, object_id, error, message) = match outcome {
            Outcome::Done(status, id, message) => (status, id, None, message.to_owned()),
            Outcome::Failed(id, error) => {
                if !error.retriable {
                    permanent_failures += 1;
                }
                let message = error.message.clone();
                (OpStatus::Error, id, Some(error), message)
            }
        };
        let seq = store.next_id()?;
        let entry = LogEntry {
            seq,
            time: ctx.now_text.clone(),
            agent_id: ctx.agent_id,
            configuration_id: config.config.id,
            batch_id: batch.batch_id,
            object_id,
            source_anchor: op.source_anchor().to_owned(),
            action: op.action().to_owned(),
            result: status,
            error_code: error.as_ref().map(|e| e.code),
            message,
            reason: batch.reasons.get(&index).cloned(),
        };
        put_json(&store.logs, &seq.to_be_bytes(), &entry)?;
        results.push(OpResult {
            index,
            status,
            object_id,
            error,
        });
    }
    // Throttled operations were not tried: they count neither as failed nor as applied.
    let tried = cut.map_or(batch.operations.len(), |c| {
        c.fits.min(batch.operations.len())
    });
    update_health(config, tried, permanent_failures, ctx);
    let response = BatchResponse {
        batch_id: batch.batch_id,
        replayed: false,
        results,
    };
    put_json(
        &store.batches,
        &super::store::batch_key(config.config.id, batch.batch_id),
        &response,
    )?;
    put_json(&store.configs, config.config.id.as_bytes(), config)?;
    Ok(response)
}

fn roll_delete_window(config: &mut ConfigRecord, ctx: &BatchContext) {
    let window = i64::try_from(ctx.delete_window_secs).unwrap_or(i64::MAX);
    if ctx.now.saturating_sub(config.delete_window_start) >= window {
        config.delete_window_start = ctx.now;
        config.delete_window_count = 0;
    }
}

fn update_health(
    config: &mut ConfigRecord,
    ops: usize,
    permanent_failures: usize,
    ctx: &BatchContext,
) {
    config.config.last_sync = Some(ctx.now_text.clone());
    if ops > 0 && permanent_failures == ops {
        config.consecutive_failed_batches += 1;
    } else if permanent_failures < ops {
        config.consecutive_failed_batches = 0;
    }
    if config.consecutive_failed_batches >= ctx.quarantine_after
        && config.config.health == Health::Healthy
    {
        config.config.health = Health::Quarantine {
            reason: "AllOperationsFailed".into(),
        };
        config.config.revision += 1;
        tracing::warn!(configuration = %config.config.id, "Configuration quarantined after consecutive failed batches.");
    }
}

#[cfg(test)]
#[path = "apply_model_tests.rs"]
mod model_tests;
