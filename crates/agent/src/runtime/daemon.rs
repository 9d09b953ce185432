//! `agent run`: the daemon. Enters: the configuration, the journal and, with a `[tenant]`, the
//! opened [`CloudStages`]. Leaves: the same as its tasks, until the shutdown token fires.
//!
//! [`run_all`] starts one task per role under one cancellation token, each a struct with a
//! documented `run(self, cancel)`:
//! - the domain feeds and password hash sync ([`super::feeds::run_feeds`], in the foreground);
//! - [`StatusTask`]: the status file for `agent status` ([`super::status::file`]);
//! - unless `[metrics] listen = ""`, [`MetricsTask`]: `GET /metrics` ([`crate::metrics`]);
//! - with a tenant, [`ProjectionTask`] (projection on a short tick, and delete releases),
//!   [`PushTask`] (the push stage) and [`HeartbeatTask`] (heartbeats, restarts handed over).
//!
//! Configuration from the cloud ([`super::cloud_config`]): before the tasks start, the tenant's
//! configuration of every served domain is read and put in force; afterwards a heartbeat that
//! reports a new revision has the heartbeat task read it again and hand it to the projection task,
//! which checks it, swaps projection's configuration, and asks the feed of each domain whose scope
//! or mappings changed for a full re-read (objects out of scope are deleted, objects now in scope
//! created, changed mappings re-sent, each with "ConfigurationChanged" in the provisioning log).
//! The PHS cycles ask [`super::cloud_config::CloudSettings::phs_allowed`] before each cycle.
//!
//! Heartbeats hand over restarts ([`crate::control::restarts`]): `Watermark`/`Full` make the
//! domain's next pass a full read, `ForceDeletes`/`Full` release the domain's staged deletes; a
//! restart is acknowledged once all of it is done. Heartbeats carry the staged deletes per
//! configuration ([`crate::control::health`]); one goes out at once when projection stages deletes
//! or a restart released them, rather than after the full interval.
//!
//! Shutdown: when the feeds have stopped (themselves bounded by the grace period), the token is
//! cancelled for every task and they get [`task_deadline`] to finish; a task still running then is
//! logged at ERROR, aborted, and named in [`RunError::TasksOverran`]. Projection or push stopping
//! on an error they cannot retry shuts the agent down with [`RunError::TaskFailed`] (exit 1).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cloud_stages::{CloudStages, PROJECTION_CHUNK};
use super::feeds::{RunError, run_feeds_gated};
use super::metrics_task::{MetricsTask, Sources};
use super::outbox_sink::OutboxSink;
use super::status::file::Writer;
use crate::config::Config;
use crate::control::heartbeat::HeartbeatTask;
use crate::control::restarts::{Release, RestartTracker, ResyncRequests};
use crate::control::tenant_client::TenantClient;
use crate::journal::Journal;
use crate::projection::runner::Runner;
use crate::push::{self, Outbox, PushConfig, PushStatus};
use crate::runtime::cloud_config::CloudSettings;
use cloudsync_api::config::Configuration;

/// The status file writer as a daemon task.
pub struct StatusTask {
    /// What the file is built from.
    pub writer: Writer,
    /// Rewrites the file at once (deletes staged or released).
    pub wake: Arc<Notify>,
}

impl StatusTask {
    /// Rewrites the status file every few seconds and when woken, a last time when `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        self.writer.run(self.wake, cancel).await;
    }
}

/// Projection in the daemon: projects new journal events every `tick`, and carries out the delete
/// releases the heartbeat task hands over.
pub struct ProjectionTask {
    /// Projection, writing to the outbox.
    pub runner: Runner<OutboxSink>,
    /// How often to look for new events (`[push] projection_tick_ms`).
    pub tick: Duration,
    /// Delete releases from the heartbeat task.
    pub releases: mpsc::Receiver<Release>,
    /// Restarts in progress; a release is one part of its restart.
    pub restarts: Arc<RestartTracker>,
    /// Wakes the heartbeat task (deletes staged or released).
    pub beat_now: Arc<Notify>,
    /// Wakes the status file writer.
    pub status_wake: Arc<Notify>,
    /// The tenant's settings in force.
    pub cloud: Arc<CloudSettings>,
    /// Configurations with a new revision, from the heartbeat task.
    pub configurations: mpsc::Receiver<BTreeMap<String, Configuration>>,
    /// Full re-reads for the domains whose scope or mappings changed.
    pub resyncs: Arc<ResyncRequests>,
    /// Takeover images, when leases are in force ([`super::takeover`]).
    pub takeovers: Option<super::takeover::Takeovers>,
}

/// Puts the tenant's configurations in force in `runner` and asks for the re-reads they need.
fn apply_configurations(
    runner: &mut Runner<OutboxSink>,
    cloud: &CloudSettings,
    resyncs: &ResyncRequests,
    configs: &BTreeMap<String, Configuration>,
) {
    let applied = cloud.offer(configs, runner.config());
    if let Some(compiled) = applied.compiled {
        runner.reconfigure(compiled, applied.rereads.clone());
    }
    request_rereads(resyncs, &applied.rereads);
}

/// Asks the feeds for a full re-read of each domain (no tenant restart to acknowledge: nil id).
fn request_rereads(resyncs: &ResyncRequests, rereads: &[(String, String)]) {
    for (domain, why) in rereads {
        tracing::info!(domain = %domain, reason = %why, "The configuration changed: the domain is re-read so every object is evaluated again.");
        resyncs.request(domain, Uuid::nil());
    }
}

impl ProjectionTask {
    /// Projects until `cancel` fires, then writes projection's snapshot. A non-retriable projection
    /// error cancels `cancel` itself and is returned: the agent shuts down and exits non-zero.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), String> {
        let ProjectionTask {
            mut runner,
            tick,
            mut releases,
            restarts,
            beat_now,
            status_wake,
            cloud,
            mut configurations,
            resyncs,
            mut takeovers,
        } = self;
        let mut lease_changes = takeovers.as_ref().map(|t| t.subscribe());
        let mut unreleased: Vec<Release> = Vec::new();
        loop {
            loop {
                match runner.run_once(PROJECTION_CHUNK).await {
                    Ok(r) if r.events > 0 => {
                        tracing::info!(
                            events = r.events,
                            enqueued = r.enqueued,
                            staged = r.staged,
                            cursor = r.cursor,
                            "Projected journal events."
                        );
                        if r.staged > 0 {
                            // "Delete threshold exceeded" should reach the tenant now, not in ten minutes.
                            beat_now.notify_one();
                            status_wake.notify_one();
                        }
                        if r.events < PROJECTION_CHUNK as u64 && !r.more {
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(error = %e, "Projection failed; retrying on the next tick.");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Projection stopped; the agent shuts down.");
                        cancel.cancel();
                        return Err(e.to_string());
                    }
                }
            }
            if let Some(t) = takeovers.as_mut()
                && let Err(e) = t.step(&runner).await
            {
                tracing::warn!(error = %e, "Takeover image not enqueued; retrying on the next tick.");
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(tick) => {}
                () = crate::control::lease::changed(&mut lease_changes) => {}
                Some(r) = releases.recv() => unreleased.push(r),
                Some(configs) = configurations.recv() => {
                    apply_configurations(&mut runner, &cloud, &resyncs, &configs);
                    status_wake.notify_one();
                }
            }
            // Releases that fail (e.g. the outbox is briefly unavailable) are retried every tick.
            let mut still = Vec::new();
            for r in unreleased.drain(..) {
                match runner.allow_deletes(r.domain.as_deref()).await {
                    Ok(n) => {
                        tracing::info!(released = n, domain = ?r.domain, restart = %r.id, "Staged deletes released by a restart.");
                        restarts.part_done(r.id);
                        beat_now.notify_one();
                        status_wake.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, restart = %r.id, "Could not release staged deletes; retrying on the next tick.");
                        still.push(r);
                    }
                }
            }
            unreleased = still;
        }
        if let Err(e) = runner.snapshot() {
            tracing::warn!(error = %e, "Projection snapshot at shutdown failed; the next start replays.");
        }
        Ok(())
    }
}

/// The push stage in the daemon.
pub struct PushTask {
    /// The outbox projection fills.
    pub outbox: Arc<Outbox>,
    /// The agent's client.
    pub client: Arc<TenantClient>,
    /// `[push]`.
    pub config: PushConfig,
    /// Where the stage publishes its status (for the status file).
    pub status: watch::Sender<PushStatus>,
    /// The leases the heartbeat task learns; only held configurations are pushed.
    pub leases: Option<Arc<crate::control::lease::Leases>>,
}

impl PushTask {
    /// Pushes until `cancel` fires (in-flight batches get `shutdown_grace`). An error that stops
    /// the stage cancels `cancel` itself and is returned: the agent shuts down and exits non-zero.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), String> {
        match push::run_leased(
            self.outbox,
            self.client,
            self.config,
            cancel.clone(),
            self.status,
            self.leases,
            true,
        )
        .await
        {
            Ok(s) => {
                tracing::info!(checkpoint = s.checkpoint, "Push stage stopped.");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "Push stage stopped; the agent shuts down.");
                cancel.cancel();
                Err(e.to_string())
            }
        }
    }
}

/// How long `agent run` waits for the tenant's configuration before it starts the feeds anyway.
pub const CLOUD_CONFIG_AT_START: Duration = Duration::from_secs(20);

/// How long the tasks may take after the feeds stopped and the token was cancelled: the agent's
/// grace period or the push stage's (in-flight batches), whichever is longer, plus five seconds
/// for the last status file and projection's snapshot.
pub fn task_deadline(config: &Config) -> Duration {
    Duration::from_secs(config.agent.shutdown_grace_secs).max(config.push.shutdown_grace)
        + Duration::from_secs(5)
}

/// Runs the feeds and, when `stages` is given, projection, push and heartbeats, until `shutdown`.
pub async fn run_all(
    config: Config,
    journal: Journal,
    stages: Option<CloudStages>,
    shutdown: CancellationToken,
    interactive: bool,
) -> Result<(), RunError> {
    let deadline = task_deadline(&config);
    let mut tasks = Tasks::default();
    // The status file for `agent status`, which cannot open the databases while this runs.
    let status_wake = Arc::new(Notify::new());
    let mut writer = Writer {
        config: config.clone(),
        creds: None,
        journal: journal.clone(),
        projection: None,
        outbox: None,
        push: None,
        cloud: None,
    };
    let resyncs = ResyncRequests::new();
    // Until the tenant's settings are known every domain's PHS follows `[phs] enabled` alone.
    let mut phs_gate: super::phs::PhsGate = Arc::new(|_: &str| true);
    let mut scraped = Sources {
        journal: journal.clone(),
        outbox: None,
        push: None,
    };
    if let Some(mut stages) = stages {
        // The tenant's configuration before anything is projected; a tenant that does not answer
        // leaves the settings accepted before (or the TOML's) in force.
        let rereads = tokio::select! {
            () = shutdown.cancelled() => Vec::new(),
            r = tokio::time::timeout(CLOUD_CONFIG_AT_START, stages.apply_cloud_config()) => {
                r.unwrap_or_else(|_| {
                    tracing::warn!(waited_secs = CLOUD_CONFIG_AT_START.as_secs(), "The tenant's configuration was not read in time; the settings in force stay and the heartbeats read it later.");
                    Vec::new()
                })
            }
        };
        request_rereads(&resyncs, &rereads);
        let CloudStages {
            creds,
            client,
            outbox,
            runner,
            domains,
            push: push_config,
            cloud,
            ..
        } = stages;
        let gate = cloud.clone();
        phs_gate = Arc::new(move |d: &str| gate.phs_allowed(d));
        writer.cloud = Some(cloud.clone());
        let (configs_tx, configs_rx) = mpsc::channel(4);
        let (release_tx, release_rx) = mpsc::channel::<Release>(16);
        let restarts = Arc::new(RestartTracker::default());
        let beat_now = Arc::new(Notify::new());
        let (push_tx, push_rx) = watch::channel(PushStatus::default());
        writer.creds = Some(creds.clone());
        // Projection's store is shared with the heartbeat task, which reads the staged deletes.
        writer.projection = Some(runner.store().clone());
        writer.outbox = Some(outbox.clone());
        scraped.outbox = Some(outbox.clone());
        scraped.push = Some(push_rx.clone());
        writer.push = Some(push_rx);
        // Which configurations this agent holds: the heartbeats learn it, the push stage obeys it.
        let leases = Arc::new(crate::control::lease::Leases::default());
        let domains_by_config = domains.clone();
        let heartbeat = HeartbeatTask {
            client: client.clone(),
            creds,
            staged: runner.store().clone(),
            domains,
            every: Duration::from_secs(config.push.heartbeat_interval_secs),
            beat_now: beat_now.clone(),
            restarts: restarts.clone(),
            resyncs: resyncs.clone(),
            releases: release_tx,
            configurations: Some(configs_tx),
            revisions: cloud.revisions(),
            leases: leases.clone(),
        };
        let projection = ProjectionTask {
            runner,
            tick: Duration::from_millis(config.push.projection_tick_ms),
            releases: release_rx,
            restarts,
            beat_now,
            status_wake: status_wake.clone(),
            cloud,
            configurations: configs_rx,
            resyncs: resyncs.clone(),
            takeovers: Some(super::takeover::Takeovers::new(
                leases.clone(),
                resyncs.clone(),
                &domains_by_config,
            )),
        };
        let push = PushTask {
            outbox,
            client,
            config: push_config,
            status: push_tx,
            leases: Some(leases),
        };
        // Password writeback: the tenant hands requests out only for configurations whose writeback
        // switch is on, so the task always runs with a tenant.
        if let (Some(tenant), Some(creds)) = (config.tenant.as_ref(), writer.creds.clone()) {
            let writeback = super::writeback::WritebackTask {
                config: config.clone(),
                creds,
                credentials_file: tenant.credentials_file.clone(),
                client: push.client.clone(),
                journal: journal.clone(),
                conns: Default::default(),
            };
            tasks.spawn("writeback", writeback.run(shutdown.clone()));
        }
        tasks.spawn_fallible("projection", projection.run(shutdown.clone()));
        tasks.spawn_fallible("push", push.run(shutdown.clone()));
        tasks.spawn("heartbeat", heartbeat.run(shutdown.clone()));
    }
    let status = StatusTask {
        writer,
        wake: status_wake,
    };
    tasks.spawn("status file", status.run(shutdown.clone()));
    match config.metrics.address() {
        Some(listen) => {
            let metrics = MetricsTask {
                listen,
                sources: scraped,
            };
            tasks.spawn("metrics", metrics.run(shutdown.clone()));
        }
        None => tracing::info!("Metrics endpoint switched off ([metrics] listen = \"\")."),
    }

    let feeds = run_feeds_gated(
        config,
        Arc::new(journal),
        shutdown.clone(),
        interactive,
        resyncs,
        phs_gate,
    )
    .await;
    shutdown.cancel();
    let waited = tasks.wait(deadline).await;
    feeds.and(waited)
}

/// A task's name and the error it stopped the agent with.
type TaskFailure = (&'static str, String);

/// The daemon's tasks, by name.
#[derive(Default)]
struct Tasks {
    set: JoinSet<Result<(), TaskFailure>>,
    names: Vec<(&'static str, AbortHandle)>,
}

impl Tasks {
    fn spawn(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.spawn_fallible(name, async move {
            task.await;
            Ok(())
        });
    }

    /// A task that can stop the agent with an error (projection, push): [`Tasks::wait`] returns
    /// the first such error, so that `agent run` exits non-zero and a service manager restarts it
    /// (`Restart=on-failure`; before, a projection stopped by a poisoned outbox exited 0 and
    /// stayed down — found by the fault campaign's full disk).
    fn spawn_fallible(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) {
        let handle = self
            .set
            .spawn(async move { task.await.map_err(|e| (name, e)) });
        self.names.push((name, handle));
    }

    /// Waits for every task at most `deadline`; the ones still running then are logged, aborted
    /// and named in the error. When all finished in time, the first task that failed is the error.
    async fn wait(mut self, deadline: Duration) -> Result<(), RunError> {
        let set = &mut self.set;
        let mut failed: Option<TaskFailure> = None;
        let all = async {
            while let Some(done) = set.join_next().await {
                match done {
                    Err(e) => tracing::error!(error = %e, "A daemon task panicked."),
                    Ok(Err(failure)) => {
                        failed.get_or_insert(failure);
                    }
                    Ok(Ok(())) => {}
                }
            }
        };
        if tokio::time::timeout(deadline, all).await.is_ok() {
            return match failed {
                Some((task, error)) => Err(RunError::TaskFailed { task, error }),
                None => Ok(()),
            };
        }
        let running: Vec<&'static str> = self
            .names
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .map(|(name, _)| *name)
            .collect();
        self.set.abort_all();
        tracing::error!(deadline_secs = deadline.as_secs(), tasks = ?running, "Daemon tasks still running at the shutdown deadline; abandoned.");
        Err(RunError::TasksOverran {
            deadline,
            tasks: running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_stopped_the_agent_makes_the_wait_fail_with_its_error() {
        let mut tasks = Tasks::default();
        tasks.spawn("quick", async {});
        tasks.spawn_fallible("projection", async {
            Err("outbox: the outbox is poisoned after a failed flush; restart the agent".to_owned())
        });
        tasks.spawn_fallible("push", async { Ok(()) });
        match tasks.wait(Duration::from_secs(15)).await {
            Err(RunError::TaskFailed { task, error }) => {
                assert_eq!(task, "projection");
                assert!(error.contains("poisoned"), "{error}");
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        let mut fine = Tasks::default();
        fine.spawn_fallible("push", async { Ok(()) });
        assert!(fine.wait(Duration::from_secs(1)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_final_wait_names_the_tasks_still_running_at_the_deadline() {
        let mut tasks = Tasks::default();
        tasks.spawn("quick", async {});
        tasks.spawn("stuck", std::future::pending());
        let started = tokio::time::Instant::now();
        match tasks.wait(Duration::from_secs(15)).await {
            Err(RunError::TasksOverran { deadline, tasks }) => {
                assert_eq!(deadline, Duration::from_secs(15));
                assert_eq!(tasks, vec!["stuck"]);
            }
            other => panic!("expected TasksOverran, got {other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        let mut done = Tasks::default();
        done.spawn("quick", async {});
        assert!(done.wait(Duration::from_secs(1)).await.is_ok());
    }
}
