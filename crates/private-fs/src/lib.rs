//! Private state on disk. Enters: a path the agent or the tenant keeps state in. Leaves: a 0700
//! directory, or the first group- or world-accessible path under it with the `chmod` that fixes it.
//! [`lock`] opens a store whose file lock a handle dropped a moment ago still holds.
//!
//! The journal, projection store, outbox, credentials file, status file and the tenant's state
//! all hold secrets (client secrets; salted `v1;PPH1_MD4,…` password hashes, which crack in
//! seconds for weak passwords). The rule: every directory is 0700 and every file 0600. Three
//! layers keep it:
//! 1. [`restrict_umask`] at process start (`cli::main`): umask 0o077, so everything created
//!    afterwards — including sled's own files (`conf`, `db`, `snap.*`, `blobs/`), which sled opens
//!    with the default 0o666 — is private;
//! 2. [`create_private_dir`] where a stage creates its directory (0700 even without the umask,
//!    e.g. when a library user opens a store);
//! 3. [`check_private`] at start: state left open by an older version or by hand is refused,
//!    naming the path and the `chmod` to run, instead of being used (and extended) as it is.
//!
//! The umask is set through `rustix` (a safe wrapper over the syscall; the crate denies
//! `unsafe_code`, and rustix is already in the dependency tree through tempfile).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub mod lock;

/// Sets the process umask to 0o077 and returns the previous one.
pub fn restrict_umask() -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077)).bits()
}

/// Creates `dir` (and missing parents) with mode 0700. An existing directory is left as it is:
/// [`check_private`] decides about it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically with permission bits `mode`: a temporary file beside it
/// (`<name>.tmp`, created with `mode`, so no reader ever sees half the content or wider permissions),
/// written, fsynced, and renamed over `path`. A stale temporary file from a crash is replaced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    // `mode` went through the umask at creation: set it exactly.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

/// A state path that group or others can access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path} has mode {mode:o}: it holds secrets (client secrets, salted password hashes) and must not be accessible by group or others; fix with `chmod -R go= {root}`"
)]
pub struct OpenPermissions {
    /// The offending file or directory.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// The state path it was found under (what the `chmod -R` fixes).
    pub root: PathBuf,
}

impl OpenPermissions {
    /// The command that fixes it.
    pub fn fix(&self) -> String {
        format!("chmod -R go= {}", self.root.display())
    }
}

/// Checks `root` (a file, or a directory and everything under it) for group or world permission
/// bits and for an owner other than this process's user. `root` itself is followed when it is a
/// symlink (a state directory linked elsewhere is checked where it points); symlinks below it are
/// not followed. A missing `root` is fine (nothing created yet). Returns the first offending path;
/// an unreadable entry is reported as an I/O error.
pub fn check_private(root: &Path) -> Result<(), CheckError> {
    let owner = rustix::process::geteuid().as_raw();
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CheckError::Io {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    let mut stack = vec![(root.to_path_buf(), meta)];
    while let Some((path, meta)) = stack.pop() {
        let mode = meta.permissions().mode() & 0o777;
        if !meta.file_type().is_symlink() && mode & 0o077 != 0 {
            return Err(CheckError::Open(OpenPermissions {
                path,
                mode,
                root: root.to_path_buf(),
            }));
        }
        // Another user owning a 0700 directory (or a file in it) can read and change it.
        if meta.uid() != owner {
            return Err(CheckError::Owner {
                path,
                uid: meta.uid(),
                expected: owner,
                root: root.to_path_buf(),
            });
        }
        if meta.is_dir() {
            let io = |source| CheckError::Io {
                path: path.clone(),
                source,
            };
            for entry in std::fs::read_dir(&path).map_err(io)? {
                let entry = entry.map_err(io)?;
                let meta =
                    std::fs::symlink_metadata(entry.path()).map_err(|source| CheckError::Io {
                        path: entry.path(),
                        source,
                    })?;
                stack.push((entry.path(), meta));
            }
        }
    }
    Ok(())
}

/// Why [`check_private`] refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A path is group- or world-accessible.
    #[error(transparent)]
    Open(#[from] OpenPermissions),
    /// A path is owned by another user than the one running cloudsync.
    #[error(
        "{path} is owned by uid {uid}, not by uid {expected} that runs cloudsync: another user could read or change the secrets in it; fix with `chown -R {expected} {root}` (or run cloudsync as its owner)"
    )]
    Owner {
        /// The offending file or directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// The effective uid of this process.
        expected: u32,
        /// The state path it was found under.
        root: PathBuf,
    },
    /// A path could not be examined.
    #[error("cannot examine {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_with_exactly_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A stale temporary file from a crash is replaced, not an error.
        std::fs::write(dir.path().join("creds.json.tmp"), b"half").unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(!dir.path().join("creds.json.tmp").exists());
        write_atomic(&path, b"conf", 0o640).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn finds_the_open_path_and_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("outbox");
        create_private_dir(&root.join("blobs")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("blobs")), 0o700);
        let file = root.join("db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_private(&root).unwrap();
        check_private(&dir.path().join("missing")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_private(&root).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} has mode 644", file.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("chmod -R go= {}", root.display())),
            "{text}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            check_private(&root),
            Err(CheckError::Open(OpenPermissions { mode: 0o755, .. }))
        ));
    }

    /// A state directory that is a symlink is checked where it points (it was skipped as a
    /// symlink, and nothing under it was looked at).
    #[test]
    fn a_symlinked_state_directory_is_checked_where_it_points() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        create_private_dir(&real).unwrap();
        let file = real.join("db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("journal");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = check_private(&link).unwrap_err();
        assert!(
            matches!(&err, CheckError::Open(OpenPermissions { mode: 0o644, .. })),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_private(&link).unwrap();
    }

    /// A 0700 directory owned by another user is not private to this one. Needs root (to chown),
    /// as the whole suite does for the lab DC.
    #[test]
    fn state_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("outbox");
        create_private_dir(&root).unwrap();
        let nobody = 65534;
        std::os::unix::fs::chown(&root, Some(nobody), None)
            .expect("chown needs root: run the suite as root (scripts/test.sh)");
        let err = check_private(&root).unwrap_err();
        assert!(
            matches!(&err, CheckError::Owner { uid: 65534, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chown -R"), "{err}");
    }
}
