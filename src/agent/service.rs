//! `agent run` with a tenant: the domain feeds ([`super::run`]) plus three tasks under the same
//! cancellation token — projection on a short tick, the push stage, and heartbeats (which carry
//! restarts; `ForceDeletes`/`Full` release the domain's staged deletes). Heartbeats carry the staged
//! deletes per configuration ([`super::health`]); one goes out at once when projection stages
//! deletes or a restart released them, rather than after the full interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::daemon::RunError;
use super::pipeline::{PROJECTION_CHUNK, Pipeline};
use super::status::file::Writer;
use crate::api::config::RestartScope;
use crate::config::Config;
use crate::journal::Journal;
use crate::push::{self, PushStatus};

/// A restart to carry out: release the staged deletes of `domain`, then acknowledge `id`.
struct Release {
    id: Uuid,
    domain: Option<String>,
}

/// Runs the feeds and, when `pipeline` is given, projection, push and heartbeats, until `shutdown`.
pub async fn run_all(
    config: Config,
    journal: Journal,
    pipeline: Option<Pipeline>,
    shutdown: CancellationToken,
    interactive: bool,
) -> Result<(), RunError> {
    // The status file for `agent status`, which cannot open the databases while this runs.
    let status_wake = Arc::new(Notify::new());
    let Some(pipeline) = pipeline else {
        let writer = Writer {
            config: config.clone(),
            creds: None,
            journal: journal.clone(),
            projection: None,
            outbox: None,
            push: None,
        };
        let status = tokio::spawn(writer.run(status_wake, shutdown.clone()));
        let feeds = super::run(config, Arc::new(journal), shutdown.clone(), interactive).await;
        shutdown.cancel();
        let _ = status.await;
        return feeds;
    };
    let tick = Duration::from_millis(config.push.projection_tick_ms);
    let heartbeat_every = Duration::from_secs(config.push.heartbeat_interval_secs);
    let tracker = TaskTracker::new();
    let Pipeline {
        cloud,
        creds,
        client,
        outbox,
        mut runner,
        domains,
        push: push_cfg,
        ..
    } = pipeline;
    let (release_tx, mut release_rx) = mpsc::channel::<Release>(16);
    let acknowledged = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    // Projection's store is shared with the heartbeat task, which reads the staged deletes from it.
    let staged_store = runner.store().clone();
    let beat_now = Arc::new(Notify::new());
    let (push_tx, push_rx) = watch::channel(PushStatus::default());
    let writer = Writer {
        config: config.clone(),
        creds: Some(creds.clone()),
        journal: journal.clone(),
        projection: Some(staged_store.clone()),
        outbox: Some(outbox.clone()),
        push: Some(push_rx),
    };
    tracker.spawn(writer.run(status_wake.clone(), shutdown.clone()));

    // Projection: on a short tick, and for restarts handed over by the heartbeat task.
    let cancel = shutdown.clone();
    let acks = acknowledged.clone();
    let beat = beat_now.clone();
    let wake_status = status_wake.clone();
    tracker.spawn(async move {
        loop {
            loop {
                match runner.run_once(PROJECTION_CHUNK).await {
                    Ok(r) if r.events > 0 => {
                        tracing::info!(events = r.events, enqueued = r.enqueued, staged = r.staged, cursor = r.cursor, "Projected journal events.");
                        if r.staged > 0 {
                            // "Delete threshold exceeded" should reach the tenant now, not in ten minutes.
                            beat.notify_one();
                            wake_status.notify_one();
                        }
                        if r.events < PROJECTION_CHUNK as u64 {
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
                        return;
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(tick) => {}
                Some(r) = release_rx.recv() => {
                    match runner.allow_deletes(r.domain.as_deref()).await {
                        Ok(n) => {
                            tracing::info!(released = n, domain = ?r.domain, restart = %r.id, "Staged deletes released by a restart.");
                            if let Ok(mut a) = acks.lock() { a.push(r.id); }
                            beat.notify_one();
                            wake_status.notify_one();
                            wake_status.notify_one();
                        }
                        Err(e) => tracing::warn!(error = %e, restart = %r.id, "Could not release staged deletes; will retry with the next heartbeat."),
                    }
                }
            }
        }
        if let Err(e) = runner.snapshot() {
            tracing::warn!(error = %e, "Projection snapshot at shutdown failed; the next start replays.");
        }
    });

    // Push.
    let cancel = shutdown.clone();
    tracker.spawn(async move {
        match push::run(outbox, client, push_cfg, cancel.clone(), push_tx).await {
            Ok(s) => tracing::info!(checkpoint = s.checkpoint, "Push stage stopped."),
            Err(e) => {
                tracing::error!(error = %e, "Push stage stopped; the agent shuts down.");
                cancel.cancel();
            }
        }
    });

    // Heartbeats.
    let cancel = shutdown.clone();
    tracker.spawn(async move {
        let mut handed_over: Vec<Uuid> = Vec::new();
        loop {
            let acks: Vec<Uuid> = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
            let mut every = heartbeat_every;
            let health = super::health::heartbeat_reports(&staged_store, &domains);
            match cloud.heartbeat(&creds, acks.clone(), health).await {
                Ok(answer) => {
                    if let Ok(mut a) = acknowledged.lock() {
                        a.retain(|id| !acks.contains(id));
                    }
                    every = every.min(Duration::from_secs(answer.heartbeat_interval_seconds.max(1)));
                    for r in answer.pending_restarts {
                        if handed_over.contains(&r.id) {
                            continue;
                        }
                        handed_over.push(r.id);
                        let domain = domains.get(&r.configuration_id).cloned();
                        let releases = r.scopes.iter().any(|s| matches!(s, RestartScope::ForceDeletes | RestartScope::Full));
                        if r.scopes.iter().any(|s| matches!(s, RestartScope::Watermark | RestartScope::Full)) {
                            tracing::warn!(restart = %r.id, "A Watermark/Full restart asks for a re-read of AD; this agent does not reset its watermark from a heartbeat yet (delete the journal's checkpoint to force one).");
                        }
                        if releases {
                            let _ = release_tx.send(Release { id: r.id, domain }).await;
                        } else if let Ok(mut a) = acknowledged.lock() {
                            a.push(r.id);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Heartbeat failed."),
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(every) => {}
                () = beat_now.notified() => {}
            }
        }
    });
    tracker.close();

    let feeds = super::run(config, Arc::new(journal), shutdown.clone(), interactive).await;
    shutdown.cancel();
    tracker.wait().await;
    feeds
}
