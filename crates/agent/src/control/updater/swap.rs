//! The atomic swap and its reversal. Enters: the installed binary's path and `<binary>.new`
//! (already checked). Leaves: the new binary at the path, the old one kept as
//! `<binary>.previous`; or, on [`roll_back`], the previous one back at the path.
//!
//! # Durability contract
//! 1. `<binary>.new` was written and fsynced by the download (same directory, so same filesystem).
//! 2. `<binary>.previous` is replaced by a hard link to the installed binary (a copy, fsynced, where
//!    the filesystem refuses links); the directory is fsynced.
//! 3. `rename(<binary>.new, <binary>)` — atomic: a reader (systemd starting the agent) sees the old
//!    or the new file, never a partial one; the running process keeps its old inode.
//! 4. The directory is fsynced, so the rename survives a power cut.
//!
//! A crash between 2 and 3 leaves the old binary in place and a stale `.new` (overwritten by the
//! next run); after 3 the previous binary is always at `.previous` for [`roll_back`] (or by hand:
//! `mv <binary>.previous <binary>`).

use std::path::{Path, PathBuf};

/// `<binary><suffix>` beside `binary`.
pub fn beside(binary: &Path, suffix: &str) -> PathBuf {
    let mut name = binary.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A failed file step.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub struct SwapError {
    /// What was being done.
    pub step: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

fn err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SwapError + 'a {
    move |source| SwapError {
        step,
        path: path.to_owned(),
        source,
    }
}

/// fsyncs the directory holding `path`.
fn sync_dir(path: &Path) -> Result<(), SwapError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("syncing the directory of", path))
}

/// Steps 2–4: keeps the installed binary as `.previous`, renames `.new` over it.
pub fn swap_in(binary: &Path) -> Result<(), SwapError> {
    let new = beside(binary, ".new");
    let previous = beside(binary, ".previous");
    match std::fs::remove_file(&previous) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("removing the old", &previous)(e)),
    }
    if std::fs::hard_link(binary, &previous).is_err() {
        std::fs::copy(binary, &previous).map_err(err("copying the binary to", &previous))?;
        std::fs::File::open(&previous)
            .and_then(|f| f.sync_all())
            .map_err(err("syncing", &previous))?;
    }
    sync_dir(binary)?;
    std::fs::rename(&new, binary).map_err(err("renaming the new binary over", binary))?;
    sync_dir(binary)
}

/// Puts `.previous` back at `binary` (rename, directory fsynced).
pub fn roll_back(binary: &Path) -> Result<(), SwapError> {
    let previous = beside(binary, ".previous");
    std::fs::rename(&previous, binary)
        .map_err(err("renaming the previous binary back over", binary))?;
    sync_dir(binary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn swap_keeps_previous_and_rollback_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("cloudsync");
        std::fs::write(&bin, b"old").unwrap();
        std::fs::write(beside(&bin, ".previous"), b"older").unwrap();
        std::fs::write(beside(&bin, ".new"), b"new").unwrap();
        swap_in(&bin).unwrap();
        assert_eq!(std::fs::read(&bin).unwrap(), b"new");
        assert_eq!(std::fs::read(beside(&bin, ".previous")).unwrap(), b"old");
        assert!(!beside(&bin, ".new").exists());
        roll_back(&bin).unwrap();
        assert_eq!(std::fs::read(&bin).unwrap(), b"old");
        assert!(!beside(&bin, ".previous").exists());
    }
}
