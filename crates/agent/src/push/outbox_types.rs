//! The outbox's types: the operations it holds, the objects it quarantines, its errors. Re-exported
//! by [`super::outbox`], where the store is.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cloudsync_api::ops::Operation;

use super::envelope::EnvelopeError;

/// Errors of the outbox store.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// sled failed while migrating an outbox of an older version (I/O or corruption reported by
    /// sled).
    #[error("outbox store (sled, migrating): {0}")]
    Sled(#[from] sled::Error),
    /// Reading or writing a file of the outbox failed.
    #[error("outbox file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record of the log failed its checks somewhere other than at the end of the file last
    /// written to (where a crash can leave a torn record, which is truncated instead).
    #[error("corrupt outbox log {} at byte {offset}: {reason}", path.display())]
    CorruptLog {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A record failed its envelope check (magic, version, length or checksum) or did not decode.
    #[error("corrupt outbox record {seq}: {source}")]
    Corrupt {
        /// The outbox sequence of the record.
        seq: u64,
        /// What was wrong.
        source: EnvelopeError,
    },
    /// Another handle (another agent process) holds the outbox's lock.
    #[error("the outbox at {} is in use by another process", dir.display())]
    Locked {
        /// The outbox directory.
        dir: std::path::PathBuf,
        /// The refusal, from the last attempt.
        #[source]
        source: std::io::Error,
    },
    /// A key or a meta value had the wrong length (in a sled outbox being migrated).
    #[error("corrupt outbox key or meta value in tree {0}")]
    CorruptKey(&'static str),
    /// A record could not be encoded.
    #[error("encoding an outbox record: {0}")]
    Encode(serde_json::Error),
    /// A previous flush failed; the store refuses writes rather than pretend they are durable.
    #[error("the outbox is poisoned after a failed flush; restart the agent")]
    Poisoned,
    /// The outbox's file system has less than [`super::outbox::MIN_FREE_BYTES`] free: nothing was
    /// written, the store is not poisoned, and the same call succeeds once space is freed.
    #[error(
        "the disk holding the outbox at {} has {} bytes free, less than the {} bytes the outbox keeps in reserve: not writing until space is freed",
        dir.display(), available, reserve
    )]
    DiskFull {
        /// The outbox directory.
        dir: PathBuf,
        /// Bytes available to the agent on its file system.
        available: u64,
        /// The reserve.
        reserve: u64,
    },
    /// The checkpoint may not move backwards or past the last enqueued sequence.
    #[error("checkpoint {requested} is outside {current}..={last}")]
    CheckpointOutOfRange {
        /// The requested checkpoint.
        requested: u64,
        /// The current checkpoint.
        current: u64,
        /// The last enqueued sequence.
        last: u64,
    },
}

impl OutboxError {
    /// Whether retrying the same call later can succeed (only I/O errors may be transient).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            OutboxError::Sled(sled::Error::Io(_))
                | OutboxError::Io { .. }
                | OutboxError::Locked { .. }
                | OutboxError::DiskFull { .. }
        )
    }
}

/// One cloud operation as projection produces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxOp {
    /// The configuration (AD domain) the operation belongs to.
    pub configuration_id: Uuid,
    /// The operation, in the API's wire shape.
    pub operation: Operation,
    /// The journal sequence the operation was derived from (for tracing back).
    pub origin_seq: u64,
    /// Why it was sent beyond an AD change (projection's [`crate::projection::projector::ProjectedOp`]
    /// reason); absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An object the tenant refused permanently: an entry of the quarantine log and of the quarantined
/// set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantinedObject {
    /// When it was recorded, RFC 3339.
    pub time: String,
    /// The configuration.
    pub configuration_id: Uuid,
    /// The source anchor of the object.
    pub source_anchor: String,
    /// The refused action (`upsert`, `delete`, …).
    pub action: String,
    /// The outbox sequence of the refused operation.
    pub seq: u64,
    /// The batch that carried it.
    pub batch_id: Uuid,
    /// The tenant's error code, e.g. `DuplicateUserPrincipalName`.
    pub code: String,
    /// The tenant's message.
    pub message: String,
}
