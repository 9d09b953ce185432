//! `GET /metrics` in the daemon. Enters: the bound address, the journal, the outbox and the push
//! stage's status (read at each scrape). Leaves: the Prometheus text format; other paths 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::metrics::{Labels, label, metrics};
use crate::push::{Outbox, PushStatus};
use crate::runtime::outbox_sink::PRODUCER;

/// What a scrape reads besides the counters.
#[derive(Clone)]
pub struct Sources {
    /// The journal (last seq, consumer cursors).
    pub journal: Journal,
    /// The outbox, with a tenant.
    pub outbox: Option<Arc<Outbox>>,
    /// The push stage's status, with a tenant.
    pub push: Option<watch::Receiver<PushStatus>>,
}

/// The metrics endpoint as a daemon task.
pub struct MetricsTask {
    /// Where to listen (`[metrics] listen`).
    pub listen: SocketAddr,
    /// What scrapes read.
    pub sources: Sources,
}

impl MetricsTask {
    /// Serves `/metrics` until `cancel` fires. An address that cannot be bound is logged at ERROR
    /// and the agent goes on without metrics (syncing matters more than its numbers).
    pub async fn run(self, cancel: CancellationToken) {
        let listener = match tokio::net::TcpListener::bind(self.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %self.listen, error = %e, "Cannot listen for metrics; the agent runs without them.");
                return;
            }
        };
        let bound = listener.local_addr().map_or(self.listen, |a| a);
        tracing::info!(listen = %bound, path = "/metrics", "Metrics endpoint listening.");
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.sources);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "Metrics endpoint stopped.");
        }
    }
}

async fn scrape(State(s): State<Sources>) -> Response {
    refresh(&s);
    match metrics().encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Sets a counter the push stage keeps (it only grows within a run, as a counter must).
fn store(f: &Family<Labels, Counter>, result: &str, v: u64) {
    f.get_or_create(&label("result", result))
        .inner()
        .store(v, Ordering::Relaxed);
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Sets the scrape-time families from the stores and the push status.
fn refresh(s: &Sources) {
    let m = &metrics().m;
    let last = s.journal.last_seq().unwrap_or(0);
    m.journal_last_seq.set(gauge_value(last));
    // Consumers by name: the journal's cursors, where `projection` is its snapshot (retention);
    // with a tenant, `projection` is what was projected into the outbox (the live progress).
    let mut cursors: std::collections::BTreeMap<String, u64> = match s.journal.cursors() {
        Ok(c) => c.into_iter().collect(),
        Err(e) => {
            tracing::debug!(error = %e, "Metrics: journal cursors unreadable.");
            Default::default()
        }
    };
    if let Some(o) = &s.outbox
        && let Ok(c) = o.producer_cursor(PRODUCER)
    {
        cursors.insert(PRODUCER.to_owned(), c.unwrap_or(0));
    }
    for (name, cursor) in cursors {
        m.journal_lag
            .get_or_create(&label("consumer", &name))
            .set(gauge_value(last.saturating_sub(cursor)));
    }
    if let Some(o) = &s.outbox {
        match (o.last_seq(), o.checkpoint()) {
            (Ok(l), Ok(c)) => {
                m.outbox_depth.set(gauge_value(l.saturating_sub(c)));
            }
            _ => tracing::debug!("Metrics: outbox unreadable."),
        }
    }
    if let Some(p) = &s.push {
        let p = p.borrow();
        store(&m.push_batches, "answered", p.batches_answered);
        store(&m.push_batches, "failed", p.calls_failed);
        store(&m.push_operations, "ok", p.ops_acknowledged);
        store(&m.push_operations, "retried", p.ops_retried);
        store(&m.push_operations, "refused", p.objects_quarantined);
        m.push_throttled
            .inner()
            .store(p.throttled, Ordering::Relaxed);
        m.push_retries.inner().store(
            p.ops_retried.saturating_add(p.calls_failed),
            Ordering::Relaxed,
        );
    }
}
