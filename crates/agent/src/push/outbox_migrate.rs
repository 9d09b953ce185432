//! Migration of an outbox of format 1 (a sled database: trees `ops`, `meta`, `provisioning_log`,
//! `quarantined`) to the segmented log. Enters: the outbox directory holding sled's files.
//! Leaves: a complete log directory at a temporary path (the caller renames it in), then, once it
//! is in place, the sled files removed.
//!
//! Only what is still pending moves: operations above the push checkpoint, the next sequence,
//! every producer cursor and lease epoch, the quarantine log and the quarantined set.

use std::os::unix::fs::FileExt;
use std::path::Path;

use cloudsync_private_fs::lock::{is_lock_conflict, open_waiting_for_lock};

use super::envelope;
use super::outbox::{LOCK_WAIT, OutboxError, QuarantinedObject};
use super::outbox_frame::{self as frame, corrupt, io_error};
use super::outbox_log::{self as log, RecordMeta};
use super::outbox_state::{self as state, StateRecord};

/// Operations per record written by the migration.
const CHUNK: usize = 4096;
/// sled's cache while migrating (it reads each operation once).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Whether `dir` holds a sled database (format 1, or its leftovers after a migration).
pub fn has_sled(dir: &Path) -> bool {
    dir.join("conf").exists() || dir.join("db").exists()
}

/// Removes sled's files from `dir`: `conf`, `db`, `blobs/`, `snap.*`.
pub fn remove_sled(dir: &Path) -> Result<(), OutboxError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let result = match name.as_ref() {
            "conf" | "db" => std::fs::remove_file(&path),
            "blobs" => std::fs::remove_dir_all(&path),
            n if n.starts_with("snap.") => std::fs::remove_file(&path),
            _ => continue,
        };
        result.map_err(|e| io_error(&path, e))?;
    }
    frame::sync_dir(dir)
}

fn u64_value(tree: &'static str, v: &[u8]) -> Result<u64, OutboxError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| OutboxError::CorruptKey(tree))?;
    Ok(u64::from_be_bytes(bytes))
}

fn records(tree: &sled::Tree) -> Result<Vec<QuarantinedObject>, OutboxError> {
    tree.iter()
        .values()
        .map(|v| {
            let v = v?;
            serde_json::from_slice(&v).map_err(|e| OutboxError::Corrupt {
                seq: 0,
                source: envelope::EnvelopeError::Payload(e),
            })
        })
        .collect()
}

fn is_sled_lock_conflict(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if is_lock_conflict(e))
}

/// Writes the pending content of the sled outbox in `dir` as a log directory at `tmp`.
pub fn from_sled(dir: &Path, tmp: &Path) -> Result<(), OutboxError> {
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
    let meta_tree = db.open_tree("meta")?;
    let get = |key: &[u8]| -> Result<u64, OutboxError> {
        meta_tree.get(key)?.map_or(Ok(0), |v| u64_value("meta", &v))
    };
    let checkpoint = get(b"push_checkpoint")?;
    let next_seq = get(b"next_seq")?.max(1);
    let mut meta = RecordMeta::default();
    for item in meta_tree.scan_prefix(b"cursor/") {
        let (k, v) = item?;
        let name = String::from_utf8_lossy(&k[b"cursor/".len()..]).into_owned();
        meta.cursors.insert(name, u64_value("meta", &v)?);
    }
    for item in meta_tree.scan_prefix(b"lease_epoch/") {
        let (k, v) = item?;
        let id = std::str::from_utf8(&k[b"lease_epoch/".len()..])
            .ok()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or(OutboxError::CorruptKey("meta"))?;
        meta.lease_epochs.insert(id, u64_value("meta", &v)?);
    }

    cloudsync_private_fs::create_private_dir(tmp).map_err(|e| io_error(tmp, e))?;
    let segment = log::create_segment(tmp, 0, checkpoint + 1, &meta)?;
    let path = log::segment_path(tmp, 0);
    let mut offset = segment.len;
    let mut due = checkpoint + 1;
    let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    let mut write = |first: u64, chunk: &mut Vec<Vec<u8>>| -> Result<(), OutboxError> {
        let size: usize = chunk.iter().map(Vec::len).sum();
        let record = log::encode_record(first, chunk, &RecordMeta::default(), size, |e, out| {
            out.extend_from_slice(e);
            Ok(())
        })?;
        segment
            .file
            .write_all_at(&record.bytes, offset)
            .map_err(|e| io_error(&path, e))?;
        offset += record.bytes.len() as u64;
        chunk.clear();
        Ok(())
    };
    let ops = db.open_tree("ops")?;
    let mut chunk_first = due;
    for item in ops.range((checkpoint + 1).to_be_bytes()..) {
        let (k, v) = item?;
        let seq = u64_value("ops", &k)?;
        if seq != due {
            return Err(corrupt(
                dir,
                0,
                format!("sled outbox: operation {due} missing"),
            ));
        }
        // A record failing its check is reported now rather than carried over.
        envelope::decode(&v).map_err(|source| OutboxError::Corrupt { seq, source })?;
        chunk.push(v.to_vec());
        due += 1;
        if chunk.len() == CHUNK {
            write(chunk_first, &mut chunk)?;
            chunk_first = due;
        }
    }
    if !chunk.is_empty() {
        write(chunk_first, &mut chunk)?;
    }
    if due != next_seq.max(checkpoint + 1) {
        return Err(corrupt(
            dir,
            0,
            format!(
                "sled outbox: next sequence {next_seq}, operations end at {}",
                due - 1
            ),
        ));
    }
    segment.file.sync_all().map_err(|e| io_error(&path, e))?;
    let log_entries = records(&db.open_tree("provisioning_log")?)?;
    let quarantined = records(&db.open_tree("quarantined")?)?
        .into_iter()
        .map(|q| q.source_anchor)
        .collect();
    state::create(
        &tmp.join(state::FILE_NAME),
        &StateRecord::Snapshot {
            checkpoint,
            log: log_entries,
            quarantined,
        },
    )?;
    frame::sync_dir(tmp)?;
    tracing::info!(
        pending = due - 1 - checkpoint,
        checkpoint,
        "Outbox migrated from its sled database to the segmented log."
    );
    Ok(())
}
