//! The outbox's operation log: numbered segment files of framed records, each record one enqueue
//! (its operations, the producer's cursor, a lease epoch) or, first in every segment, a snapshot
//! of the meta (next sequence, every cursor and epoch). Enters: records to append, a directory to
//! recover. Leaves: the sparse index of operations by sequence ([`Block`]s) and the meta. The
//! format is documented in the module doc of [`crate::push`].

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope;
use super::outbox::OutboxError;
use super::outbox_frame::{self as frame, corrupt, io_error};

/// Magic of a segment record.
pub const MAGIC: [u8; 4] = *b"CSOR";
/// Operations per index block: the index holds one entry per block, so its size is about
/// pending operations / 128 (plus one per small enqueue), not one per operation.
pub const BLOCK_OPS: u32 = 128;
/// A segment is closed (and a new one begun) once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes of the fixed part of a record body: first sequence (8) + count (4) + meta length (4).
const BODY_FIXED: usize = 16;

/// The meta a record carries (JSON): the cursor and epoch an enqueue records, or all of them in a
/// segment's opening snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordMeta {
    /// Producer cursors by producer name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cursors: BTreeMap<String, u64>,
    /// Lease epochs of takeovers by configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lease_epochs: BTreeMap<Uuid, u64>,
}

/// A run of at most [`BLOCK_OPS`] envelopes of one record, contiguous in one segment.
#[derive(Debug, Clone)]
pub struct Block {
    /// The sequence of its first operation.
    pub first_seq: u64,
    /// How many operations it holds.
    pub count: u32,
    /// The segment file.
    pub file: Arc<File>,
    /// Offset of its first envelope in the segment.
    pub offset: u64,
    /// Bytes of its envelopes.
    pub len: u32,
}

impl Block {
    /// The sequence after its last operation.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Its number (file `seg-<id, 20 digits>.log`).
    pub id: u64,
    /// The open file (reads and appends).
    pub file: Arc<File>,
    /// The next sequence when it was begun: it holds operations from there on.
    pub start_seq: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// The path of segment `id` in `log_dir`.
pub fn segment_path(log_dir: &Path, id: u64) -> PathBuf {
    log_dir.join(format!("seg-{id:020}.log"))
}

/// An encoded record ready to append, with the index blocks it will add (offsets relative to the
/// record's start).
pub struct Encoded {
    /// The framed bytes.
    pub bytes: Vec<u8>,
    /// (first sequence, count, offset in `bytes`, length) of each block.
    blocks: Vec<(u64, u32, u64, u32)>,
}

impl Encoded {
    /// The blocks of this record once written at `offset` of `file`.
    pub fn blocks_at<'a>(
        &'a self,
        file: &'a Arc<File>,
        offset: u64,
    ) -> impl Iterator<Item = Block> + 'a {
        self.blocks
            .iter()
            .map(move |&(first_seq, count, at, len)| Block {
                first_seq,
                count,
                file: file.clone(),
                offset: offset + at,
                len,
            })
    }
}

/// Encodes a record of the operations `items` under sequences from `first_seq` on, with `meta`:
/// `write_envelope(item, out)` appends the envelope of one to `out` (so a large enqueue is encoded
/// once, straight into the record, with no intermediate copy per operation).
pub fn encode_record<T>(
    first_seq: u64,
    items: &[T],
    meta: &RecordMeta,
    size_hint: usize,
    mut write_envelope: impl FnMut(&T, &mut Vec<u8>) -> Result<(), OutboxError>,
) -> Result<Encoded, OutboxError> {
    let meta_json = serde_json::to_vec(meta).map_err(OutboxError::Encode)?;
    let mut bytes =
        Vec::with_capacity(frame::HEADER_LEN + BODY_FIXED + meta_json.len() + size_hint);
    let start = frame::begin(&mut bytes, MAGIC);
    let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&first_seq.to_be_bytes());
    bytes.extend_from_slice(&count.to_be_bytes());
    let meta_len = u32::try_from(meta_json.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&meta_len.to_be_bytes());
    bytes.extend_from_slice(&meta_json);
    let mut blocks = Vec::new();
    let mut seq = first_seq;
    for chunk in items.chunks(BLOCK_OPS as usize) {
        let at = bytes.len() as u64;
        for item in chunk {
            write_envelope(item, &mut bytes)?;
        }
        let len = u32::try_from(bytes.len() as u64 - at).unwrap_or(u32::MAX);
        blocks.push((seq, chunk.len() as u32, at, len));
        seq += chunk.len() as u64;
    }
    frame::seal(&mut bytes, start);
    Ok(Encoded { bytes, blocks })
}

/// A decoded record body: where its envelopes are.
struct Parsed {
    first_seq: u64,
    count: u32,
    meta: RecordMeta,
    /// (offset in body, length) of each block.
    blocks: Vec<(u64, u32)>,
}

fn parse_body(body: &[u8]) -> Result<Parsed, String> {
    let fixed = body.get(..BODY_FIXED).ok_or("record body too short")?;
    let mut u64b = [0u8; 8];
    u64b.copy_from_slice(&fixed[..8]);
    let first_seq = u64::from_be_bytes(u64b);
    let count = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    let meta_len = u32::from_be_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
    let meta_end = BODY_FIXED.checked_add(meta_len).ok_or("meta length")?;
    let meta_bytes = body
        .get(BODY_FIXED..meta_end)
        .ok_or("meta past the record")?;
    let meta: RecordMeta =
        serde_json::from_slice(meta_bytes).map_err(|e| format!("record meta: {e}"))?;
    let mut blocks = Vec::new();
    let mut pos = meta_end;
    let mut left = count;
    while left > 0 {
        let n = left.min(BLOCK_OPS);
        let start = pos;
        for _ in 0..n {
            let header = body
                .get(pos..pos + envelope::HEADER_LEN)
                .ok_or("envelope past the record")?;
            let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]) as usize;
            pos = pos
                .checked_add(envelope::HEADER_LEN + len)
                .filter(|p| *p <= body.len())
                .ok_or("envelope past the record")?;
        }
        blocks.push((start as u64, u32::try_from(pos - start).unwrap_or(u32::MAX)));
        left -= n;
    }
    if pos != body.len() {
        return Err(format!(
            "{} bytes after the last envelope",
            body.len() - pos
        ));
    }
    Ok(Parsed {
        first_seq,
        count,
        meta,
        blocks,
    })
}

/// What recovery of the segments found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The segments, oldest first.
    pub segments: Vec<Segment>,
    /// Every block, in sequence order.
    pub blocks: Vec<Block>,
    /// The next sequence to assign.
    pub next_seq: u64,
    /// The meta after the last record.
    pub meta: RecordMeta,
}

/// Opens every segment in `log_dir`, checks every record, truncates a torn tail of the newest
/// segment, and rebuilds the index and the meta. Records whose operations are all at or below
/// `checkpoint` are checked but not indexed.
pub fn recover(log_dir: &Path, checkpoint: u64) -> Result<Recovered, OutboxError> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(log_dir).map_err(|e| io_error(log_dir, e))? {
        let entry = entry.map_err(|e| io_error(log_dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".log"))
        {
            ids.push(
                id.parse::<u64>()
                    .map_err(|_| corrupt(&entry.path(), 0, "segment name"))?,
            );
        } else if name.ends_with(".tmp") {
            // A segment or state file whose creation a crash interrupted (never renamed in).
            let _ = std::fs::remove_file(entry.path());
        }
    }
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(corrupt(log_dir, 0, "no segment"));
    }
    for pair in ids.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(corrupt(
                &segment_path(log_dir, pair[0] + 1),
                0,
                "missing segment",
            ));
        }
    }
    let mut out = Recovered::default();
    let newest = ids.last().copied().unwrap_or_default();
    for id in ids {
        let path = segment_path(log_dir, id);
        let file = Arc::new(frame::open_rw(&path)?);
        let mut start_seq = None;
        let len = frame::scan(&file, &path, MAGIC, id == newest, |offset, body| {
            let p = parse_body(body)?;
            if out.next_seq != 0 && p.first_seq != out.next_seq {
                return Err(format!(
                    "sequence {} where {} was due",
                    p.first_seq, out.next_seq
                ));
            }
            start_seq.get_or_insert(p.first_seq);
            out.next_seq = p.first_seq + u64::from(p.count);
            out.meta.cursors.extend(p.meta.cursors);
            out.meta.lease_epochs.extend(p.meta.lease_epochs);
            let body_at = offset + frame::HEADER_LEN as u64;
            let mut seq = p.first_seq;
            for (at, blen) in p.blocks {
                let n = (p.first_seq + u64::from(p.count) - seq).min(BLOCK_OPS.into());
                if seq + n > checkpoint + 1 {
                    out.blocks.push(Block {
                        first_seq: seq,
                        count: n as u32,
                        file: file.clone(),
                        offset: body_at + at,
                        len: blen,
                    });
                }
                seq += n;
            }
            Ok(())
        })?;
        let start_seq =
            start_seq.ok_or_else(|| corrupt(&path, 0, "segment without its opening snapshot"))?;
        out.segments.push(Segment {
            id,
            file,
            start_seq,
            len,
        });
    }
    Ok(out)
}

/// Writes a new segment `id` opening with a snapshot of `meta` and `next_seq`: created as a
/// temporary file, fsynced, renamed in, directory fsynced (a crash leaves no half segment).
pub fn create_segment(
    log_dir: &Path,
    id: u64,
    next_seq: u64,
    meta: &RecordMeta,
) -> Result<Segment, OutboxError> {
    let path = segment_path(log_dir, id);
    let tmp = path.with_extension("log.tmp");
    let _ = std::fs::remove_file(&tmp);
    let file = frame::create_private_file(&tmp)?;
    let record = encode_record::<()>(next_seq, &[], meta, 0, |_, _| Ok(()))?;
    file.write_all_at(&record.bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
    frame::sync_dir(log_dir)?;
    Ok(Segment {
        id,
        file: Arc::new(file),
        start_seq: next_seq,
        len: record.bytes.len() as u64,
    })
}

/// Reads the operations of `block` with a sequence of at least `from`, at most `limit`, as
/// (sequence, operation, payload length).
pub fn read_block(
    block: &Block,
    from: u64,
    limit: usize,
    out: &mut Vec<(u64, super::OutboxOp, usize)>,
) -> Result<(), OutboxError> {
    let mut bytes = vec![0u8; block.len as usize];
    block
        .file
        .read_exact_at(&mut bytes, block.offset)
        .map_err(|e| io_error(Path::new("outbox segment"), e))?;
    let mut pos = 0usize;
    for i in 0..u64::from(block.count) {
        let seq = block.first_seq + i;
        let bad = |source| OutboxError::Corrupt { seq, source };
        let header = bytes.get(pos..pos + envelope::HEADER_LEN).ok_or_else(|| {
            bad(envelope::EnvelopeError::Length {
                expected: envelope::HEADER_LEN,
                actual: bytes.len().saturating_sub(pos),
            })
        })?;
        let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]) as usize;
        let end = pos + envelope::HEADER_LEN + len;
        let record = bytes.get(pos..end).ok_or_else(|| {
            bad(envelope::EnvelopeError::Length {
                expected: envelope::HEADER_LEN + len,
                actual: bytes.len().saturating_sub(pos),
            })
        })?;
        pos = end;
        if seq < from {
            continue;
        }
        if out.len() >= limit {
            break;
        }
        let op = envelope::decode(record).map_err(bad)?;
        out.push((seq, op, len));
    }
    Ok(())
}
