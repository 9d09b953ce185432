//! Projection's own durable store (sled, next to the journal): the state snapshot, the staged deletes and
//! the provisioning log.
//!
//! # On-disk format
//! The state snapshot is a file beside sled's, `state.snapshot` (mode 0600), written streaming and
//! replaced atomically (a temporary file, fsync, rename, fsync of the directory):
//! `magic "CSPS" ‖ version u16 LE = 6 ‖ seq u64 LE ‖ meta_len u32 LE ‖ JSON of [`SnapshotMeta`]
//! (meta_len bytes) ‖ bincode-standard([`State`]) ‖ crc32c u32 LE of everything before it`.
//! Neither writing nor reading holds the encoded state: a million objects' state is a few hundred MiB,
//! and the sled value it was until version 5 took three copies of it (the encoding, the envelope and
//! sled's own) on every snapshot. Reading checks the checksum in a first streaming pass, then decodes.
//! The meta records the attribute table's names the object blobs are stored under, each domain's
//! settings fingerprint and the domains whose configuration change is still being applied, so that a
//! start with another configuration remaps the values ([`super::state::State::remap_attributes`]) and
//! re-reads the domains whose settings changed, instead of misreading the blobs under shifted ids.
//!
//! Trees of one sled database:
//! - `snapshot`: the snapshot of versions 4 and 5, read when there is no file (an upgrade), removed by
//!   the first file written: key `state` → `{ magic "CSPS", version u16 LE = 5, crc32c u32 LE of body,
//!   body }`, where body = `seq u64 LE` ‖ `meta_len u32 LE` ‖ meta JSON ‖ bincode-standard([`State`]).
//!   Version 4 (no meta: `seq` ‖ state) is read as written under the current table (what cloudsync
//!   before version 5 assumed); older versions are dropped (the state is rebuilt from the journal); a
//!   newer one is refused.
//! - `staged`: key `domain 0x00 anchor` → JSON of the staged delete ([`StagedDelete`]).
//! - `provlog`: see [`super::provlog`].
//! - `cloud`: key `settings` → JSON of the tenant's settings last accepted per domain
//!   (`BTreeMap<domain, `[`super::cloud::DomainSettings`]`>`), so that a start without the tenant keeps
//!   them (`crate::runtime::cloud_config`).
//!
//! # Restart contract (numbered, as the runner follows it)
//! 1. A snapshot at sequence S is written only after every operation from events ≤ S is in the outbox,
//!    and the journal cursor `projection` is then set to S, so the journal keeps every event after S.
//! 2. On start the runner loads the snapshot (or starts empty at S = 0) and reads the outbox's producer
//!    cursor C ≥ S. Events in (S, C] are projected again with their operations discarded (they are already
//!    in the outbox; projection is deterministic so the state comes out the same).
//! 3. Events after C are projected and their operations enqueued together with the new cursor in one
//!    atomic outbox write. Staged deletes are written (and flushed) before that enqueue, keyed by anchor,
//!    so a crash in between stages them again harmlessly.

use serde::{Deserialize, Serialize};

use super::provlog::ProvLog;
use super::state::State;
use super::state::snapshot::StateError;

const MAGIC: &[u8; 4] = b"CSPS";
/// The snapshot file's version.
const FILE_VERSION: u16 = 6;
/// The file holding the snapshot, in the store's directory.
pub const SNAPSHOT_FILE: &str = "state.snapshot";
/// The last version kept in sled, still read.
const VERSION: u16 = 5;
/// The last version without [`SnapshotMeta`], still read.
const VERSION_NO_META: u16 = 4;

/// What a snapshot records about the configuration it was projected under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMeta {
    /// The attribute table's names in id order ([`super::state::attr_table::AttrTable::names`]).
    pub table: Vec<String>,
    /// Per domain (lower-case DNS name): the settings fingerprint
    /// ([`super::config::Compiled::fingerprint`]).
    pub settings: std::collections::BTreeMap<String, String>,
    /// Domains whose configuration change was still being applied (their re-read not complete),
    /// with the provisioning log's reason: a restart mid-re-read keeps evaluating every object.
    #[serde(default)]
    pub pending: std::collections::BTreeMap<String, String>,
}
const SNAPSHOT_KEY: &[u8] = b"state";

/// Errors of the projection store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("projection store: {0}")]
    Sled(#[from] sled::Error),
    /// The snapshot file could not be written or read.
    #[error("projection snapshot file: {0}")]
    Io(#[from] std::io::Error),
    /// The snapshot's envelope is wrong (magic, version, length or checksum).
    #[error("projection snapshot envelope: {0}")]
    Envelope(&'static str),
    /// The snapshot body does not decode.
    #[error(transparent)]
    State(#[from] StateError),
    /// The snapshot's meta, or the stored cloud settings, do not encode or decode.
    #[error("projection snapshot meta or cloud settings: {0}")]
    Meta(#[source] serde_json::Error),
    /// A staged delete does not decode.
    #[error("corrupt staged delete: {0}")]
    Staged(#[from] serde_json::Error),
}

impl StoreError {
    /// Whether a retry can succeed (I/O only). A corrupt snapshot is not retriable; delete it and the
    /// runner rebuilds the state from the journal (if the journal still starts at sequence 1).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_)) | StoreError::Io(_)
        )
    }
}

/// A delete held back by the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedDelete {
    /// The AD domain.
    pub domain: String,
    /// The journal sequence that produced it.
    pub origin_seq: u64,
    /// The delete operation.
    pub operation: cloudsync_api::ops::Operation,
}

/// The largest snapshot meta read (the attribute names and per-domain fingerprints: a few KiB).
const META_LIMIT: usize = 16 * 1024 * 1024;

/// A writer that computes the crc32c of what passes through it.
struct Crc32c<W> {
    inner: W,
    crc: u32,
}

impl<W: std::io::Write> Crc32c<W> {
    fn new(inner: W) -> Self {
        Crc32c { inner, crc: 0 }
    }

    fn finish(self) -> (W, u32) {
        (self.inner, self.crc)
    }
}

impl<W: std::io::Write> std::io::Write for Crc32c<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The projection store.
#[derive(Debug, Clone)]
pub struct ProjectionStore {
    dir: std::path::PathBuf,
    db: sled::Db,
    snapshot: sled::Tree,
    staged: sled::Tree,
    cloud: sled::Tree,
    provlog: ProvLog,
}

/// sled's page cache for the store (its default is 1 GiB per database, which a large directory's
/// provisioning log fills: `docs/bench.md` § Where the memory goes). Reads here are the staged
/// deletes, the settings and one snapshot at start; the rest is appended, so a small cache costs
/// nothing measurable.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long [`ProjectionStore::open`] waits for a file lock a just-dropped handle still holds.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl ProjectionStore {
    /// Opens (creating) the store in `dir`. sled releases a dropped handle's file lock
    /// asynchronously, so a lock conflict is retried for up to [`LOCK_WAIT`] (blocking the calling
    /// thread, once at start) like the journal and the outbox do, then returned.
    pub fn open(dir: &std::path::Path) -> Result<ProjectionStore, StoreError> {
        // 0700 even without the binary's umask: the snapshot holds salted password hashes.
        cloudsync_private_fs::create_private_dir(dir).map_err(sled::Error::Io)?;
        let db = cloudsync_private_fs::lock::open_waiting_for_lock(
            LOCK_WAIT,
            || {
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(CACHE_BYTES)
                    .open()
            },
            |e| matches!(e, sled::Error::Io(io) if cloudsync_private_fs::lock::is_lock_conflict(io)),
        )?;
        Ok(ProjectionStore {
            dir: dir.to_path_buf(),
            snapshot: db.open_tree("snapshot")?,
            staged: db.open_tree("staged")?,
            cloud: db.open_tree("cloud")?,
            provlog: ProvLog::new(db.open_tree("provlog")?),
            db,
        })
    }

    /// The provisioning log.
    pub fn provlog(&self) -> &ProvLog {
        &self.provlog
    }

    /// Writes the snapshot of `state` (which covers events up to `state.last_seq`) with the
    /// configuration it was projected under, streaming, and replaces the previous one atomically.
    pub fn save_snapshot(&self, state: &State, meta: &SnapshotMeta) -> Result<(), StoreError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.dir.join(SNAPSHOT_FILE);
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let meta = serde_json::to_vec(meta).map_err(StoreError::Meta)?;
        let meta_len = u32::try_from(meta.len())
            .map_err(|_| StoreError::Envelope("snapshot meta too large"))?;
        let _ = std::fs::remove_file(&tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut w = Crc32c::new(std::io::BufWriter::with_capacity(1 << 20, file));
        w.write_all(MAGIC)?;
        w.write_all(&FILE_VERSION.to_le_bytes())?;
        w.write_all(&state.last_seq.to_le_bytes())?;
        w.write_all(&meta_len.to_le_bytes())?;
        w.write_all(&meta)?;
        state.encode_into(&mut w)?;
        let (mut buffered, crc) = w.finish();
        buffered.write_all(&crc.to_le_bytes())?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        // An upgrade's snapshot in sled is now older than the file: drop it.
        if self.snapshot.remove(SNAPSHOT_KEY)?.is_some() {
            self.db.flush()?;
        }
        Ok(())
    }

    /// The snapshot file, open, with its length, if there is one.
    fn snapshot_file(&self) -> Result<Option<(std::fs::File, u64)>, StoreError> {
        match std::fs::File::open(self.dir.join(SNAPSHOT_FILE)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the file's header from `r`: the sequence and the meta.
    fn read_file_header(r: &mut impl std::io::Read) -> Result<(u64, SnapshotMeta), StoreError> {
        let mut head = [0u8; 18];
        r.read_exact(&mut head)
            .map_err(|_| StoreError::Envelope("snapshot file too short"))?;
        if &head[..4] != MAGIC {
            return Err(StoreError::Envelope("bad magic"));
        }
        let version = u16::from_le_bytes([head[4], head[5]]);
        if version > FILE_VERSION {
            return Err(StoreError::Envelope(
                "written by a newer cloudsync (unknown version)",
            ));
        }
        if version < FILE_VERSION {
            return Err(StoreError::Envelope("unknown snapshot file version"));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&head[6..14]);
        let meta_len = u32::from_le_bytes([head[14], head[15], head[16], head[17]]);
        let meta_len = usize::try_from(meta_len)
            .ok()
            .filter(|&l| l <= META_LIMIT)
            .ok_or(StoreError::Envelope("snapshot meta too large"))?;
        let mut meta = vec![0u8; meta_len];
        r.read_exact(&mut meta)
            .map_err(|_| StoreError::Envelope("snapshot meta truncated"))?;
        let meta: SnapshotMeta = serde_json::from_slice(&meta).map_err(StoreError::Meta)?;
        Ok((u64::from_le_bytes(seq), meta))
    }

    /// The last snapshot, if any, with its meta (`None` for a version-4 snapshot, which has none).
    pub fn load_snapshot(&self) -> Result<Option<(State, Option<SnapshotMeta>)>, StoreError> {
        use std::io::{Read as _, Seek as _};
        let Some((mut file, len)) = self.snapshot_file()? else {
            return self.load_sled_snapshot();
        };
        // Pass 1: the checksum, so that a damaged file is refused before anything decodes it.
        let body = len
            .checked_sub(4)
            .filter(|&b| b >= 18)
            .ok_or(StoreError::Envelope("snapshot file too short"))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut file);
        let mut crc = 0u32;
        let mut left = body;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = reader.read(&mut buf[..want])?;
            if got == 0 {
                return Err(StoreError::Envelope("snapshot file truncated"));
            }
            crc = crc32c::crc32c_append(crc, &buf[..got]);
            left -= got as u64;
        }
        let mut stored = [0u8; 4];
        reader
            .read_exact(&mut stored)
            .map_err(|_| StoreError::Envelope("snapshot file truncated"))?;
        if u32::from_le_bytes(stored) != crc {
            return Err(StoreError::Envelope("checksum mismatch"));
        }
        drop(reader);
        // Pass 2: decode, exactly the body.
        file.rewind()?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut file).take(body);
        let (seq, meta) = Self::read_file_header(&mut reader)?;
        let state = State::decode_from(&mut reader)?;
        if reader.limit() != 0 {
            return Err(StoreError::Envelope("snapshot file has trailing bytes"));
        }
        if state.last_seq != seq {
            return Err(StoreError::Envelope(
                "snapshot sequence disagrees with its state",
            ));
        }
        Ok(Some((state, Some(meta))))
    }

    /// The snapshot of versions 4 and 5, kept in sled (before an upgrade writes the file).
    fn load_sled_snapshot(&self) -> Result<Option<(State, Option<SnapshotMeta>)>, StoreError> {
        let Some(v) = self.snapshot.get(SNAPSHOT_KEY)? else {
            return Ok(None);
        };
        if v.len() < 18 || &v[..4] != MAGIC {
            return Err(StoreError::Envelope("bad magic or too short"));
        }
        let version = u16::from_le_bytes([v[4], v[5]]);
        if version > VERSION {
            return Err(StoreError::Envelope(
                "written by a newer cloudsync (unknown version)",
            ));
        }
        if version < VERSION_NO_META {
            // The state is derived data: an older layout is dropped and rebuilt from the journal (the
            // runner reports a JournalGap if the journal no longer starts at the beginning).
            tracing::warn!(
                found = version,
                current = FILE_VERSION,
                "Projection snapshot has an older format; rebuilding the state from the journal."
            );
            return Ok(None);
        }
        let crc = u32::from_le_bytes([v[6], v[7], v[8], v[9]]);
        let body = &v[10..];
        if crc32c::crc32c(body) != crc {
            return Err(StoreError::Envelope("checksum mismatch"));
        }
        let rest = &body[8..];
        if version == VERSION_NO_META {
            return Ok(Some((State::from_bytes(rest)?, None)));
        }
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(StoreError::Envelope("snapshot meta length missing"))?;
        let len = usize::try_from(u32::from_le_bytes(*len))
            .map_err(|_| StoreError::Envelope("snapshot meta too large"))?;
        if rest.len() < len {
            return Err(StoreError::Envelope("snapshot meta truncated"));
        }
        let (meta, state) = rest.split_at(len);
        let meta: SnapshotMeta = serde_json::from_slice(meta).map_err(StoreError::Meta)?;
        Ok(Some((State::from_bytes(state)?, Some(meta))))
    }

    /// The tenant's settings last accepted, per domain (empty before the first).
    pub fn cloud_settings(
        &self,
    ) -> Result<std::collections::BTreeMap<String, super::cloud::DomainSettings>, StoreError> {
        match self.cloud.get(b"settings")? {
            Some(v) => serde_json::from_slice(&v).map_err(StoreError::Meta),
            None => Ok(Default::default()),
        }
    }

    /// Records the tenant's settings accepted per domain, and flushes.
    pub fn save_cloud_settings(
        &self,
        settings: &std::collections::BTreeMap<String, super::cloud::DomainSettings>,
    ) -> Result<(), StoreError> {
        let v = serde_json::to_vec(settings).map_err(StoreError::Meta)?;
        self.cloud.insert(b"settings", v)?;
        self.db.flush()?;
        Ok(())
    }

    /// The meta of the last snapshot, without decoding the state (`None`: no snapshot, or one
    /// without meta).
    pub fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StoreError> {
        if let Some((file, _)) = self.snapshot_file()? {
            let mut reader = std::io::BufReader::new(file);
            return Ok(Some(Self::read_file_header(&mut reader)?.1));
        }
        let Some(v) = self.snapshot.get(SNAPSHOT_KEY)? else {
            return Ok(None);
        };
        if v.len() < 22 || &v[..4] != MAGIC || u16::from_le_bytes([v[4], v[5]]) != VERSION {
            return Ok(None);
        }
        let len = u32::from_le_bytes([v[18], v[19], v[20], v[21]]);
        let len =
            usize::try_from(len).map_err(|_| StoreError::Envelope("snapshot meta too large"))?;
        let meta = v
            .get(22..22usize.saturating_add(len))
            .ok_or(StoreError::Envelope("snapshot meta truncated"))?;
        Ok(Some(
            serde_json::from_slice(meta).map_err(StoreError::Meta)?,
        ))
    }

    /// Stages deletes (idempotent per domain and anchor) and flushes.
    pub fn stage(&self, deletes: &[StagedDelete]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for d in deletes {
            let mut key = d.domain.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(d.operation.source_anchor().as_bytes());
            batch.insert(key, serde_json::to_vec(d)?);
        }
        self.staged.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every staged delete, by domain and anchor.
    pub fn staged(&self) -> Result<Vec<StagedDelete>, StoreError> {
        self.staged
            .iter()
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
    }

    /// Removes and returns the staged deletes (of `domain`, or all), ordered by origin sequence, for the
    /// caller to enqueue. Call [`ProjectionStore::forget_staged`] after the enqueue is durable.
    pub fn take_staged(&self, domain: Option<&str>) -> Result<Vec<StagedDelete>, StoreError> {
        let mut all: Vec<StagedDelete> = self
            .staged()?
            .into_iter()
            .filter(|d| domain.is_none_or(|x| x == d.domain))
            .collect();
        all.sort_by_key(|d| d.origin_seq);
        Ok(all)
    }

    /// Forgets staged deletes once they were enqueued.
    pub fn forget_staged(&self, deletes: &[StagedDelete]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for d in deletes {
            let mut key = d.domain.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(d.operation.source_anchor().as_bytes());
            batch.remove(key);
        }
        self.staged.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::ops::{ObjectKind, Operation};

    /// A reopen right after another handle is dropped (a restart, a test's reboot) waits for sled to
    /// let go of the file lock instead of failing with `WouldBlock` (projection_runner flaked on it).
    #[test]
    fn a_reopen_waits_for_the_lock_a_dropped_handle_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let held = ProjectionStore::open(dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let reopened = ProjectionStore::open(dir.path());
        release.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    /// Writes a snapshot as cloudsync before the file did: a sled value under `version`.
    fn save_in_sled(store: &ProjectionStore, state: &State, meta: &SnapshotMeta, version: u16) {
        let mut body = state.last_seq.to_le_bytes().to_vec();
        let meta = serde_json::to_vec(meta).unwrap();
        body.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        body.extend(meta);
        body.extend(state.to_bytes().unwrap());
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        v.extend(body);
        store.snapshot.insert(SNAPSHOT_KEY, v).unwrap();
    }

    fn sample() -> (State, SnapshotMeta) {
        let mut state = State::default();
        state.domain_id("corp.test");
        state.last_seq = 42;
        let meta = SnapshotMeta {
            table: vec!["cn".into(), "title".into()],
            ..SnapshotMeta::default()
        };
        (state, meta)
    }

    #[test]
    fn snapshot_round_trip_and_corruption_is_detected() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        assert!(store.load_snapshot().unwrap().is_none());
        let (state, meta) = sample();
        store.save_snapshot(&state, &meta).unwrap();
        let file = dir.path().join(SNAPSHOT_FILE);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.snapshot_meta().unwrap(), Some(meta.clone()));
        assert_eq!(
            store.load_snapshot().unwrap(),
            Some((state.clone(), Some(meta.clone())))
        );
        let good = std::fs::read(&file).unwrap();
        // A flipped bit in any byte is caught by the checksum (nothing reaches the decoder).
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&file, &bad).unwrap();
            assert!(
                matches!(
                    store.load_snapshot(),
                    Err(StoreError::Envelope("checksum mismatch"))
                ),
                "byte {i}"
            );
        }
        // Every truncation is refused, none panics.
        for len in 0..good.len() {
            std::fs::write(&file, &good[..len]).unwrap();
            assert!(
                matches!(store.load_snapshot(), Err(StoreError::Envelope(_))),
                "{len} bytes"
            );
        }
        std::fs::write(&file, &good).unwrap();
        assert!(store.load_snapshot().unwrap().is_some());
    }

    #[test]
    fn a_snapshot_kept_in_sled_is_read_until_the_first_file_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let (state, meta) = sample();
        save_in_sled(&store, &state, &meta, VERSION);
        assert_eq!(store.snapshot_meta().unwrap(), Some(meta.clone()));
        assert_eq!(
            store.load_snapshot().unwrap(),
            Some((state.clone(), Some(meta.clone())))
        );
        let mut newer = state.clone();
        newer.last_seq = 43;
        store.save_snapshot(&newer, &meta).unwrap();
        assert!(store.snapshot.get(SNAPSHOT_KEY).unwrap().is_none());
        assert_eq!(store.load_snapshot().unwrap().unwrap().0.last_seq, 43);
    }

    #[test]
    fn an_older_snapshot_is_rebuilt_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let mut state = State::default();
        state.last_seq = 7;
        save_in_sled(
            &store,
            &state,
            &SnapshotMeta::default(),
            VERSION_NO_META - 1,
        );
        assert_eq!(store.load_snapshot().unwrap(), None);
        save_in_sled(&store, &state, &SnapshotMeta::default(), VERSION + 1);
        assert!(matches!(
            store.load_snapshot(),
            Err(StoreError::Envelope(m)) if m.contains("newer")
        ));
        // A file of a newer version (checksum intact) is refused too.
        store
            .save_snapshot(&state, &SnapshotMeta::default())
            .unwrap();
        let file = dir.path().join(SNAPSHOT_FILE);
        let mut raw = std::fs::read(&file).unwrap();
        raw[4..6].copy_from_slice(&(FILE_VERSION + 1).to_le_bytes());
        let body = raw.len() - 4;
        let crc = crc32c::crc32c(&raw[..body]).to_le_bytes();
        raw[body..].copy_from_slice(&crc);
        std::fs::write(&file, &raw).unwrap();
        assert!(matches!(
            store.load_snapshot(),
            Err(StoreError::Envelope(m)) if m.contains("newer")
        ));
    }

    #[test]
    fn staging_is_idempotent_and_releasable() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let d = |dom: &str, a: &str, seq| StagedDelete {
            domain: dom.into(),
            origin_seq: seq,
            operation: Operation::Delete {
                kind: ObjectKind::User,
                source_anchor: a.into(),
                version: seq,
            },
        };
        store
            .stage(&[d("x", "a1", 5), d("x", "a2", 3), d("y", "a1", 9)])
            .unwrap();
        store.stage(&[d("x", "a1", 5)]).unwrap();
        assert_eq!(store.staged().unwrap().len(), 3);
        let x = store.take_staged(Some("x")).unwrap();
        assert_eq!(
            x.iter().map(|d| d.origin_seq).collect::<Vec<_>>(),
            vec![3, 5]
        );
        store.forget_staged(&x).unwrap();
        assert_eq!(store.staged().unwrap().len(), 1);
    }
}
