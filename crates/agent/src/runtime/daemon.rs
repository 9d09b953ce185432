//! `agent run` with a tenant: the domain feeds ([`super::run_with_resyncs`]) plus four tasks under the
//! same cancellation token — projection on a short tick, the push stage, heartbeats, and the status
//! file writer ([`super::status::file`]). Heartbeats hand over restarts ([`super::restarts`]):
//! `Watermark`/`Full` make the domain's next pass a full read, `ForceDeletes`/`Full` release the
//! domain's staged deletes; a restart is acknowledged once all of it is done. Heartbeats carry the staged
//! deletes per configuration ([`super::health`]); one goes out at once when projection stages
//! deletes or a restart released them, rather than after the full interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::daemon::RunError;
use super::pipeline::{PROJECTION_CHUNK, Pipeline};
use super::restarts::{RestartTracker, ResyncRequests};
use super::status::file::Writer;
use crate::config::Config;
use crate::journal::Journal;
use crate::push::{self, PushStatus};
use cloudsync_api::config::RestartScope;

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
    let restarts = Arc::new(RestartTracker::default());
    let resyncs = ResyncRequests::new();
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
    let done = restarts.clone();
    let beat = beat_now.clone();
    let wake_status = status_wake.clone();
    tracker.spawn(async move {
        let mut unreleased: Vec<Release> = Vec::new();
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
                Some(r) = release_rx.recv() => unreleased.push(r),
            }
            // Releases that fail (e.g. the outbox is briefly unavailable) are retried every tick.
            let mut still = Vec::new();
            for r in unreleased.drain(..) {
                match runner.allow_deletes(r.domain.as_deref()).await {
                    Ok(n) => {
                        tracing::info!(released = n, domain = ?r.domain, restart = %r.id, "Staged deletes released by a restart.");
                        done.part_done(r.id);
                        beat.notify_one();
                        wake_status.notify_one();
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

    // Heartbeats: they carry the staged deletes and the finished restarts, and hand restarts over.
    let cancel = shutdown.clone();
    let feeds_resyncs = resyncs.clone();
    tracker.spawn(async move {
        let mut handed_over: Vec<Uuid> = Vec::new();
        loop {
            for id in resyncs.drain_done() {
                restarts.part_done(id);
            }
            let acks = restarts.to_acknowledge();
            let mut every = heartbeat_every;
            let health = super::health::heartbeat_reports(&staged_store, &domains);
            match cloud.heartbeat(&creds, acks.clone(), health).await {
                Ok(answer) => {
                    restarts.acknowledged(&acks);
                    every = every.min(Duration::from_secs(answer.heartbeat_interval_seconds.max(1)));
                    for r in answer.pending_restarts {
                        if handed_over.contains(&r.id) {
                            continue;
                        }
                        handed_over.push(r.id);
                        let domain = domains.get(&r.configuration_id).cloned();
                        let has = |scopes: &[RestartScope]| r.scopes.iter().any(|s| scopes.contains(s));
                        let releases = has(&[RestartScope::ForceDeletes, RestartScope::Full]);
                        let rereads = has(&[RestartScope::Watermark, RestartScope::Full]);
                        let mut parts = 0u8;
                        if rereads {
                            match &domain {
                                Some(d) => {
                                    tracing::info!(restart = %r.id, domain = %d, scopes = ?r.scopes, "The tenant asked for a full re-read of the domain.");
                                    resyncs.request(d, r.id);
                                    parts += 1;
                                }
                                None => tracing::warn!(restart = %r.id, configuration = %r.configuration_id, "A re-read was asked for a configuration this agent does not serve; acknowledged without effect."),
                            }
                        }
                        if releases {
                            parts += 1;
                        }
                        restarts.begin(r.id, parts);
                        if releases {
                            let _ = release_tx.send(Release { id: r.id, domain }).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Heartbeat failed."),
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(every) => {}
                () = beat_now.notified() => {}
                () = resyncs.wait_done() => {}
            }
        }
    });
    tracker.close();

    let feeds = super::run_with_resyncs(
        config,
        Arc::new(journal),
        shutdown.clone(),
        interactive,
        feeds_resyncs,
    )
    .await;
    shutdown.cancel();
    tracker.wait().await;
    feeds
}
