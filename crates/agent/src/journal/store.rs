//! The journal handle: open, atomic append with group commit, ordered reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::codec::{self, RecordType, StoredCheckpoint, StoredEventRef};
use super::open::open_db;
use super::{AppendAck, Checkpoint, FORMAT_VERSION, JournalError, JournalOptions, recovery};
use crate::event::Event;

/// The sled tree holding all journal entries (the migrations crate creates it).
pub(super) const JOURNAL_TREE: &str = cloudsync_migrations::v1::JOURNAL_TREE;

/// A handle on one journal directory. Cheap to clone; all clones share one database and one writer.
#[derive(Clone)]
pub struct Journal {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("last_seq", &self.last_seq())
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

pub(super) struct Inner {
    pub dir: PathBuf,
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub opts: JournalOptions,
    /// Serialises sequence assignment with batch application, so seq order is log order.
    pub writer: Mutex<WriterState>,
    /// Held while flushing; holds the writer generation the last successful flush covered.
    pub flushed_generation: Mutex<u64>,
    /// The highest sequence number that is durable (0: none); the bound for readers and cursors.
    pub durable_seq: AtomicU64,
    pub poisoned: AtomicBool,
}

pub(super) struct WriterState {
    /// The last sequence number assigned (the high-water mark).
    pub last_seq: u64,
    /// Counts applied batches; a flush started after generation `g` was applied covers `g`.
    pub generation: u64,
}

/// Locks a mutex, ignoring std's poison flag: the guarded data are counters that stay consistent, and the
/// journal has its own poisoning for failed I/O.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Journal {
    /// Opens the journal in `dir`, creating the directory (mode 0700) and the journal if missing, migrating an
    /// older format, and recovering a corrupt tail record (see the module doc).
    pub fn open(dir: &Path, opts: JournalOptions) -> Result<Journal, JournalError> {
        Self::open_inner(dir, opts).map_err(|e| e.in_dir(dir))
    }

    fn open_inner(dir: &Path, opts: JournalOptions) -> Result<Journal, JournalError> {
        if !dir.exists() {
            create_private_dir(dir).map_err(|e| JournalError::Storage(sled::Error::Io(e)))?;
        } else if let Ok(meta) = std::fs::metadata(dir) {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                // The journal holds DNs and salted password hashes: other local users should not read it.
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format!("{mode:o}"),
                    "The journal directory is accessible to other users; chmod 700 it."
                );
            }
        }
        let db = open_db(
            sled::Config::new()
                .path(dir)
                .cache_capacity(opts.cache_capacity_bytes),
            dir,
        )?;
        let migrated = cloudsync_migrations::migrate(&db, FORMAT_VERSION)
            .map_err(|e| map_migration(dir, e))?;
        if migrated.from == 0 {
            tracing::info!(dir = %dir.display(), format_version = migrated.to, "Journal created.");
        } else if !migrated.steps.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                from = migrated.from,
                to = migrated.to,
                steps = ?migrated.steps,
                "Journal format migrated."
            );
        }
        let tree = db.open_tree(JOURNAL_TREE)?;
        let high_water = recovery::recover_tail(&tree)?;
        Ok(Journal::from_parts(dir, db, tree, opts, high_water))
    }

    /// Opens an existing journal for tooling: never creates, migrates or repairs anything. A missing
    /// directory, a directory without a journal, or a journal of another format version is a clear error.
    pub fn open_existing(dir: &Path) -> Result<Journal, JournalError> {
        Self::open_existing_inner(dir).map_err(|e| e.in_dir(dir))
    }

    fn open_existing_inner(dir: &Path) -> Result<Journal, JournalError> {
        if !dir.exists() {
            return Err(JournalError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        if !dir.is_dir() {
            return Err(JournalError::NotAJournal {
                dir: dir.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        if !dir.join("conf").is_file() || !dir.join("db").is_file() {
            return Err(JournalError::NotAJournal {
                dir: dir.to_path_buf(),
                reason: "no sled database files (`conf`, `db`) in it".into(),
            });
        }
        let db = open_db(sled::Config::new().path(dir), dir)?;
        cloudsync_migrations::check(&db, FORMAT_VERSION).map_err(|e| map_migration(dir, e))?;
        let tree = db.open_tree(JOURNAL_TREE)?;
        // Tooling reads everything present, including a tail that `open` would drop and past a corrupt
        // high-water mark, so that `verify` can report them.
        let high_water = recovery::read_high_water(&tree).unwrap_or(0);
        let last_present = recovery::last_event_seq(&tree)?.unwrap_or(0);
        Ok(Journal::from_parts(
            dir,
            db,
            tree,
            JournalOptions::default(),
            high_water.max(last_present),
        ))
    }

    fn from_parts(
        dir: &Path,
        db: sled::Db,
        tree: sled::Tree,
        opts: JournalOptions,
        high_water: u64,
    ) -> Journal {
        Journal {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db,
                tree,
                opts,
                writer: Mutex::new(WriterState {
                    last_seq: high_water,
                    generation: 0,
                }),
                flushed_generation: Mutex::new(0),
                durable_seq: AtomicU64::new(high_water),
                poisoned: AtomicBool::new(false),
            }),
        }
    }

    /// Appends `events` (which get consecutive sequence numbers) and the optional checkpoint that covers
    /// them as one atomic write, and returns once they are durable (durability contract, module doc).
    pub fn append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<AppendAck, JournalError> {
        self.check_poisoned()?;
        if events.is_empty() && checkpoint.is_none() {
            return Ok(AppendAck {
                first_seq: None,
                last_seq: None,
            });
        }
        // Encoding is the expensive part and needs no sequence number: do it outside the writer lock, into
        // one buffer (sled copies each record out of it).
        let now = unix_ms();
        let mut buffer = Vec::with_capacity(events.len() * 384);
        let mut values = Vec::with_capacity(events.len());
        for event in &events {
            values.push(codec::seal_into(
                &mut buffer,
                RecordType::Event,
                &StoredEventRef {
                    appended_at_unix_ms: now,
                    event,
                },
            )?);
        }
        drop(events);
        let count = values.len() as u64;
        let mut ack = AppendAck {
            first_seq: None,
            last_seq: None,
        };
        let generation = self.commit(|state, batch| {
            let first = state.last_seq + 1;
            let last = state.last_seq + count;
            for (seq, range) in (first..).zip(values) {
                batch.insert(&codec::event_key(seq), &buffer[range]);
            }
            if count > 0 {
                batch.insert(
                    codec::HIGH_WATER_KEY,
                    codec::seal(RecordType::HighWater, &last)?,
                );
                ack = AppendAck {
                    first_seq: Some(first),
                    last_seq: Some(last),
                };
            }
            if let Some(cp) = checkpoint {
                let key = codec::checkpoint_key(&cp.domain, cp.source);
                let stored = StoredCheckpoint {
                    domain: cp.domain,
                    source: cp.source,
                    data: cp.data,
                    covers_seq: last,
                };
                batch.insert(key, codec::seal(RecordType::Checkpoint, &stored)?);
            }
            state.last_seq = last;
            Ok(())
        })?;
        self.wait_durable(generation)?;
        Ok(ack)
    }

    /// [`Journal::append`] on tokio's blocking pool, so the async runtime's workers never wait on a flush.
    pub async fn append_async(
        &self,
        events: Vec<Event>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<AppendAck, JournalError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append(events, checkpoint))
            .await
            .map_err(JournalError::Task)?
    }

    /// Builds a batch under the writer lock, applies it atomically and bumps the generation. Returns the
    /// generation to pass to [`Journal::wait_durable`]. A failed apply poisons the handle.
    pub(super) fn commit(
        &self,
        build: impl FnOnce(&mut WriterState, &mut sled::Batch) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let mut state = lock(&self.inner.writer);
        self.check_poisoned()?;
        self.check_space()?;
        let mut batch = sled::Batch::default();
        let saved = state.last_seq;
        if let Err(e) = build(&mut state, &mut batch) {
            state.last_seq = saved;
            return Err(e);
        }
        if let Err(e) = self.inner.tree.apply_batch(batch) {
            state.last_seq = saved;
            self.poison("apply", &e);
            return Err(e.into());
        }
        state.generation += 1;
        Ok(state.generation)
    }

    /// Group commit: returns once a flush that started after `generation` was applied has succeeded.
    pub(super) fn wait_durable(&self, generation: u64) -> Result<(), JournalError> {
        let mut flushed = lock(&self.inner.flushed_generation);
        if *flushed >= generation {
            return Ok(());
        }
        // A flush by someone else failed while we queued: our batch's fate is unknown.
        self.check_poisoned()?;
        let (covers, last_seq) = {
            let state = lock(&self.inner.writer);
            (state.generation, state.last_seq)
        };
        if let Err(e) = self.inner.db.flush() {
            self.poison("flush", &e);
            return Err(e.into());
        }
        *flushed = covers;
        self.inner.durable_seq.fetch_max(last_seq, Ordering::AcqRel);
        Ok(())
    }

    /// Refuses a write while the journal's file system has less than
    /// [`JournalOptions::min_free_bytes`] free (durability contract, step 6). A `statvfs` that fails
    /// says nothing about space: the write goes ahead, and its own error, if any, poisons.
    fn check_space(&self) -> Result<(), JournalError> {
        let reserve = self.inner.opts.min_free_bytes;
        if reserve == 0 {
            return Ok(());
        }
        let Ok(st) = rustix::fs::statvfs(&self.inner.dir) else {
            return Ok(());
        };
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        if available < reserve {
            return Err(JournalError::DiskFull {
                dir: self.inner.dir.clone(),
                available,
                reserve,
            });
        }
        Ok(())
    }

    fn poison(&self, what: &'static str, err: &sled::Error) {
        self.inner.poisoned.store(true, Ordering::Release);
        tracing::error!(
            dir = %self.inner.dir.display(),
            operation = what,
            error = %err,
            "Journal write failed; the handle is poisoned and refuses further writes."
        );
    }

    pub(super) fn check_poisoned(&self) -> Result<(), JournalError> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            Err(JournalError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// True after a failed write or flush (see [`JournalError::Poisoned`]).
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// The highest durable sequence number, `None` for a journal that never held an event.
    pub fn last_seq(&self) -> Option<u64> {
        match self.inner.durable_seq.load(Ordering::Acquire) {
            0 => None,
            seq => Some(seq),
        }
    }

    /// The lowest sequence number still stored (`None` when no record is stored).
    pub fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        recovery::first_event_seq(&self.inner.tree)
    }

    /// Makes an EMPTY journal continue after `seq`: the next append gets `seq + 1` (the high-water
    /// mark is written and flushed). Used by `cloudsync journal rebuild`, so that a journal rebuilt
    /// from AD gives objects versions (= sequence numbers) above every one the old journal produced
    /// and the tenant does not drop the new writes as stale.
    pub fn start_after(&self, seq: u64) -> Result<(), JournalError> {
        self.check_poisoned()?;
        let mut writer = lock(&self.inner.writer);
        if writer.last_seq != 0 || recovery::last_event_seq(&self.inner.tree)?.is_some() {
            return Err(JournalError::NotEmpty {
                dir: self.inner.dir.clone(),
            });
        }
        self.inner.tree.insert(
            codec::HIGH_WATER_KEY,
            codec::seal(RecordType::HighWater, &seq)?,
        )?;
        self.inner.db.flush()?;
        writer.last_seq = seq;
        self.inner.durable_seq.store(seq, Ordering::Release);
        Ok(())
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// sled's estimate of the database's size on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, JournalError> {
        Ok(self.inner.db.size_on_disk()?)
    }
}

fn map_migration(dir: &Path, err: cloudsync_migrations::MigrationError) -> JournalError {
    match err {
        cloudsync_migrations::MigrationError::NotAJournal { reason } => JournalError::NotAJournal {
            dir: dir.to_path_buf(),
            reason,
        },
        // Damage found while reading the version marker is damage, not a migration problem.
        cloudsync_migrations::MigrationError::Storage(e) => JournalError::from(e).in_dir(dir),
        other => JournalError::Migration(other),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
