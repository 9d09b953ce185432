//! One loopback address per DC, leased through an exclusive lock on a per-address file.
//!
//! `File::lock`/`try_lock` are `flock(2)` locks on an open file description: they exclude other
//! threads of this process (each lease opens the file anew) as well as other processes, and the
//! kernel drops them when the holder dies, so a killed test run never leaks an address.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tools;

/// The pool: 127.0.0.1 stays free for people running a DC by hand.
const FIRST: u8 = 2;
const LAST: u8 = 64;
/// TCP ports a lab DC binds; any of them taken means the address is not usable.
const DC_PORTS: [u16; 8] = [88, 135, 389, 445, 464, 636, 3268, 3269];

/// An exclusively held 127.0.0.N; released on drop.
#[derive(Debug)]
pub(super) struct IpLease {
    /// The leased address.
    pub(super) ip: Ipv4Addr,
    file: File,
}

impl IpLease {
    /// Takes the first free address of 127.0.0.2..=64. An address whose previous user died is
    /// cleaned up first (its DC stopped by pid file); one that something else still listens on is
    /// skipped. Panics when none is left.
    pub(super) fn acquire() -> IpLease {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale);
        let dir = lock_dir();
        let mut busy = Vec::new();
        for n in FIRST..=LAST {
            let ip = Ipv4Addr::new(127, 0, 0, n);
            let path = dir.join(format!("{ip}.lock"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap_or_else(|e| panic!("lab: cannot open {}: {e}", path.display()));
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => {
                    panic!("lab: cannot lock {}: {e}", path.display())
                }
            }
            let mut lease = IpLease { ip, file };
            if let Some(previous) = lease.recorded_user() {
                remove_stale_dc(&previous);
            }
            match listening_port(ip) {
                None => return lease,
                Some(port) => busy.push(format!("{ip}:{port}")),
            }
            lease.clear_record();
        }
        panic!(
            "lab: no free loopback address in 127.0.0.{FIRST}-{LAST}. Locked by other tests, or in use by \
             something else: [{}]. Stop stray DCs with `scripts/lab.sh stop DIR`.",
            busy.join(", ")
        );
    }

    /// Notes in the lock file which DC directory uses this address, for stale-DC cleanup.
    pub(super) fn record_user(&self, dc_dir: &Path) {
        self.write_record(dc_dir.as_os_str().as_encoded_bytes());
    }

    /// Empties the record (the DC is gone).
    pub(super) fn clear_record(&mut self) {
        self.write_record(b"");
    }

    fn write_record(&self, bytes: &[u8]) {
        let mut f = &self.file;
        let result = f
            .set_len(0)
            .and_then(|()| f.seek(SeekFrom::Start(0)))
            .and_then(|_| f.write_all(bytes));
        if let Err(e) = result {
            eprintln!("lab: cannot update the lease record of {}: {e}", self.ip);
        }
    }

    fn recorded_user(&mut self) -> Option<PathBuf> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0)).ok()?;
        self.file.read_to_string(&mut text).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| PathBuf::from(text))
    }
}

/// Once per process: stops the DCs that killed runs left on any address nobody holds now, so they
/// do not linger until their address happens to be leased again.
fn sweep_stale() {
    let dir = lock_dir();
    for n in FIRST..=LAST {
        let path = dir.join(format!("{}.lock", Ipv4Addr::new(127, 0, 0, n)));
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // absent, or in use by a live test
        }
        let mut lease = IpLease {
            ip: Ipv4Addr::new(127, 0, 0, n),
            file,
        };
        if let Some(previous) = lease.recorded_user() {
            remove_stale_dc(&previous);
            lease.clear_record();
        }
    }
}

/// Stops a DC left in `dir` by an earlier run (by its pid file, which `lab.sh` checks names a
/// Samba process), then removes the directory if it is one of this cache's run directories.
/// Directories elsewhere (another worktree's cache, a template) are only stopped.
pub(super) fn remove_stale_dc(dir: &Path) {
    stop_dc(dir);
    if dir.exists() && dir.starts_with(super::template::cache_dir().join("run")) {
        fs::remove_dir_all(dir)
            .unwrap_or_else(|e| panic!("lab: cannot remove {}: {e}", dir.display()));
    }
}

/// Stops the DC in `dir` if it is a lab directory and runs.
pub(super) fn stop_dc(dir: &Path) {
    if !dir.join("lab.env").is_file() {
        return;
    }
    match tools::try_lab_sh(&["stop", &dir.to_string_lossy()], &[]) {
        Ok(out) if out.contains("stopped pid") => {
            eprintln!(
                "lab: stopped a DC left running by an earlier run in {}.",
                dir.display()
            );
        }
        Ok(_) => {}
        Err(e) => panic!("lab: cannot stop the stale DC in {}: {e}", dir.display()),
    }
}

/// The first DC port something accepts connections on at `ip`, if any.
fn listening_port(ip: Ipv4Addr) -> Option<u16> {
    DC_PORTS.into_iter().find(|&port| {
        TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(300))
            .is_ok()
    })
}

/// `$CLOUDSYNC_LAB_LOCKS`, else `/tmp/cloudsync-lab-locks` (mode 0700: only root's tests use it).
fn lock_dir() -> PathBuf {
    let dir = std::env::var_os("CLOUDSYNC_LAB_LOCKS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cloudsync-lab-locks"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .unwrap_or_else(|e| panic!("lab: cannot create {}: {e}", dir.display()));
    let mode = fs::metadata(&dir)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert!(
        mode & 0o022 == 0,
        "lab: {} is writable by others (mode {mode:o}); its records name directories to remove",
        dir.display()
    );
    dir
}
