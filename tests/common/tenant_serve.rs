//! Starting the real `cloudsync tenant serve` binary for the test fixtures ([`TenantFixture`] in
//! tenant.rs, `PushTenant` in push.rs): the state, `seed.toml`, `address` file and `ca.pem` all live
//! in one directory; the tenant writes its URL and a newline to `address` once it listens.
//!
//! [`TenantFixture`]: super::TenantFixture

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the tenant may take to write its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Spawns `cloudsync tenant serve --listen <listen>` over `dir` with `extra` flags and stderr into
/// `log` (a file at `log_path`), and waits until it has written its address. Returns the child and
/// the tenant's base URL; panics with the log if the tenant exits or does not start in time.
pub fn spawn_tenant(
    dir: &Path,
    listen: &str,
    extra: &[String],
    env: &[(String, String)],
    log: File,
    log_path: &Path,
) -> (Child, String) {
    let addr = dir.join("address");
    let _ = std::fs::remove_file(&addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
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
        .spawn()
        .expect("spawn cloudsync tenant serve");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(s) = std::fs::read_to_string(&addr)
            && s.ends_with('\n')
        {
            return (child, s.trim().to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the tenant exited with {status} before writing its address:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "the tenant did not write {} in time:\n{}",
                addr.display(),
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
