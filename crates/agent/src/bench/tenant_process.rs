//! The local tenant as a child process: `cloudsync tenant serve` on 127.0.0.1:0, reached over HTTPS
//! like any agent reaches it. Enters: the `cloudsync` executable and a directory. Leaves: the
//! running process and its URL; `state/`, `seed.toml`, `address`, `ca.pem` and `tenant.log` in the
//! directory. The test fixtures start it through [`spawn_serve`] too (tests/common/tenant_serve.rs).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the tenant may take to write its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping tenant may take after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the tenant did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The process could not be started, or a file in its directory not written.
    #[error("starting `cloudsync tenant serve`: {0}")]
    Io(#[from] std::io::Error),
    /// It exited before writing its address (its log says why).
    #[error("the tenant exited with {status} before listening; its log: {log}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
    },
    /// It did not write its address within [`START_TIMEOUT`] (it was killed).
    #[error("the tenant did not listen within {}s; its log: {log}", START_TIMEOUT.as_secs())]
    Timeout {
        /// Its log file.
        log: PathBuf,
    },
}

/// Spawns `exe tenant serve --listen <listen>` over `dir` (state, `seed.toml`, `address` file,
/// `ca.pem`) with `extra` flags, `env` and stderr into `log`, and waits until it has written its
/// address. Returns the child and the tenant's base URL. `log_path` only names the log in errors.
pub fn spawn_serve(
    exe: &Path,
    dir: &Path,
    listen: &str,
    extra: &[String],
    env: &[(String, String)],
    log: File,
    log_path: &Path,
) -> Result<(Child, String), SpawnError> {
    let addr = dir.join("address");
    let _ = std::fs::remove_file(&addr);
    let mut child = Command::new(exe)
        .args(["tenant", "serve", "--listen", listen])
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--seed")
        .arg(dir.join("seed.toml"))
        .arg("--address-file")
        .arg(&addr)
        .arg("--ca-out")
        .arg(dir.join("ca.pem"))
        .args(extra)
        .env("CLOUDSYNC_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(s) = std::fs::read_to_string(&addr)
            && s.ends_with('\n')
        {
            return Ok((child, s.trim().to_owned()));
        }
        if let Some(status) = child.try_wait()? {
            return Err(SpawnError::Exited {
                status,
                log: log_path.to_path_buf(),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::Timeout {
                log: log_path.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `tenant serve`, stopped with SIGTERM by [`TenantProcess::stop`] or killed on drop.
#[derive(Debug)]
pub struct TenantProcess {
    child: Option<Child>,
    /// Its base URL, `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its directory.
    pub dir: PathBuf,
}

impl TenantProcess {
    /// Writes `seed` to `dir/seed.toml` (0600: it holds the admin's password) and starts the tenant
    /// over `dir` with the `extra` flags of `tenant serve`, logging to `dir/tenant.log`.
    pub fn start(
        exe: &Path,
        dir: &Path,
        seed: &str,
        extra: &[String],
    ) -> Result<TenantProcess, SpawnError> {
        cloudsync_private_fs::create_private_dir(dir)?;
        cloudsync_private_fs::write_atomic(&dir.join("seed.toml"), seed.as_bytes(), 0o600)?;
        let log_path = dir.join("tenant.log");
        let log = File::create(&log_path)?;
        let (child, url) = spawn_serve(exe, dir, "127.0.0.1:0", extra, &[], log, &log_path)?;
        Ok(TenantProcess {
            child: Some(child),
            url,
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate (PEM) the tenant's server certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The process id (for its peak RSS).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the tenant the way a service manager does (SIGTERM: it flushes its store and exits),
    /// killing it after [`STOP_TIMEOUT`].
    pub fn stop(mut self) -> std::io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = rustix::process::Pid::from_raw(child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("The local tenant did not stop on SIGTERM; killing it.");
        child.kill()?;
        child.wait().map(|_| ())
    }
}

impl Drop for TenantProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
