//! The durable outbox: cloud operations waiting for delivery, the producer's cursor, the push
//! checkpoint, and the log and set of quarantined objects. The format is documented in
//! the module doc of [`crate::push`].

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cloudsync_private_fs::lock::{is_lock_conflict, open_waiting_for_lock};

use super::envelope;
use super::outbox_frame::{self as frame, corrupt, io_error};
use super::outbox_log::{self as log, Block, RecordMeta, Segment};
use super::outbox_migrate as migrate;
use super::outbox_state::{self as state, State, StateLog, StateRecord};
pub use super::outbox_types::{OutboxError, OutboxOp, QuarantinedObject};

/// The lock file in the outbox directory (held with `flock` while a handle is open).
pub const LOCK_FILE: &str = "lock";
/// The directory of segments and the state log inside the outbox directory.
const LOG_DIR: &str = "log";
/// How long [`Outbox::open`] waits for a just-dropped handle to release the database lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The durable outbox: a segmented append-only log of operations plus a small state log (format
/// and durability contract in the module doc of [`crate::push`]).
#[derive(Debug)]
pub struct Outbox {
    log_dir: PathBuf,
    /// The free space writes leave ([`MIN_FREE_BYTES`]; tests change it).
    reserve: u64,
    /// Held (`flock`) for the life of the handle: one process at a time.
    _lock: File,
    /// A segment is closed once it reaches this many bytes.
    segment_bytes: u64,
    /// The index and meta, shared by the producer, the consumer and acknowledgements. Held only
    /// briefly, never across an await or a file write.
    inner: Mutex<Inner>,
    /// The state log (checkpoint, quarantine), written under this lock.
    state_log: Mutex<StateLog>,
    /// Serialises enqueues: sequences are assigned, written, fsynced and published in order.
    append: tokio::sync::Mutex<()>,
    /// Serialises acknowledgements.
    ack: tokio::sync::Mutex<()>,
    poisoned: AtomicBool,
    notify: tokio::sync::Notify,
}

/// What the handle keeps in memory: O(pending operations / 128), not the operations.
#[derive(Debug)]
struct Inner {
    segments: VecDeque<Segment>,
    /// Blocks with operations above the checkpoint, in sequence order.
    blocks: VecDeque<Block>,
    next_seq: u64,
    meta: RecordMeta,
    state: State,
}

impl Inner {
    /// Drops index blocks at or below the checkpoint and returns the segments (never the newest)
    /// whose operations are all acknowledged, for deletion.
    fn prune(&mut self) -> Vec<u64> {
        let checkpoint = self.state.checkpoint;
        while self
            .blocks
            .front()
            .is_some_and(|b| b.end_seq() <= checkpoint + 1)
        {
            self.blocks.pop_front();
        }
        let mut doomed = Vec::new();
        while self.segments.len() > 1
            && self
                .segments
                .get(1)
                .is_some_and(|next| next.start_seq <= checkpoint + 1)
        {
            if let Some(s) = self.segments.pop_front() {
                doomed.push(s.id);
            }
        }
        doomed
    }
}

fn try_lock(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        // The text `is_lock_conflict` recognises (sled's, which the other stores still use).
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
            "could not acquire lock on {}: another handle holds it",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Makes a fresh log directory at `tmp` (segment 0 opening with an empty snapshot, an empty state
/// log), ready to be renamed in.
fn create_empty(tmp: &Path) -> Result<(), OutboxError> {
    cloudsync_private_fs::create_private_dir(tmp).map_err(|e| io_error(tmp, e))?;
    log::create_segment(tmp, 0, 1, &RecordMeta::default())?;
    state::create(
        &tmp.join(state::FILE_NAME),
        &StateRecord::Snapshot {
            checkpoint: 0,
            log: Vec::new(),
            quarantined: Vec::new(),
        },
    )?;
    frame::sync_dir(tmp)
}

/// Fsyncs `file` off the async threads; any failure poisons `poisoned`.
async fn sync_data(file: Arc<File>, path: &Path, poisoned: &AtomicBool) -> Result<(), OutboxError> {
    let result = match tokio::task::spawn_blocking(move || file.sync_data()).await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    result.map_err(|e| {
        poisoned.store(true, Ordering::Release);
        tracing::error!(error = %e, path = %path.display(), "Outbox flush failed; refusing further writes.");
        io_error(path, e)
    })
}

/// Writes are refused ([`OutboxError::DiskFull`]) while the outbox's file system has less than this
/// free: half the journal's reserve ([`crate::journal::DEFAULT_MIN_FREE_BYTES`]), so on a filling
/// disk the journal stops taking events first and the outbox can still take and acknowledge what
/// the journal already holds. A write that meets a full disk fails, which poisons the outbox and
/// stops the agent (found by the fault campaign, `docs/lab.md` § Fault campaign).
pub const MIN_FREE_BYTES: u64 = crate::journal::DEFAULT_MIN_FREE_BYTES / 2;

impl Outbox {
    /// Refuses a write while the file system has less than [`MIN_FREE_BYTES`] free (a `statvfs`
    /// that fails says nothing: the write goes ahead).
    fn check_space(&self) -> Result<(), OutboxError> {
        let Ok(st) = rustix::fs::statvfs(&self.log_dir) else {
            return Ok(());
        };
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        if available < self.reserve {
            return Err(OutboxError::DiskFull {
                dir: self.log_dir.clone(),
                available,
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    /// The same outbox with another reserve (a test's full disk).
    #[cfg(test)]
    pub(crate) fn with_reserve(mut self, bytes: u64) -> Outbox {
        self.reserve = bytes;
        self
    }

    /// Opens (or creates) the outbox in `dir`. Another handle's lock is retried for up to
    /// [`LOCK_WAIT`] (blocking the calling thread; this happens once, at start) before it is
    /// reported as [`OutboxError::Locked`]. An outbox of an older version (a sled database) is
    /// migrated first.
    pub fn open(dir: &Path) -> Result<Outbox, OutboxError> {
        Outbox::open_with(dir, log::SEGMENT_BYTES)
    }

    /// [`Outbox::open`] with segments closed at `segment_bytes` (tests use small ones).
    pub(crate) fn open_with(dir: &Path, segment_bytes: u64) -> Result<Outbox, OutboxError> {
        // 0700 even without the binary's umask: operations carry salted password hashes.
        cloudsync_private_fs::create_private_dir(dir).map_err(|e| io_error(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = match open_waiting_for_lock(LOCK_WAIT, || try_lock(&lock_path), is_lock_conflict)
        {
            Ok(lock) => lock,
            Err(e) if is_lock_conflict(&e) => {
                return Err(OutboxError::Locked {
                    dir: dir.to_path_buf(),
                    source: e,
                });
            }
            Err(e) => return Err(io_error(&lock_path, e)),
        };
        let log_dir = dir.join(LOG_DIR);
        if !log_dir.exists() {
            // Built aside and renamed in, so a crash leaves either no log or a whole one.
            let tmp = dir.join("log.tmp");
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
            }
            if migrate::has_sled(dir) {
                migrate::from_sled(dir, &tmp)?;
            } else {
                create_empty(&tmp)?;
            }
            std::fs::rename(&tmp, &log_dir).map_err(|e| io_error(&log_dir, e))?;
            frame::sync_dir(dir)?;
        }
        if migrate::has_sled(dir) {
            migrate::remove_sled(dir)?;
        }
        let (state_log, state) = StateLog::open(&log_dir)?;
        let recovered = log::recover(&log_dir, state.checkpoint)?;
        let last = recovered.next_seq.saturating_sub(1);
        if state.checkpoint > last {
            return Err(corrupt(
                &log_dir.join(state::FILE_NAME),
                0,
                format!(
                    "checkpoint {} past the last operation {last}",
                    state.checkpoint
                ),
            ));
        }
        if let Some(first) = recovered.segments.first()
            && first.start_seq > state.checkpoint + 1
        {
            return Err(corrupt(
                &log::segment_path(&log_dir, first.id),
                0,
                format!(
                    "operations {}..{} above the checkpoint are missing",
                    state.checkpoint + 1,
                    first.start_seq
                ),
            ));
        }
        let mut inner = Inner {
            segments: recovered.segments.into(),
            blocks: recovered.blocks.into(),
            next_seq: recovered.next_seq.max(1),
            meta: recovered.meta,
            state,
        };
        let doomed = inner.prune();
        let outbox = Outbox {
            log_dir,
            reserve: MIN_FREE_BYTES,
            _lock: lock,
            segment_bytes,
            inner: Mutex::new(inner),
            state_log: Mutex::new(state_log),
            append: tokio::sync::Mutex::new(()),
            ack: tokio::sync::Mutex::new(()),
            poisoned: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
        };
        outbox.delete_segments(doomed);
        Ok(outbox)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state_log(&self) -> MutexGuard<'_, StateLog> {
        self.state_log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_poison(&self) -> Result<(), OutboxError> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(OutboxError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison(&self, e: OutboxError) -> OutboxError {
        self.poisoned.store(true, Ordering::Release);
        tracing::error!(error = %e, "Outbox write failed; refusing further writes.");
        e
    }

    /// Removes acknowledged segments. A failure only leaves a file that the next open removes.
    fn delete_segments(&self, ids: Vec<u64>) {
        for id in ids {
            let path = log::segment_path(&self.log_dir, id);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, path = %path.display(), "Could not remove an acknowledged outbox segment.");
            }
        }
    }

    /// Appends `ops` under fresh sequences and records the producer's cursor, in ONE record, then
    /// fsyncs. Returns the sequences assigned (first..=last), or `None` when `ops` is empty.
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
        Ok(self.inner().meta.lease_epochs.get(&configuration).copied())
    }

    /// Appends `ops` (a takeover image, or nothing) and records `epoch` as `configuration`'s
    /// [`Outbox::lease_epoch`], in ONE record, then fsyncs.
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
        let mut meta = RecordMeta::default();
        if let Some((name, cursor)) = producer_cursor {
            meta.cursors.insert(name.to_string(), cursor);
        }
        if let Some((configuration, epoch)) = lease_epoch {
            meta.lease_epochs.insert(configuration, epoch);
        }
        let range = if ops.is_empty() && meta == RecordMeta::default() {
            None
        } else {
            let _append = self.append.lock().await;
            self.check_poison()?;
            let (first, file, offset, path) = self.active_segment()?;
            // Envelope header plus a membership operation's JSON (upserts are larger; the buffer grows).
            let hint = ops.len() * 256;
            let record = log::encode_record(first, &ops, &meta, hint, |op, out| {
                envelope::encode_into(out, op).map_err(OutboxError::Encode)
            })?;
            drop(ops);
            file.write_all_at(&record.bytes, offset)
                .map_err(|e| self.poison(io_error(&path, e)))?;
            sync_data(file.clone(), &path, &self.poisoned).await?;
            let mut inner = self.inner();
            let count = record.blocks_at(&file, offset).fold(0u64, |n, b| {
                let c = u64::from(b.count);
                inner.blocks.push_back(b);
                n + c
            });
            inner.next_seq = first + count;
            inner.meta.cursors.extend(meta.cursors);
            inner.meta.lease_epochs.extend(meta.lease_epochs);
            if let Some(active) = inner.segments.back_mut() {
                active.len = offset + record.bytes.len() as u64;
            }
            (count > 0).then(|| (first, first + count - 1))
        };
        // `notify_one` keeps a permit when the consumer is not waiting yet, so no wake-up is lost.
        self.notify.notify_one();
        Ok(range)
    }

    /// The next sequence and where to append: the newest segment, or a new one when it is full.
    /// Called with the append lock held.
    fn active_segment(&self) -> Result<(u64, Arc<File>, u64, PathBuf), OutboxError> {
        let (next_seq, full, id, meta) = {
            let inner = self.inner();
            let active = inner
                .segments
                .back()
                .ok_or_else(|| corrupt(&self.log_dir, 0, "no segment"))?;
            (
                inner.next_seq,
                active.len >= self.segment_bytes,
                active.id,
                inner.meta.clone(),
            )
        };
        if full {
            let segment = log::create_segment(&self.log_dir, id + 1, next_seq, &meta)
                .map_err(|e| self.poison(e))?;
            self.inner().segments.push_back(segment);
        }
        let inner = self.inner();
        let active = inner
            .segments
            .back()
            .ok_or_else(|| corrupt(&self.log_dir, 0, "no segment"))?;
        Ok((
            next_seq,
            active.file.clone(),
            active.len,
            log::segment_path(&self.log_dir, active.id),
        ))
    }

    /// Waits until something is enqueued. Meant for the single consumer (the push loop): an
    /// enqueue while it is busy leaves a permit, so the next wait returns at once.
    pub async fn wait_for_new(&self) {
        self.notify.notified().await;
    }

    /// The producer cursor last stored under `name`.
    pub fn producer_cursor(&self, name: &str) -> Result<Option<u64>, OutboxError> {
        Ok(self.inner().meta.cursors.get(name).copied())
    }

    /// The push checkpoint: every sequence up to it has been acknowledged by the tenant (0 = none).
    pub fn checkpoint(&self) -> Result<u64, OutboxError> {
        Ok(self.inner().state.checkpoint)
    }

    /// The last sequence ever enqueued (0 = none).
    pub fn last_seq(&self) -> Result<u64, OutboxError> {
        Ok(self.inner().next_seq.saturating_sub(1))
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
        let (from, blocks) = {
            let inner = self.inner();
            // Acknowledged entries are gone, as if pruned.
            let from = after.max(inner.state.checkpoint).saturating_add(1);
            let first = inner.blocks.partition_point(|b| b.end_seq() <= from);
            let mut covered = 0usize;
            let mut blocks = Vec::new();
            for b in inner.blocks.range(first..) {
                if covered >= limit {
                    break;
                }
                covered += b.end_seq().saturating_sub(from.max(b.first_seq)) as usize;
                blocks.push(b.clone());
            }
            (from, blocks)
        };
        let mut out = Vec::new();
        for b in &blocks {
            log::read_block(b, from, limit, &mut out)?;
        }
        Ok(out)
    }

    /// Number of entries not yet acknowledged.
    pub fn pending_len(&self) -> usize {
        let inner = self.inner();
        inner
            .next_seq
            .saturating_sub(1)
            .saturating_sub(inner.state.checkpoint) as usize
    }

    /// Advances the push checkpoint to `seq` and records `quarantined` objects in the quarantine
    /// log and the quarantined set, in ONE record of the state log, then fsyncs; then deletes the
    /// segments whose operations are all acknowledged.
    pub async fn acknowledge(
        &self,
        seq: u64,
        quarantined: &[QuarantinedObject],
    ) -> Result<(), OutboxError> {
        self.check_poison()?;
        self.check_space()?;
        let _ack = self.ack.lock().await;
        let (current, last) = {
            let inner = self.inner();
            (inner.state.checkpoint, inner.next_seq.saturating_sub(1))
        };
        if seq < current || seq > last {
            return Err(OutboxError::CheckpointOutOfRange {
                requested: seq,
                current,
                last,
            });
        }
        let record = StateRecord::Ack {
            checkpoint: seq,
            quarantined: quarantined.to_vec(),
        };
        let path = self.log_dir.join(state::FILE_NAME);
        let file = self
            .state_log()
            .append(&record)
            .map_err(|e| self.poison(e))?;
        sync_data(file, &path, &self.poisoned).await?;
        let doomed = {
            let mut inner = self.inner();
            inner.state.checkpoint = seq;
            for q in quarantined {
                inner
                    .state
                    .quarantined
                    .insert(q.source_anchor.clone(), q.clone());
            }
            inner.prune()
        };
        self.delete_segments(doomed);
        let mut state_log = self.state_log();
        if state_log.wants_compaction() {
            let snapshot = {
                let inner = self.inner();
                State {
                    checkpoint: inner.state.checkpoint,
                    quarantined: inner.state.quarantined.clone(),
                }
            };
            state_log.compact(&snapshot).map_err(|e| self.poison(e))?;
        }
        Ok(())
    }

    /// Removes an object from the quarantined set (a later operation for it succeeded). The
    /// release is written at once and made durable by the next acknowledgement's fsync.
    pub fn release_object(&self, anchor: &str) -> Result<bool, OutboxError> {
        self.check_poison()?;
        self.check_space()?;
        let mut state_log = self.state_log();
        if self.inner().state.quarantined.remove(anchor).is_none() {
            return Ok(false);
        }
        state_log
            .append(&StateRecord::Release {
                anchor: anchor.to_string(),
            })
            .map_err(|e| self.poison(e))?;
        Ok(true)
    }

    /// The objects currently quarantined, by source anchor.
    pub fn quarantined_objects(&self) -> Result<Vec<QuarantinedObject>, OutboxError> {
        Ok(self.inner().state.quarantined.values().cloned().collect())
    }

    /// Every quarantine recorded, oldest first, including objects released since (read from the
    /// state log; the provisioning log proper is projection's).
    pub fn quarantine_log(&self) -> Result<Vec<QuarantinedObject>, OutboxError> {
        self.state_log().read_log()
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
