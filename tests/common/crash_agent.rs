//! The crash campaign's agents (`tests/crash_campaign.rs`): an `agent run` daemon with its state, log and
//! metrics endpoint, started and SIGKILLed ([`Agent`]); a kill aimed at a phase its metrics show
//! ([`aim`]) or at the moment the tenant's log shows a batch from it applied ([`aim_applied`]); the logs
//! kept for the post-mortem ([`KeepLogs`]).
//!
//! Use with the modules `crash_campaign.rs` declares (`common`, `agent_run`, `ha`, `crash_probe`,
//! `tenant_fixture`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::agent_run;
use crate::common::lab::LabDc;
use crate::crash_probe::{self, Phase, Sample};
use crate::ha::{Daemon, agent_id, strip_ansi};
use crate::tenant_fixture::TenantFixture;

/// One agent: its state directory, configuration, log, and the daemon when running.
pub struct Agent {
    pub name: &'static str,
    pub id: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    pub daemon: Option<Daemon>,
    pub starts: usize,
    pub metrics: Option<String>,
}

impl Agent {
    pub fn new(name: &'static str, dc: &LabDc, t: &TenantFixture, ous: &[String]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let config = agent_run::write_config(dc, t, dir.path(), ous);
        agent_run::register(&config);
        Agent {
            name,
            id: agent_id(dir.path()),
            log: dir.path().join("agent.log"),
            dir,
            config,
            daemon: None,
            starts: 0,
            metrics: None,
        }
    }

    pub fn start(&mut self) {
        assert!(self.daemon.is_none(), "{} is running", self.name);
        self.daemon = Some(Daemon::start(&self.config, &self.log, &["corp"]));
        self.starts += 1;
        self.metrics = None;
    }

    /// SIGKILL (and reaped).
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
    }

    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub fn count(&self, text: &str) -> usize {
        self.log().matches(text).count()
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// The metrics URL of the running process (its log's `Metrics endpoint listening.` line of this
    /// start), once it is listening.
    pub fn metrics_url(&mut self) -> Option<String> {
        if self.metrics.is_none() {
            let log = self.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("Metrics endpoint listening"))
                .collect();
            if lines.len() >= self.starts {
                let listen = crash_probe::field(lines[self.starts - 1], "listen")?;
                self.metrics = Some(format!("http://{listen}/metrics"));
            }
        }
        self.metrics.clone()
    }

    pub async fn sample(&mut self, http: &reqwest::Client) -> Option<Sample> {
        let url = self.metrics_url()?;
        Sample::scrape(http, &url).await
    }

    /// A sample, polled until the agent answers (after a start it needs a moment).
    pub async fn sample_now(&mut self, http: &reqwest::Client) -> Sample {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = self.sample(http).await {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s metrics never answered:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The artifacts directory: `$CLOUDSYNC_ARTIFACTS`, else `target/`.
pub fn artifacts() -> PathBuf {
    std::env::var_os("CLOUDSYNC_ARTIFACTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    )
}

/// Copies the agents' and the tenant's logs to `<artifacts>/crash-campaign-logs/` when dropped (also
/// on a failure, before the temporary directories go): the post-mortem of a seed. The logs hold no
/// password (ARCHITECTURE.md invariant 4).
pub struct KeepLogs(pub Vec<(&'static str, PathBuf)>);

impl Drop for KeepLogs {
    fn drop(&mut self) {
        let dir = artifacts().join("crash-campaign-logs");
        let _ = std::fs::create_dir_all(&dir);
        for (name, path) in &self.0 {
            let _ = std::fs::copy(path, dir.join(name));
        }
    }
}

/// One SIGKILL: who, where it landed, the figures.
pub struct Kill {
    pub phase: Phase,
    pub line: String,
    pub gap_ms: u64,
}

/// Polls `agent`'s metrics until they show `target` (against `base`, a sample of the same process
/// from before the round's changes), then SIGKILLs it at once; after `within` it is killed wherever
/// it is. The phase is the one the last sample showed, checked against the log where the log can
/// tell (a PHS cycle or a full read that completed between the sample and the kill does not count).
pub async fn aim(
    http: &reqwest::Client,
    agent: &mut Agent,
    base: &Sample,
    changed: bool,
    target: Phase,
    within: Duration,
) -> Kill {
    let started = Instant::now();
    let (cycles_before, passes_before) = (
        agent.count("Password hash sync cycle done"),
        agent.count("Pass appended events"),
    );
    loop {
        let sample = agent.sample(http).await;
        let sampled = Instant::now();
        let phases = sample
            .as_ref()
            .map(|s| Phase::of(s, base, changed))
            .unwrap_or_default();
        let hit = phases.contains(&target);
        if hit || started.elapsed() >= within {
            agent.kill();
            let gap_ms = sampled.elapsed().as_millis() as u64;
            let mut phase = if hit {
                target
            } else {
                phases.first().copied().unwrap_or(Phase::Idle)
            };
            let now = sample.unwrap_or_default();
            let mut detail = phase.detail(&now, base);
            // The log is final after SIGKILL: what it says completed, completed before the kill.
            if phase == Phase::Phs && agent.count("Password hash sync cycle done") > cycles_before {
                detail =
                    format!("a PHS cycle completed between the sample and the kill ({detail})");
                phase = Phase::Idle;
            }
            if phase == Phase::InitialSync && agent.count("Pass appended events") > passes_before {
                detail =
                    format!("the full read completed between the sample and the kill ({detail})");
                phase = Phase::Idle;
            }
            return Kill {
                phase,
                line: format!(
                    "{} killed {} ({detail}; sampled {gap_ms} ms before the SIGKILL; aimed at {})",
                    agent.name,
                    phase.as_str(),
                    target.as_str()
                ),
                gap_ms,
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills the holder `agent` as soon as the tenant's log shows a batch from it applied beyond the
/// `before` it had applied when the round began (polled every few ms); after `within`, wherever it
/// is. Returns the kill and the batch id.
pub async fn aim_applied(
    t: &TenantFixture,
    agent: &mut Agent,
    before: usize,
    within: Duration,
) -> (Kill, Option<String>) {
    let started = Instant::now();
    loop {
        let applied = crash_probe::applied_from(&t.log(), &agent.id);
        let seen = Instant::now();
        if applied.len() > before || started.elapsed() >= within {
            agent.kill();
            let gap_ms = seen.elapsed().as_millis() as u64;
            let batch = applied.get(before).cloned();
            let (phase, detail) = match &batch {
                Some(b) => (
                    Phase::PushApplied,
                    format!("the tenant had applied its batch {b}"),
                ),
                None => (
                    Phase::Idle,
                    "no batch applied within the aim's window".to_owned(),
                ),
            };
            let kill = Kill {
                phase,
                line: format!(
                    "{} killed {} ({detail}; the log line seen {gap_ms} ms before the SIGKILL; aimed at push-applied)",
                    agent.name,
                    phase.as_str()
                ),
                gap_ms,
            };
            return (kill, batch);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}
