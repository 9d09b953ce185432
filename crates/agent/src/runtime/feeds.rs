//! `sync_once` and the long-running `run` loop, with three-step shutdown (signal, wait, force).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::progress::Progress;
use super::restarts::ResyncRequests;
use crate::config::{Config, DomainConfig, SyncMode};
use crate::event::ResyncReason;
use crate::journal::Journal;
use crate::source::EventSink;
use crate::source::ldap::backoff::Backoff;
use crate::source::ldap::conn::{self, DcConn};
use crate::source::ldap::dirsync::{self, PassOptions, PassReport};
use crate::source::ldap::{LdapSourceError, notify, usn_poll};

/// The result of one domain's pass in [`sync_once`].
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
pub async fn sync_once<S: EventSink>(
    config: &Config,
    sink: &S,
    interactive: bool,
) -> Vec<DomainOutcome> {
    let mut out = Vec::new();
    for (label, cfg) in &config.domains {
        let progress = Progress::new(&cfg.dns_name, interactive);
        let result = match conn::connect(cfg).await {
            Ok(mut dc) => {
                let r = run_domain_pass(&mut dc, cfg, sink, budget(config), &progress, None).await;
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

/// Why [`run`] ended other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Tasks were still busy when the shutdown grace period ran out; their work since the last
    /// append is lost from this run but will be re-read (checkpoints only advance with appends).
    #[error("shutdown grace period of {0:?} exceeded")]
    ShutdownTimeout(Duration),
    /// The journal refused a write and cannot take more (poisoned); the agent stopped every feed.
    #[error("the journal cannot be written: {0}")]
    Journal(String),
}

/// The first fatal error of any domain task; setting it also cancels the whole agent.
#[derive(Clone)]
struct Fatal {
    error: Arc<std::sync::OnceLock<String>>,
    shutdown: CancellationToken,
}

impl Fatal {
    fn raise(&self, message: String) {
        let _ = self.error.set(message);
        self.shutdown.cancel();
    }
}

/// Keeps every domain's feed going until `shutdown` fires, then waits for the passes in flight
/// (at most `agent.shutdown_grace_secs`) and returns.
pub async fn run(
    config: Config,
    journal: Arc<Journal>,
    shutdown: CancellationToken,
    interactive: bool,
) -> Result<(), RunError> {
    run_with_resyncs(
        config,
        journal,
        shutdown,
        interactive,
        ResyncRequests::new(),
    )
    .await
}

/// [`run`], with full re-reads requested through `resyncs` (the tenant's `Watermark`/`Full` restarts).
pub async fn run_with_resyncs(
    config: Config,
    journal: Arc<Journal>,
    shutdown: CancellationToken,
    interactive: bool,
    resyncs: Arc<ResyncRequests>,
) -> Result<(), RunError> {
    let tracker = TaskTracker::new();
    let grace = Duration::from_secs(config.agent.shutdown_grace_secs);
    let memory_budget = budget(&config);
    let fatal = Fatal {
        error: Arc::new(std::sync::OnceLock::new()),
        shutdown: shutdown.clone(),
    };
    // Password hash sync: its cycles run beside the feeds; the feed's sink wakes them.
    let signals = super::phs::PhsSignals::for_config(&config);
    super::phs::spawn_phs(&config, &journal, &signals, &shutdown, &tracker);
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
        tracker.spawn(domain_loop(
            label,
            cfg,
            sink.clone(),
            wake,
            shutdown.child_token(),
            fatal.clone(),
            memory_budget,
            grace,
            interactive,
            resyncs.clone(),
        ));
    }
    tracker.close();
    shutdown.cancelled().await;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "Shutting down: finishing passes in flight."
    );
    let drained = tokio::time::timeout(grace + Duration::from_secs(1), tracker.wait()).await;
    if let Some(message) = fatal.error.get() {
        return Err(RunError::Journal(message.clone()));
    }
    match drained {
        Ok(()) => {
            tracing::info!("All domain feeds stopped.");
            Ok(())
        }
        Err(_) => Err(RunError::ShutdownTimeout(grace)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn domain_loop<S: EventSink>(
    label: String,
    cfg: DomainConfig,
    sink: Arc<S>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    fatal: Fatal,
    memory_budget: usize,
    grace: Duration,
    interactive: bool,
    resyncs: Arc<ResyncRequests>,
) {
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
            Some(Ok(_)) => resyncs.finished(requested),
            _ => resyncs.failed(&domain, requested),
        }
        let delay = match outcome {
            None => {
                tracing::warn!(domain = %domain, "Abandoning a pass at the end of the shutdown grace period.");
                return;
            }
            Some(Ok(report)) => {
                backoff.reset();
                if report.events > 0 || report.resync.is_some() {
                    tracing::info!(domain = %domain, label = %label, entries = report.entries, events = report.events, last_seq = ?report.last_seq, elapsed_ms = report.elapsed.as_millis() as u64, "Pass appended events.");
                } else {
                    tracing::debug!(domain = %domain, "Pass found no change.");
                }
                cfg.poll_interval()
            }
            Some(Err(LdapSourceError::Sink(err))) if !err.is_retriable() => {
                tracing::error!(domain = %domain, error = %err, "The journal refused events; stopping the agent.");
                fatal.raise(err.to_string());
                break;
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
