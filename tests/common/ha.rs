//! Helpers of the high-availability tests (`tests/ha_failover.rs`, `tests/ha_spread.rs`): `agent run`
//! daemons that a test signals (SIGKILL, SIGSTOP/SIGCONT), the tenant's view of the leases, polling
//! with a deadline for a holder or for the tenant to equal AD, and what the logs say.
//!
//! Use with `mod common;`, `#[path = "common/tenant.rs"] mod tenant_fixture;`,
//! `#[path = "common/agent_run.rs"] mod agent_run;`, `#[path = "common/diff_oracle.rs"] mod diff_oracle;`
//! and `#[path = "common/ha.rs"] mod ha;` in the test crate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::lab::LabDc;
use crate::diff_oracle;
use crate::tenant_fixture::TenantFixture;

/// The agents' and the tenant's heartbeat interval (the tenant's lease is twice it: 4 s).
pub const HEARTBEAT_SECS: u64 = 2;
/// Takeover bound: two heartbeat intervals, plus slack for process start-up and a busy machine.
pub const TAKEOVER_BOUND: Duration = Duration::from_secs(2 * HEARTBEAT_SECS + 4);

/// One `agent run`, SIGKILLed on drop (the HA tests kill agents anyway; no graceful stop needed).
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// Its configuration file (to start it again over the same state).
    pub config: PathBuf,
    /// The `[domains.*]` keys it serves (each polled every second).
    domains: Vec<String>,
}

impl Daemon {
    /// Starts `agent run --config config` serving the domains `domains` (their `[domains.*]` keys),
    /// heartbeats every [`HEARTBEAT_SECS`], stderr appended to `log`.
    pub fn start(config: &Path, log: &Path, domains: &[&str]) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
        cmd.args(["agent", "run", "--config", config.to_str().unwrap()])
            .args([
                "--set",
                &format!("push.heartbeat_interval_secs={HEARTBEAT_SECS}"),
            ])
            .args(["--set", "push.projection_tick_ms=100"])
            // Operations linger in the push window, so a holder stopped in a stream of changes
            // has some to send the moment it continues: its late batches.
            .args(["--set", "push.linger_ms=2000"]);
        for d in domains {
            cmd.args(["--set", &format!("domains.{d}.poll_interval_secs=1")]);
        }
        let child = cmd
            .env("CLOUDSYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_owned(),
            config: config.to_owned(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    /// The same agent started again over its state and log.
    pub fn restart(&self) -> Daemon {
        let domains: Vec<&str> = self.domains.iter().map(String::as_str).collect();
        Daemon::start(&self.config, &self.log, &domains)
    }

    /// Sends `sig` (`-KILL`, `-STOP`, `-CONT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig}");
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls its log until it contains `text`; panics with the log after `within`.
    pub async fn wait_for_log(&self, text: &str, within: Duration) {
        self.wait_for_log_count(text, 1, within).await;
    }

    /// Polls its log until `text` occurs `n` times (a restarted daemon appends to its old log);
    /// panics with the log after `within`.
    pub async fn wait_for_log_count(&self, text: &str, n: usize, within: Duration) {
        let start = Instant::now();
        while self.log().matches(text).count() < n {
            assert!(
                start.elapsed() < within,
                "not {n} times {text:?} in the agent's log within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent id `agent register` wrote into `dir/credentials.json`.
pub fn agent_id(dir: &Path) -> String {
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.join("credentials.json")).unwrap()).unwrap();
    creds["agentId"].as_str().unwrap().to_owned()
}

/// A configuration's lease as `GET /api/v1/configurations` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The configuration id.
    pub configuration: String,
    /// Its domain.
    pub domain: String,
    /// The holder's agent id.
    pub holder: String,
    /// The epoch of the grant.
    pub epoch: u64,
    /// When the holder got it (RFC 3339).
    pub since: String,
    /// False once the holder missed its renewal.
    pub live: bool,
}

/// Every configuration's lease (configurations never leased are left out), in the tenant's order.
pub async fn leases(t: &TenantFixture, token: &str) -> Vec<Lease> {
    let v = t.get_json(token, "/api/v1/configurations").await;
    v["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no configuration list: {v}"))
        .iter()
        .filter_map(|c| {
            let l = &c["lease"];
            Some(Lease {
                configuration: c["id"].as_str()?.to_owned(),
                domain: c["spec"]["domain"].as_str()?.to_owned(),
                holder: l["holderAgentId"].as_str()?.to_owned(),
                epoch: l["epoch"].as_u64()?,
                since: l["since"].as_str()?.to_owned(),
                live: l["live"].as_bool()?,
            })
        })
        .collect()
}

/// The first configuration's lease: (holder, epoch) (the one-domain tests).
pub async fn lease(t: &TenantFixture, token: &str) -> Option<(String, u64)> {
    leases(t, token)
        .await
        .into_iter()
        .next()
        .map(|l| (l.holder, l.epoch))
}

/// Polls the leases until `done` holds; returns them and how long it took. Panics with the last
/// leases seen after `within`.
pub async fn wait_for_leases(
    t: &TenantFixture,
    token: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&[Lease]) -> bool,
) -> (Vec<Lease>, Duration) {
    let start = Instant::now();
    loop {
        let now = leases(t, token).await;
        if done(&now) {
            return (now, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "not within {within:?}: {what}; leases: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `holder` holds the first configuration's lease; returns its epoch and how long it took.
pub async fn wait_for_holder(
    t: &TenantFixture,
    token: &str,
    holder: &str,
    within: Duration,
) -> (u64, Duration) {
    let (now, took) = wait_for_leases(t, token, within, &format!("{holder} holds"), |l| {
        l.first().is_some_and(|l| l.holder == holder)
    })
    .await;
    (now[0].epoch, took)
}

/// Polls until the tenant equals AD in full for every domain (`(DC, OUs in scope)`); returns how
/// long it took.
pub async fn converge(
    domains: &[(&LabDc, &[String])],
    t: &TenantFixture,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let diffs = diff_oracle::compare_domains(domains, t).await;
        if diffs.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the tenant still differs from AD after {within:?} ({} differences):\n{}",
            diffs.len(),
            diffs
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The last takeover image logged ("Takeover image enqueued … operations=N … waited_ms=W"): its
/// size, and how long the new holder waited from the grant for a fresh read (how far behind it was).
pub fn takeover_image(log: &str) -> Option<(u64, u64)> {
    let log = strip_ansi(log);
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Takeover image enqueued"))?;
    let field = |name: &str| -> Option<u64> {
        line.split(&format!("{name}="))
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("operations")?, field("waited_ms")?))
}

/// The log without its terminal colour codes (`ESC [ … m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many batches the tenant's log says it applied from `agent`.
pub fn applied_by(tenant_log: &str, agent: &str) -> usize {
    tenant_log
        .lines()
        .filter(|l| l.contains("Batch applied.") && l.contains(agent))
        .count()
}
