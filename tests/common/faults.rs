//! The fault campaign's fixtures (`tests/fault_campaign.rs`): the agent's state on a tmpfs of its own
//! (so its disk can be filled), the `agent run` daemon under a libfaketime clock (so its wall clock can
//! be stepped), and the oracle polled until the tenant equals AD (plus: no object twice, every enabled
//! user signs in). The tenant's log and the per-fault report: `fault_report.rs`; the faults themselves:
//! `fault_tenant.rs`, `fault_dc.rs`, `fault_host.rs`.
//!
//! Use with `mod common;`, `#[path = "common/tenant.rs"] mod tenant_fixture;`,
//! `#[path = "common/agent_run.rs"] mod agent_run;`, `#[path = "common/diff_changes.rs"] mod diff_changes;`,
//! `#[path = "common/diff_oracle.rs"] mod diff_oracle;` and `#[path = "common/faults.rs"] mod faults;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::lab::LabDc;
use crate::diff_changes::World;
use crate::diff_oracle;
use crate::tenant_fixture::{GA, TenantFixture};

/// libfaketime, multi-threaded flavour (the agent runs tokio's worker threads).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The agent's state directory: a tmpfs mount of its own when the test may mount (root), else a
/// plain temporary directory (and the disk-full fault is skipped, saying so).
pub struct StateDir {
    /// The directory (agent.toml, credentials, journal, projection, outbox).
    pub path: PathBuf,
    /// Why it is not a tmpfs, when it is not.
    pub not_mounted: Option<String>,
    tmp: tempfile::TempDir,
}

impl StateDir {
    /// A tmpfs of `size_mib` MiB, mode 0700, under a fresh temporary directory.
    pub fn tmpfs(size_mib: u64) -> StateDir {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m,mode=0700"))
            .arg("cloudsync-fault")
            .arg(&path)
            .output();
        let not_mounted = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run mount: {e}")),
        };
        StateDir {
            path,
            not_mounted,
            tmp,
        }
    }

    /// Somewhere outside the mount (the clock file, logs that must survive a full disk).
    pub fn outside(&self) -> &Path {
        self.tmp.path()
    }

    /// Bytes available on the state's file system (`stat -f`).
    pub fn available(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        it.next().unwrap() * it.next().unwrap()
    }

    fn ballast(&self) -> PathBuf {
        self.path.join("ballast")
    }

    /// Fills the file system: a ballast file as large as the free space (`fallocate`), topped up
    /// with `dd` until the disk refuses. Returns the ballast's size.
    pub fn fill(&self) -> u64 {
        let ballast = self.ballast();
        let free = self.available();
        let _ = Command::new("fallocate")
            .args(["-l", &free.to_string()])
            .arg(&ballast)
            .status();
        // Whatever fallocate left (or all of it, where it is not supported): zeros until ENOSPC.
        let _ = Command::new("dd")
            .args([
                "if=/dev/zero",
                "bs=64k",
                "oflag=append",
                "conv=notrunc",
                "status=none",
            ])
            .arg(format!("of={}", ballast.display()))
            .stderr(Stdio::null())
            .status();
        std::fs::metadata(&ballast).map_or(0, |m| m.len())
    }

    /// Removes the ballast.
    pub fn empty(&self) {
        std::fs::remove_file(self.ballast()).unwrap();
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if self.not_mounted.is_none() {
            // Lazy: a process still holding a file there must not keep the mount forever.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// The clock the agent sees: libfaketime reads the offset from this file (re-read every second).
pub struct FakeClock(pub PathBuf);

impl FakeClock {
    /// A clock at the real time.
    pub fn new(dir: &Path) -> FakeClock {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: scripts/lab.sh install (package faketime)"
        );
        let c = FakeClock(dir.join("faketime"));
        c.set(0);
        c
    }

    /// Steps the wall clock to real time + `offset_secs` (libfaketime picks it up within a second).
    pub fn set(&self, offset_secs: i64) {
        std::fs::write(&self.0, format!("{offset_secs:+}\n")).unwrap();
    }
}

/// `agent run` with the campaign's settings: short LDAP and DRSR timeouts, a 1 s poll, 2 s
/// heartbeats, projection every 100 ms, batches of at most 50 operations; the wall clock from a
/// [`FakeClock`] (the monotonic clock stays real, as with an NTP step); stderr appended to `log`.
pub struct Agent {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    clock: PathBuf,
}

/// LDAP operation timeout the campaign gives the agent (a frozen DC must outlast it).
pub const LDAP_OPERATION_TIMEOUT_SECS: u64 = 5;
/// LDAP connect timeout.
pub const LDAP_CONNECT_TIMEOUT_SECS: u64 = 3;
/// Password hash sync's per-operation timeout.
pub const PHS_TIMEOUT_SECS: u64 = 5;

impl Agent {
    /// Starts it.
    pub fn start(config: &Path, log: &Path, clock: &FakeClock) -> Agent {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
        cmd.args(["agent", "run", "--config", config.to_str().unwrap()]);
        for set in [
            "domains.corp.poll_interval_secs=1".to_owned(),
            format!("domains.corp.connect_timeout_secs={LDAP_CONNECT_TIMEOUT_SECS}"),
            format!("domains.corp.operation_timeout_secs={LDAP_OPERATION_TIMEOUT_SECS}"),
            format!("phs.timeout_secs={PHS_TIMEOUT_SECS}"),
            "push.heartbeat_interval_secs=2".to_owned(),
            "push.projection_tick_ms=100".to_owned(),
            "push.max_batch_ops=50".to_owned(),
            "agent.shutdown_grace_secs=10".to_owned(),
        ] {
            cmd.args(["--set", &set]);
        }
        let child = cmd
            .env("CLOUDSYNC_LOG", "info")
            .env("NO_COLOR", "1")
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &clock.0)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Agent {
            child,
            config: config.to_owned(),
            log: log.to_owned(),
            clock: clock.0.clone(),
        }
    }

    /// The same agent started again over its state and log.
    pub fn restart(&mut self) {
        self.stop();
        let clock = FakeClock(self.clock.clone());
        *self = Agent::start(&self.config, &self.log, &clock);
    }

    /// `None` while it runs; its exit status once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, as a service manager stops it; waits (polled) up to 30 s, then SIGKILL. Returns
    /// the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Its log so far, without colour codes.
    pub fn log(&self) -> String {
        crate::ha::strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Polls its log until `done(log after byte offset from)` holds; `Err` with the tail after `within`.
    pub async fn wait_log(
        &self,
        from: usize,
        within: Duration,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let log = self.log();
            let tail = log.get(from..).unwrap_or("");
            if done(tail) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                return Err(format!(
                    "not within {within:?}: {what}; the agent's log since:\n{}",
                    last_lines(tail, 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Objects the cloud holds twice (two objects with one `onPremisesImmutableId`).
pub async fn cloud_duplicates(t: &TenantFixture) -> Vec<String> {
    let token = t.user_token(GA).await;
    let mut out = Vec::new();
    for kind in ["users", "groups", "contacts"] {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for o in t.graph_all(&token, &format!("/v1.0/{kind}?$top=999")).await {
            if let Some(a) = o["onPremisesImmutableId"].as_str() {
                *count.entry(a.to_owned()).or_default() += 1;
            }
        }
        out.extend(
            count
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(a, n)| format!("{kind}: anchor {a} is held by {n} cloud objects")),
        );
    }
    out
}

/// Polls until the tenant equals AD in full (the differential oracle), no object is there twice,
/// and every enabled in-scope user signs in with its current password; how long it took, or every
/// difference left after `within`. Sign-ins are tried only once Graph is equal, and then with a
/// growing pause (a refused sign-in counts towards the tenant's lockout).
pub async fn converge(
    dc: &LabDc,
    t: &TenantFixture,
    w: &World,
    within: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut signin_pause = Duration::from_millis(500);
    loop {
        let mut diffs = diff_oracle::compare(dc, t, &w.ous).await;
        diffs.extend(cloud_duplicates(t).await);
        let graph_equal = diffs.is_empty();
        if graph_equal {
            diffs.extend(diff_oracle::signin_failures(dc, t, &w.ous, &w.users_in_scope()).await);
        }
        if diffs.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!(
                "the tenant still differs from AD after {within:?} ({} differences):\n{}",
                diffs.len(),
                diffs
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if graph_equal {
            tokio::time::sleep(signin_pause).await;
            signin_pause = (signin_pause * 2).min(Duration::from_secs(8));
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
