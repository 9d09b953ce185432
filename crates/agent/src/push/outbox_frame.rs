//! The frame every record of the outbox's files is written in: `magic ‖ version ‖ len ‖ crc32c ‖
//! body`, the same layout as the operation envelope ([`super::envelope`]) with its own magic per
//! file kind. Reading a frame from a file tells a torn tail (the file ends inside it) from a frame
//! that is complete but wrong, so that recovery can tolerate the first only at the end of a file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::outbox::OutboxError;

/// Frame version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the body: magic (4) + version (2) + length (4) + CRC32C (4).
pub const HEADER_LEN: usize = 14;
/// The largest body a frame may announce (a bound for reading untrusted lengths; the API caps a
/// request at 8 MiB and projection's largest single event stays far below this).
pub const MAX_BODY: usize = 1 << 30;

/// Starts a frame in `out`: the header with length and CRC left zero, to be sealed by [`seal`]
/// once the body has been appended after it.
pub fn begin(out: &mut Vec<u8>, magic: [u8; 4]) -> usize {
    let start = out.len();
    out.extend_from_slice(&magic);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    start
}

/// Fills in the length and CRC32C of the frame begun at `start` (its body is everything after the
/// header up to the end of `out`).
pub fn seal(out: &mut [u8], start: usize) {
    let body_start = start + HEADER_LEN;
    let len = u32::try_from(out.len().saturating_sub(body_start)).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(out.get(body_start..).unwrap_or_default());
    if let Some(h) = out.get_mut(start + 6..body_start) {
        h[..4].copy_from_slice(&len.to_be_bytes());
        h[4..].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A whole frame around `body`.
pub fn frame(magic: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    let start = begin(&mut out, magic);
    out.extend_from_slice(body);
    seal(&mut out, start);
    out
}

/// What reading a frame at an offset found.
#[derive(Debug)]
pub enum Read {
    /// A valid frame; its body is in the buffer passed in, and the next frame starts at `end`.
    Frame {
        /// Offset just past this frame.
        end: u64,
    },
    /// The file ends at `offset` exactly: no more frames.
    End,
    /// The file ends inside the frame (a write cut short by a crash).
    Torn,
    /// A complete frame that fails a check.
    Bad(String),
}

/// Reads the frame at `offset` of `file` (`file_len` bytes long) into `body`.
pub fn read_at(
    file: &File,
    path: &Path,
    file_len: u64,
    offset: u64,
    magic: [u8; 4],
    body: &mut Vec<u8>,
) -> Result<Read, OutboxError> {
    if offset == file_len {
        return Ok(Read::End);
    }
    if file_len - offset < HEADER_LEN as u64 {
        return Ok(Read::Torn);
    }
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, offset)
        .map_err(|e| io_error(path, e))?;
    if header[..4] != magic {
        return Ok(Read::Bad(format!("bad magic {:02x?}", &header[..4])));
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    if version != VERSION {
        return Ok(Read::Bad(format!("unknown record version {version}")));
    }
    let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]) as usize;
    let stored = u32::from_be_bytes([header[10], header[11], header[12], header[13]]);
    let end = offset + HEADER_LEN as u64 + len as u64;
    if end > file_len {
        return Ok(Read::Torn);
    }
    if len > MAX_BODY {
        return Ok(Read::Bad(format!("length {len} over the limit")));
    }
    body.clear();
    body.resize(len, 0);
    file.read_exact_at(body, offset + HEADER_LEN as u64)
        .map_err(|e| io_error(path, e))?;
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Ok(Read::Bad(format!(
            "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
        )));
    }
    Ok(Read::Frame { end })
}

/// Whether a valid frame starts anywhere in `file` after `offset` (used to tell a corrupt record
/// in the middle from a torn tail when the header itself is unreadable).
pub fn any_valid_frame_after(
    file: &File,
    path: &Path,
    file_len: u64,
    offset: u64,
    magic: [u8; 4],
) -> Result<bool, OutboxError> {
    let mut bytes = Vec::new();
    let start = offset.saturating_add(1);
    let n = usize::try_from(file_len.saturating_sub(start)).unwrap_or(usize::MAX);
    bytes.resize(n, 0);
    file.read_exact_at(&mut bytes, start)
        .map_err(|e| io_error(path, e))?;
    let mut body = Vec::new();
    for (i, w) in bytes.windows(4).enumerate() {
        if w == magic {
            let at = start + i as u64;
            if let Read::Frame { .. } = read_at(file, path, file_len, at, magic, &mut body)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// An I/O error on `path`.
pub fn io_error(path: &Path, source: std::io::Error) -> OutboxError {
    OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A corrupt record at `offset` of `path`.
pub fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> OutboxError {
    OutboxError::CorruptLog {
        path: PathBuf::from(path),
        offset,
        reason: reason.into(),
    }
}

/// Fsyncs directory `dir` (after creating, renaming or removing a file in it).
pub fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Creates `path` new, mode 0600, for reading and appending.
pub fn create_private_file(path: &Path) -> Result<File, OutboxError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))
}

/// Opens an existing file of the outbox for reading and writing.
pub fn open_rw(path: &Path) -> Result<File, OutboxError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))
}

/// Cuts `file` to `len` (a torn tail) and makes that durable.
pub fn truncate(file: &File, path: &Path, len: u64) -> Result<(), OutboxError> {
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// Reads every frame of `file` in order, handing each body (and its offset) to `each`, and returns
/// the length of the valid prefix. With `tolerate_tail` (the file last written to), a last frame
/// a crash cut short — torn, failing its checks, or refused by `each`, with no valid frame after
/// it — is truncated away with a warning; every other fault is [`OutboxError::CorruptLog`].
pub fn scan(
    file: &File,
    path: &Path,
    magic: [u8; 4],
    tolerate_tail: bool,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<u64, OutboxError> {
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut offset = 0u64;
    let mut body = Vec::new();
    loop {
        let reason = match read_at(file, path, len, offset, magic, &mut body)? {
            Read::End => return Ok(len),
            Read::Frame { end } => match each(offset, &body) {
                Ok(()) => {
                    offset = end;
                    continue;
                }
                Err(reason) => reason,
            },
            Read::Torn => "the file ends inside the record".to_string(),
            Read::Bad(reason) => reason,
        };
        if !tolerate_tail || any_valid_frame_after(file, path, len, offset, magic)? {
            return Err(corrupt(path, offset, reason));
        }
        tracing::warn!(
            path = %path.display(),
            offset,
            dropped = len - offset,
            reason = %reason,
            "Outbox file ends in an incomplete record (a write a crash interrupted); truncating it."
        );
        truncate(file, path, offset)?;
        return Ok(offset);
    }
}
