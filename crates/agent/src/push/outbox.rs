//! The durable outbox: cloud operations waiting for delivery, the producer's cursor, the push
//! checkpoint, and the log and set of quarantined objects. The format is documented in
//! the module doc of [`crate::push`].

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use uuid::Uuid;

use cloudsync_api::ops::Operation;
use cloudsync_private_fs::lock::{is_lock_conflict, open_waiting_for_lock};

use super::envelope::{self, EnvelopeError};

const CHECKPOINT_KEY: &[u8] = b"push_checkpoint";
const NEXT_SEQ_KEY: &[u8] = b"next_seq";
const CURSOR_PREFIX: &str = "cursor/";
const LEASE_EPOCH_PREFIX: &str = "lease_epoch/";
/// How long [`Outbox::open`] waits for a just-dropped handle to release the database lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors of the outbox store.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// sled failed (I/O or corruption reported by sled).
    #[error("outbox store: {0}")]
    Sled(#[from] sled::Error),
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
        /// sled's refusal, from the last attempt.
        #[source]
        source: std::io::Error,
    },
    /// A key or a meta value had the wrong length.
    #[error("corrupt outbox key or meta value in tree {0}")]
    CorruptKey(&'static str),
    /// A record could not be encoded.
    #[error("encoding an outbox record: {0}")]
    Encode(serde_json::Error),
    /// A previous flush failed; the store refuses writes rather than pretend they are durable.
    #[error("the outbox is poisoned after a failed flush; restart the agent")]
    Poisoned,
    /// The outbox's file system has less than [`MIN_FREE_BYTES`] free: nothing was written, the
    /// store is not poisoned, and the same call succeeds once space is freed.
    #[error(
        "the disk holding the outbox at {} has {} bytes free, less than the {} bytes the outbox keeps in reserve: not writing until space is freed",
        dir.display(), available, reserve
    )]
    DiskFull {
        /// The outbox directory.
        dir: std::path::PathBuf,
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

/// The durable outbox (its own sled database).
#[derive(Debug)]
pub struct Outbox {
    /// Its directory (for the free-space check).
    dir: std::path::PathBuf,
    /// The free space writes leave ([`MIN_FREE_BYTES`]; tests change it).
    reserve: u64,
    db: sled::Db,
    ops: sled::Tree,
    meta: sled::Tree,
    /// Every quarantine recorded (on disk: tree `provisioning_log`).
    quarantine_log: sled::Tree,
    /// The objects quarantined now, by source anchor.
    quarantined: sled::Tree,
    /// Serialises sequence allocation in `enqueue`.
    seq_lock: Mutex<()>,
    poisoned: AtomicBool,
    notify: tokio::sync::Notify,
}

/// [`OutboxError::DiskFull`] when `dir`'s file system has less than `reserve` bytes free.
fn check_space(dir: &Path, reserve: u64) -> Result<(), OutboxError> {
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    let available = st.f_bavail.saturating_mul(st.f_frsize);
    if available < reserve {
        return Err(OutboxError::DiskFull {
            dir: dir.to_path_buf(),
            available,
            reserve,
        });
    }
    Ok(())
}

fn is_sled_lock_conflict(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if is_lock_conflict(e))
}

fn u64_value(tree: &'static str, v: &[u8]) -> Result<u64, OutboxError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| OutboxError::CorruptKey(tree))?;
    Ok(u64::from_be_bytes(bytes))
}

/// sled's page cache for the outbox (its default is 1 GiB per database, which an initial sync of a
/// large directory fills with operations it reads once: `docs/bench.md` § Where the memory goes).
/// The pusher reads the oldest window, the producer appends at the end: a small cache holds both.
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Writes are refused ([`OutboxError::DiskFull`]) while the outbox's file system has less than this
/// free: half the journal's reserve ([`crate::journal::DEFAULT_MIN_FREE_BYTES`]), so on a filling
/// disk the journal stops taking events first and the outbox can still take and acknowledge what
/// the journal already holds. sled that meets a full disk fails its flush, which poisons the outbox
/// and stops the agent (found by the fault campaign, `docs/lab.md` § Fault campaign).
pub const MIN_FREE_BYTES: u64 = crate::journal::DEFAULT_MIN_FREE_BYTES / 2;

impl Outbox {
    /// Opens (or creates) the outbox database in `dir`. sled releases the file lock of a dropped
    /// handle asynchronously, so a lock conflict is retried for up to [`LOCK_WAIT`] (blocking the
    /// calling thread; this happens once, at start) before it is reported as [`OutboxError::Locked`].
    pub fn open(dir: &Path) -> Result<Outbox, OutboxError> {
        // 0700 even without the binary's umask: operations carry salted password hashes.
        cloudsync_private_fs::create_private_dir(dir).map_err(sled::Error::Io)?;
        let open = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .open()
        };
        let db = match open_waiting_for_lock(LOCK_WAIT, open, is_sled_lock_conflict) {
            Ok(db) => db,
            Err(sled::Error::Io(e)) if is_lock_conflict(&e) => {
                return Err(OutboxError::Locked {
                    dir: dir.to_path_buf(),
                    source: e,
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Outbox {
            dir: dir.to_path_buf(),
            reserve: MIN_FREE_BYTES,
            ops: db.open_tree("ops")?,
            meta: db.open_tree("meta")?,
            quarantine_log: db.open_tree("provisioning_log")?,
            quarantined: db.open_tree("quarantined")?,
            db,
            seq_lock: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
        })
    }

    fn meta_u64(&self, key: &[u8]) -> Result<u64, OutboxError> {
        self.meta.get(key)?.map_or(Ok(0), |v| u64_value("meta", &v))
    }

    fn check_poison(&self) -> Result<(), OutboxError> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(OutboxError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Refuses a write while the file system has less than [`MIN_FREE_BYTES`] free (a `statvfs`
    /// that fails says nothing: the write goes ahead).
    fn check_space(&self) -> Result<(), OutboxError> {
        check_space(&self.dir, self.reserve)
    }

    /// The same outbox with another reserve (a test's full disk).
    #[cfg(test)]
    pub(crate) fn with_reserve(mut self, bytes: u64) -> Outbox {
        self.reserve = bytes;
        self
    }

    async fn flush(&self) -> Result<(), OutboxError> {
        if let Err(e) = self.db.flush_async().await {
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(error = %e, "Outbox flush failed; refusing further writes.");
            return Err(e.into());
        }
        Ok(())
    }

    /// Appends `ops` under fresh sequences and records the producer's cursor, in ONE atomic write,
    /// then flushes. Returns the sequences assigned (first..=last), or `None` when `ops` is empty.
    pub async fn enqueue(
        &self,
        ops: Vec<OutboxOp>,
        producer_cursor: Option<(&str, u64)>,
    ) -> Result<Option<(u64, u64)>, OutboxError> {
        self.enqueue_with(ops, producer_cursor, None).await
    }

    /// The lease epoch under which this agent last took `configuration` over (its takeover image
    /// enqueued, or none needed): `runtime::takeover` compares it with the epoch it holds.
    pub fn lease_epoch(&self, configuration: uuid::Uuid) -> Result<Option<u64>, OutboxError> {
        let key = format!("{LEASE_EPOCH_PREFIX}{configuration}");
        self.meta
            .get(key.as_bytes())?
            .map(|v| u64_value("meta", &v))
            .transpose()
    }

    /// Appends `ops` (a takeover image, or nothing) and records `epoch` as `configuration`'s
    /// [`Outbox::lease_epoch`], in ONE atomic write, then flushes.
    pub async fn enqueue_takeover(
        &self,
        ops: Vec<OutboxOp>,
        configuration: uuid::Uuid,
        epoch: u64,
    ) -> Result<Option<(u64, u64)>, OutboxError> {
        self.enqueue_with(ops, None, Some((configuration, epoch)))
            .await
    }

    async fn enqueue_with(
        &self,
        ops: Vec<OutboxOp>,
        producer_cursor: Option<(&str, u64)>,
        lease_epoch: Option<(uuid::Uuid, u64)>,
    ) -> Result<Option<(u64, u64)>, OutboxError> {
        self.check_poison()?;
        self.check_space()?;
        let mut encoded = Vec::with_capacity(ops.len());
        for op in &ops {
            encoded.push(envelope::encode(op).map_err(OutboxError::Encode)?);
        }
        let range = {
            let _guard = self.seq_lock.lock().unwrap_or_else(|e| e.into_inner());
            let first = self.meta_u64(NEXT_SEQ_KEY)?.max(1);
            let count = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
            let next = first.saturating_add(count);
            let result: Result<(), TransactionError<OutboxError>> = (&self.ops, &self.meta)
                .transaction(|(ops_tx, meta_tx)| {
                    for (i, value) in encoded.iter().enumerate() {
                        let seq = first + i as u64;
                        ops_tx.insert(&seq.to_be_bytes(), value.as_slice())?;
                    }
                    meta_tx.insert(NEXT_SEQ_KEY, &next.to_be_bytes())?;
                    if let Some((name, cursor)) = producer_cursor {
                        let key = format!("{CURSOR_PREFIX}{name}");
                        meta_tx.insert(key.as_bytes(), &cursor.to_be_bytes())?;
                    }
                    if let Some((configuration, epoch)) = lease_epoch {
                        let key = format!("{LEASE_EPOCH_PREFIX}{configuration}");
                        meta_tx.insert(key.as_bytes(), &epoch.to_be_bytes())?;
                    }
                    Ok::<(), ConflictableTransactionError<OutboxError>>(())
                });
            match result {
                Ok(()) => {}
                Err(TransactionError::Abort(e)) => return Err(e),
                Err(TransactionError::Storage(e)) => return Err(e.into()),
            }
            (count > 0).then(|| (first, next - 1))
        };
        self.flush().await?;
        // `notify_one` keeps a permit when the consumer is not waiting yet, so no wake-up is lost.
        self.notify.notify_one();
        Ok(range)
    }

    /// Waits until something is enqueued. Meant for the single consumer (the push loop): an
    /// enqueue while it is busy leaves a permit, so the next wait returns at once.
    pub async fn wait_for_new(&self) {
        self.notify.notified().await;
    }

    /// The producer cursor last stored under `name`.
    pub fn producer_cursor(&self, name: &str) -> Result<Option<u64>, OutboxError> {
        let key = format!("{CURSOR_PREFIX}{name}");
        self.meta
            .get(key.as_bytes())?
            .map(|v| u64_value("meta", &v))
            .transpose()
    }

    /// The push checkpoint: every sequence up to it has been acknowledged by the tenant (0 = none).
    pub fn checkpoint(&self) -> Result<u64, OutboxError> {
        self.meta_u64(CHECKPOINT_KEY)
    }

    /// The last sequence ever enqueued (0 = none).
    pub fn last_seq(&self) -> Result<u64, OutboxError> {
        Ok(self.meta_u64(NEXT_SEQ_KEY)?.saturating_sub(1))
    }

    /// Entries with a sequence greater than `after`, in order, at most `limit`.
    pub fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxOp)>, OutboxError> {
        Ok(self
            .read_sized(after, limit)?
            .into_iter()
            .map(|(seq, op, _)| (seq, op))
            .collect())
    }

    /// [`Outbox::read_after`] plus each entry's payload length in bytes (a slight over-estimate of
    /// the operation's JSON, used for the batch byte limit without encoding it again).
    pub fn read_sized(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxOp, usize)>, OutboxError> {
        let mut out = Vec::new();
        let start = after.saturating_add(1).to_be_bytes();
        for item in self.ops.range(start..).take(limit) {
            let (key, value) = item?;
            let seq = u64_value("ops", &key)?;
            let op =
                envelope::decode(&value).map_err(|source| OutboxError::Corrupt { seq, source })?;
            out.push((seq, op, value.len().saturating_sub(envelope::HEADER_LEN)));
        }
        Ok(out)
    }

    /// Number of entries not yet acknowledged and pruned (O(n): sled counts by iterating).
    pub fn pending_len(&self) -> usize {
        self.ops.len()
    }

    /// Advances the push checkpoint to `seq`, records `quarantined` objects in the quarantine log
    /// and the quarantined set and prunes acknowledged entries, in one atomic write, then flushes.
    pub async fn acknowledge(
        &self,
        seq: u64,
        quarantined: &[QuarantinedObject],
    ) -> Result<(), OutboxError> {
        self.check_poison()?;
        self.check_space()?;
        let current = self.checkpoint()?;
        let last = self.last_seq()?;
        if seq < current || seq > last {
            return Err(OutboxError::CheckpointOutOfRange {
                requested: seq,
                current,
                last,
            });
        }
        let mut log_values = Vec::with_capacity(quarantined.len());
        for q in quarantined {
            let id = self.db.generate_id()?;
            let value = serde_json::to_vec(q).map_err(OutboxError::Encode)?;
            log_values.push((id, q.source_anchor.clone(), value));
        }
        let result: Result<(), TransactionError<OutboxError>> = (
            &self.ops,
            &self.meta,
            &self.quarantine_log,
            &self.quarantined,
        )
            .transaction(|(ops_tx, meta_tx, log_tx, q_tx)| {
                for (id, anchor, value) in &log_values {
                    log_tx.insert(&id.to_be_bytes(), value.as_slice())?;
                    q_tx.insert(anchor.as_bytes(), value.as_slice())?;
                }
                for s in current.saturating_add(1)..=seq {
                    ops_tx.remove(&s.to_be_bytes())?;
                }
                meta_tx.insert(CHECKPOINT_KEY, &seq.to_be_bytes())?;
                Ok::<(), ConflictableTransactionError<OutboxError>>(())
            });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.flush().await
    }

    /// Removes an object from the quarantined set (a later operation for it succeeded).
    pub fn release_object(&self, anchor: &str) -> Result<bool, OutboxError> {
        Ok(self.quarantined.remove(anchor.as_bytes())?.is_some())
    }

    /// The objects currently quarantined, by source anchor.
    pub fn quarantined_objects(&self) -> Result<Vec<QuarantinedObject>, OutboxError> {
        read_quarantine_records(&self.quarantined)
    }

    /// Every quarantine recorded, oldest first, including objects released since (tree
    /// `provisioning_log` on disk; the provisioning log proper is projection's).
    pub fn quarantine_log(&self) -> Result<Vec<QuarantinedObject>, OutboxError> {
        read_quarantine_records(&self.quarantine_log)
    }
}

/// The JSON [`QuarantinedObject`] values of `tree`, in key order.
fn read_quarantine_records(tree: &sled::Tree) -> Result<Vec<QuarantinedObject>, OutboxError> {
    tree.iter()
        .values()
        .map(|v| {
            let v = v?;
            serde_json::from_slice(&v).map_err(|e| OutboxError::Corrupt {
                seq: 0,
                source: EnvelopeError::Payload(e),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
