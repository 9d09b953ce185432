//! The running executable's SHA-256. Enters: `/proc/self/exe`. Leaves: the lower-case hex digest
//! every heartbeat carries (`HeartbeatRequest::binary_sha256`), computed once per process.
//!
//! Why a digest and not only the version: the updater's health criterion is "the tenant sees the
//! swapped-in binary itself running" (docs/updater.md). `/proc/self/exe` opens the inode this
//! process was started from even after the file at its path was replaced, so the digest is of the
//! running code, never of a newer file that replaced it.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use sha2::Digest;

static DIGEST: OnceLock<Option<String>> = OnceLock::new();

/// Lower-case hex SHA-256 of the file at `path`, read in 1 MiB pieces.
pub fn sha256_of_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The running executable's digest (hashed on a blocking thread the first time; `None` when
/// `/proc/self/exe` cannot be read, which only drops the field from heartbeats).
pub async fn running_sha256() -> Option<String> {
    if let Some(d) = DIGEST.get() {
        return d.clone();
    }
    let digest = tokio::task::spawn_blocking(|| {
        sha256_of_file(Path::new("/proc/self/exe"))
            .inspect_err(|e| tracing::warn!(error = %e, "Cannot hash the running executable; heartbeats will not carry its digest."))
            .ok()
    })
    .await
    .ok()
    .flatten();
    DIGEST.get_or_init(|| digest).clone()
}
