//! The outbox's state log (`log/state.log`): the push checkpoint and the quarantine log and set,
//! as framed JSON records appended per acknowledgement and compacted into one snapshot once it
//! grows. Enters: acknowledgements and releases. Leaves: the checkpoint, the quarantined set, the
//! quarantine log. The format is documented in the module doc of [`crate::push`].

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::outbox::{OutboxError, QuarantinedObject};
use super::outbox_frame::{self as frame, io_error};

/// Magic of a state record.
pub const MAGIC: [u8; 4] = *b"CSOS";
/// The file's name in the log directory.
pub const FILE_NAME: &str = "state.log";
/// The log is compacted once it holds this many bytes and twice its last snapshot (plain
/// acknowledgements, ~50 bytes each, are what compaction drops; refusals stay in the log for good).
const COMPACT_BYTES: u64 = 1024 * 1024;

/// One record of the state log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StateRecord {
    /// The whole state: first record of the file after a compaction (or at creation).
    Snapshot {
        /// The push checkpoint.
        checkpoint: u64,
        /// Every quarantine ever recorded, oldest first.
        log: Vec<QuarantinedObject>,
        /// The source anchors of the objects quarantined now (each one's entry is its latest in
        /// `log`).
        quarantined: Vec<String>,
    },
    /// An acknowledgement: the new checkpoint and the objects it quarantined.
    Ack {
        /// The push checkpoint.
        checkpoint: u64,
        /// Objects quarantined by this acknowledgement (added to the log and the set).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        quarantined: Vec<QuarantinedObject>,
    },
    /// An object left the quarantined set.
    Release {
        /// Its source anchor.
        anchor: String,
    },
}

/// What the state log holds, replayed.
#[derive(Debug, Default)]
pub struct State {
    /// The push checkpoint.
    pub checkpoint: u64,
    /// The quarantined set by source anchor.
    pub quarantined: BTreeMap<String, QuarantinedObject>,
}

impl State {
    fn apply(&mut self, record: StateRecord) {
        match record {
            StateRecord::Snapshot {
                checkpoint,
                log,
                quarantined,
            } => {
                self.checkpoint = checkpoint;
                let anchors: std::collections::BTreeSet<String> = quarantined.into_iter().collect();
                self.quarantined.clear();
                for q in log {
                    if anchors.contains(&q.source_anchor) {
                        self.quarantined.insert(q.source_anchor.clone(), q);
                    }
                }
            }
            StateRecord::Ack {
                checkpoint,
                quarantined,
            } => {
                self.checkpoint = checkpoint;
                for q in quarantined {
                    self.quarantined.insert(q.source_anchor.clone(), q);
                }
            }
            StateRecord::Release { anchor } => {
                self.quarantined.remove(&anchor);
            }
        }
    }
}

/// The open state log.
#[derive(Debug)]
pub struct StateLog {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// The length right after the last compaction.
    base_len: u64,
}

fn encode(record: &StateRecord) -> Result<Vec<u8>, OutboxError> {
    let body = serde_json::to_vec(record).map_err(OutboxError::Encode)?;
    Ok(frame::frame(MAGIC, &body))
}

/// Writes a state log holding only `snapshot` at `path` (new file, 0600, fsynced).
pub fn create(path: &Path, snapshot: &StateRecord) -> Result<(), OutboxError> {
    let file = frame::create_private_file(path)?;
    file.write_all_at(&encode(snapshot)?, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

impl StateLog {
    /// Opens the state log in `log_dir` and replays it (a torn last record is truncated away).
    pub fn open(log_dir: &Path) -> Result<(StateLog, State), OutboxError> {
        let path = log_dir.join(FILE_NAME);
        let file = frame::open_rw(&path)?;
        let mut state = State::default();
        let len = frame::scan(&file, &path, MAGIC, true, |_, body| {
            let record: StateRecord =
                serde_json::from_slice(body).map_err(|e| format!("state record: {e}"))?;
            state.apply(record);
            Ok(())
        })?;
        Ok((
            StateLog {
                path,
                file: Arc::new(file),
                len,
                base_len: len,
            },
            state,
        ))
    }

    /// Appends `record` (not yet durable: fsync the returned file for that).
    pub fn append(&mut self, record: &StateRecord) -> Result<Arc<File>, OutboxError> {
        let bytes = encode(record)?;
        self.file
            .write_all_at(&bytes, self.len)
            .map_err(|e| io_error(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(self.file.clone())
    }

    /// Every quarantine recorded, oldest first.
    pub fn read_log(&self) -> Result<Vec<QuarantinedObject>, OutboxError> {
        let mut log = Vec::new();
        frame::scan(&self.file, &self.path, MAGIC, false, |_, body| {
            let record: StateRecord =
                serde_json::from_slice(body).map_err(|e| format!("state record: {e}"))?;
            match record {
                StateRecord::Snapshot { log: l, .. } => log.extend(l),
                StateRecord::Ack { quarantined, .. } => log.extend(quarantined),
                StateRecord::Release { .. } => {}
            }
            Ok(())
        })?;
        Ok(log)
    }

    /// Whether the log has grown enough to be compacted.
    pub fn wants_compaction(&self) -> bool {
        self.len > COMPACT_BYTES.max(2 * self.base_len)
    }

    /// Replaces the log by one snapshot of `state` (written beside it, fsynced, renamed over it).
    pub fn compact(&mut self, state: &State) -> Result<(), OutboxError> {
        let snapshot = StateRecord::Snapshot {
            checkpoint: state.checkpoint,
            log: self.read_log()?,
            quarantined: state.quarantined.keys().cloned().collect(),
        };
        let bytes = encode(&snapshot)?;
        cloudsync_private_fs::write_atomic(&self.path, &bytes, 0o600)
            .map_err(|e| io_error(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            frame::sync_dir(dir)?;
        }
        self.file = Arc::new(frame::open_rw(&self.path)?);
        self.len = bytes.len() as u64;
        self.base_len = self.len;
        Ok(())
    }
}
