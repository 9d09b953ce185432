//! The domain feeds: one LDAP pass per domain ([`read_domains_once`], for `agent sync-once`) or one
//! `FeedTask` per domain that keeps reading until cancelled ([`run_feeds`]), with three-step
//! shutdown (signal, wait at most the grace period, abandon). Enters: the configuration, the journal
//! (as the sources' [`EventSink`]) and full re-read requests. Leaves: events in the journal.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::progress::Progress;
use crate::config::Config;
use crate::control::restarts::ResyncRequests;
use crate::event::ResyncReason;
use crate::journal::Journal;
use crate::source::ldap::backoff::Backoff;
use crate::source::ldap::conn::{self, DcConn};
use crate::source::ldap::dirsync::{self, PassOptions, PassReport};
use crate::source::ldap::{DomainConfig, SyncMode};
use crate::source::ldap::{LdapSourceError, notify, usn_poll};
use crate::source::{EventSink, SinkError};

/// The result of one domain's pass in [`read_domains_once`].
#[derive(Debug)]
pub struct DomainOutcome {
    /// The domain's configuration label.
    pub label: String,
    /// What the pass did, or why it failed.
    pub result: Result<PassReport, LdapSourceError>,
}

/// Runs one pass (DirSync or uSNChanged, per configuration) on an open connection; with `resync`,
/// a full read whatever the checkpoint says.
pub async fn run_domain_pass<S: EventSink>(
    conn: &mut DcConn,
    cfg: &DomainConfig,
    sink: &S,
    memory_budget: usize,
    progress: &Progress,
    resync: Option<ResyncReason>,
) -> Result<PassReport, LdapSourceError> {
    let callback = |n: u64| progress.update(n);
    let opts = PassOptions {
        memory_budget,
        progress: Some(&callback),
        resync,
    };
    let report = match cfg.mode {
        SyncMode::Dirsync => dirsync::run_pass(conn, cfg, sink, &opts).await,
        SyncMode::UsnPoll => usn_poll::run_pass(conn, cfg, sink, &opts).await,
    };
    progress.finish();
    report
}

fn budget(config: &Config) -> usize {
    usize::try_from(config.agent.memory_budget_kib.saturating_mul(1 << 10)).unwrap_or(usize::MAX)
}

/// One initial-or-delta pass per domain, one domain after the other.
pub async fn read_domains_once<S: EventSink>(
    config: &Config,
    sink: &S,
    interactive: bool,
) -> Vec<DomainOutcome> {
    read_domains_once_with(config, sink, interactive, &[]).await
}

/// [`read_domains_once`], with a full read (`ResyncStarted { reason: Requested }`) for the domains
/// in `full` (DNS names, any case): those whose configuration changed
/// ([`super::cloud_config::prepare_once`]).
pub async fn read_domains_once_with<S: EventSink>(
    config: &Config,
    sink: &S,
    interactive: bool,
    full: &[String],
) -> Vec<DomainOutcome> {
    let mut out = Vec::new();
    for (label, cfg) in &config.domains {
        let progress = Progress::new(&cfg.dns_name, interactive);
        let resync = full
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&cfg.dns_name))
            .then_some(ResyncReason::Requested);
        let result = match conn::connect(cfg).await {
            Ok(mut dc) => {
                let r =
                    run_domain_pass(&mut dc, cfg, sink, budget(config), &progress, resync).await;
                dc.close().await;
                r
            }
            Err(e) => Err(e),
        };
        out.push(DomainOutcome {
            label: label.clone(),
            result,
        });
    }
    out
}

/// Why [`run_feeds`] or [`super::daemon::run_all`] ended other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Tasks were still busy when the shutdown grace period ran out; their work since the last
    /// append is lost from this run but will be re-read (checkpoints only advance with appends).
    #[error("shutdown grace period of {0:?} exceeded")]
    ShutdownTimeout(Duration),
    /// The journal refused a write and cannot take more (poisoned); the agent stopped every feed.
    #[error("the journal cannot be written: {0}")]
    Journal(#[source] SinkError),
    /// A daemon task (projection or push) stopped on an error it cannot retry, and with it the
    /// agent; the exit is non-zero so that a service manager restarts it (`Restart=on-failure`),
    /// which reopens the stores.
    #[error("the {task} task stopped the agent: {error}")]
    TaskFailed {
        /// The task.
        task: &'static str,
        /// Its error.
        error: String,
    },
    /// Tasks of the daemon (projection, push, heartbeats, status file) were still running when the
    /// deadline after the feeds stopped passed; they were abandoned (aborted) and are named here.
    /// What they had made durable stays; a projection snapshot not written is replayed next start.
    #[error("shutdown deadline of {deadline:?} exceeded; abandoned: {}", tasks.join(", "))]
    TasksOverran {
        /// The deadline.
        deadline: Duration,
        /// The tasks still running.
        tasks: Vec<&'static str>,
    },
}

/// The first fatal error of any domain task; setting it also cancels the whole agent.
#[derive(Clone)]
struct Fatal {
    error: Arc<std::sync::Mutex<Option<SinkError>>>,
    shutdown: CancellationToken,
}

impl Fatal {
    fn raise(&self, error: SinkError) {
        let mut first = self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error);
        }
        drop(first);
        self.shutdown.cancel();
    }

    fn take(&self) -> Option<SinkError> {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Keeps every domain's feed going until `shutdown` fires, then waits for the passes in flight
/// (at most `agent.shutdown_grace_secs`, plus a second) and returns. Password hash sync's cycles
/// run beside the feeds, woken by them. Full re-reads are requested through `resyncs` (the
/// tenant's `Watermark`/`Full` restarts; [`ResyncRequests::new`] when nobody asks).
pub async fn run_feeds(
    config: Config,
    journal: Arc<Journal>,
    shutdown: CancellationToken,
    interactive: bool,
    resyncs: Arc<ResyncRequests>,
) -> Result<(), RunError> {
    run_feeds_gated(
        config,
        journal,
        shutdown,
        interactive,
        resyncs,
        Arc::new(|_: &str| true),
    )
    .await
}

/// [`run_feeds`] with the tenant's password hash sync switch: each domain's PHS cycle runs only
/// while `phs_gate` allows it (`[phs] enabled` stays the local master switch).
pub async fn run_feeds_gated(
    config: Config,
    journal: Arc<Journal>,
    shutdown: CancellationToken,
    interactive: bool,
    resyncs: Arc<ResyncRequests>,
    phs_gate: super::phs::PhsGate,
) -> Result<(), RunError> {
    let tracker = TaskTracker::new();
    let grace = Duration::from_secs(config.agent.shutdown_grace_secs);
    let memory_budget = budget(&config);
    let fatal = Fatal {
        error: Arc::new(std::sync::Mutex::new(None)),
        shutdown: shutdown.clone(),
    };
    // Password hash sync: its cycles run beside the feeds; the feed's sink wakes them.
    let signals = super::phs::PhsSignals::for_config(&config);
    for task in super::phs::phs_tasks(&config, &journal, &signals, &phs_gate) {
        tracker.spawn(task.run(shutdown.child_token()));
    }
    let sink = Arc::new(super::phs::PasswordSignalSink::new(journal, signals));
    for (label, cfg) in config.domains {
        let wake = Arc::new(Notify::new());
        if cfg.notifications {
            tracker.spawn(notify::watch(
                cfg.clone(),
                wake.clone(),
                shutdown.child_token(),
            ));
        }
        let task = FeedTask {
            label,
            cfg,
            sink: sink.clone(),
            wake,
            fatal: fatal.clone(),
            memory_budget,
            grace,
            interactive,
            resyncs: resyncs.clone(),
        };
        tracker.spawn(task.run(shutdown.child_token()));
    }
    tracker.close();
    shutdown.cancelled().await;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "Shutting down: finishing passes in flight."
    );
    let drained = tokio::time::timeout(grace + Duration::from_secs(1), tracker.wait()).await;
    if let Some(error) = fatal.take() {
        return Err(RunError::Journal(error));
    }
    match drained {
        Ok(()) => {
            tracing::info!("All domain feeds stopped.");
            Ok(())
        }
        Err(_) => Err(RunError::ShutdownTimeout(grace)),
    }
}

/// One domain's feed in [`run_feeds`].
struct FeedTask<S> {
    label: String,
    cfg: DomainConfig,
    sink: Arc<S>,
    /// Fired by the domain's change notifications (`notify::watch`).
    wake: Arc<Notify>,
    fatal: Fatal,
    memory_budget: usize,
    grace: Duration,
    interactive: bool,
    resyncs: Arc<ResyncRequests>,
}

impl<S: EventSink> FeedTask<S> {
    /// Passes until `cancel` fires: after each, waits for the poll interval (or the backoff after a
    /// failure), a change notification or a re-read request. A pass in flight at cancellation gets
    /// the grace period, then is abandoned; a journal that refuses writes stops the whole agent.
    async fn run(self, cancel: CancellationToken) {
        let FeedTask {
            label,
            cfg,
            sink,
            wake,
            fatal,
            memory_budget,
            grace,
            interactive,
            resyncs,
        } = self;
        let mut backoff = Backoff::default();
        let mut conn: Option<DcConn> = None;
        let domain = cfg.dns_name.clone();
        let resync_wake = resyncs.waker(&domain);
        loop {
            let requested = resyncs.take(&domain);
            let resync = (!requested.is_empty()).then_some(ResyncReason::Requested);
            if resync.is_some() {
                tracing::info!(domain = %domain, restarts = ?requested, "A restart asked for a full re-read of the domain; this pass ignores the stored checkpoint.");
            }
            let pass_number = resyncs.pass_started(&domain);
            let pass = async {
                let dc = match conn.as_mut() {
                    Some(dc) => dc,
                    None => conn.insert(conn::connect(&cfg).await?),
                };
                let progress = Progress::new(&domain, interactive);
                run_domain_pass(dc, &cfg, sink.as_ref(), memory_budget, &progress, resync).await
            };
            // A pass in flight may finish during the grace period; after it, it is abandoned (the
            // checkpoint has not moved past what was appended, so nothing is lost).
            let outcome = tokio::select! {
                r = pass => Some(r),
                () = async { cancel.cancelled().await; tokio::time::sleep(grace).await } => None,
            };
            // A full read that did not complete is asked for again; a completed one is acknowledged.
            match &outcome {
                Some(Ok(_)) => {
                    resyncs.pass_completed(&domain, pass_number);
                    resyncs.finished(requested);
                }
                _ => resyncs.failed(&domain, requested),
            }
            let delay = match outcome {
                None => {
                    tracing::warn!(domain = %domain, "Abandoning a pass at the end of the shutdown grace period.");
                    return;
                }
                Some(Ok(report)) => {
                    backoff.reset();
                    crate::metrics::synced(&domain);
                    if report.events > 0 || report.resync.is_some() {
                        tracing::info!(domain = %domain, label = %label, entries = report.entries, events = report.events, last_seq = ?report.last_seq, elapsed_ms = report.elapsed.as_millis() as u64, "Pass appended events.");
                    } else {
                        tracing::debug!(domain = %domain, "Pass found no change.");
                    }
                    cfg.poll_interval()
                }
                Some(Err(LdapSourceError::Sink(err))) if !err.is_retriable() => {
                    tracing::error!(domain = %domain, error = %err, "The journal refused events; stopping the agent.");
                    fatal.raise(err);
                    break;
                }
                Some(Err(LdapSourceError::Sink(err))) => {
                    // Retriable (e.g. the disk below the journal's reserve): the DC is fine, so the
                    // connection stays; the next pass resumes from the last checkpoint appended.
                    let delay = backoff.next_delay();
                    tracing::warn!(domain = %domain, error = %err, retry_in_ms = delay.as_millis() as u64, "The journal cannot take the pass's events now; the pass is retried from the last checkpoint.");
                    delay
                }
                Some(Err(err)) => {
                    conn = None;
                    let delay = backoff.next_delay();
                    if err.is_retriable() {
                        tracing::warn!(domain = %domain, error = %err, retry_in_ms = delay.as_millis() as u64, "Pass failed; reconnecting.");
                    } else {
                        tracing::error!(domain = %domain, error = %err, retry_in_ms = delay.as_millis() as u64, "Pass failed and needs attention; retrying anyway.");
                    }
                    delay
                }
            };
            if cancel.is_cancelled() {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = resync_wake.notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
        if let Some(dc) = conn.take() {
            dc.close().await;
        }
    }
}
