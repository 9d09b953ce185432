//! Heartbeats: the call, and the daemon's task that sends them. Enters: the agent's client and
//! credentials, projection's store (the staged deletes each heartbeat reports, [`super::health`])
//! and the restarts finished since the last heartbeat. Leaves: heartbeats to the tenant, and the
//! restarts the tenant hands over — full re-reads to the feeds ([`ResyncRequests`]), delete
//! releases to the projection task ([`Release`]) — and, when a served configuration's revision
//! moved, that configuration read again and handed to the projection task, which puts the
//! tenant's settings in force (`crate::runtime::cloud_config`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::credentials::AgentCredentials;
use super::restarts::{Release, RestartTracker, ResyncRequests};
use super::tenant_client::{TenantClient, TenantError};
use crate::projection::store::ProjectionStore;
use cloudsync_api::agent::{AgentConfigurationHealth, HeartbeatRequest, HeartbeatResponse};
use cloudsync_api::config::{Configuration, RestartScope};

/// Sends a heartbeat with the restarts carried out since the last one and the agent-side health of
/// every configuration served (see [`super::health`]).
pub async fn send_heartbeat(
    client: &TenantClient,
    creds: &AgentCredentials,
    acknowledged: Vec<Uuid>,
    configurations: Vec<AgentConfigurationHealth>,
) -> Result<HeartbeatResponse, TenantError> {
    let url = client.url(&format!("/api/v1/agents/{}/heartbeat", creds.agent_id));
    let body = HeartbeatRequest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        acknowledged_restarts: acknowledged,
        configurations,
        binary_sha256: super::executable::running_sha256().await,
    };
    client
        .agent_json(&url, |token| {
            client.http().post(&url).bearer_auth(token).json(&body)
        })
        .await
}

/// The daemon's heartbeat task: a heartbeat every `every` (or the tenant's shorter interval),
/// counted from the start of the previous one, at once when `beat_now` or a finished re-read wakes
/// it. Each carries the staged deletes and the finished restarts, and hands new restarts over.
pub struct HeartbeatTask {
    /// The agent's client.
    pub client: Arc<TenantClient>,
    /// The registration (the agent id names the heartbeat URL).
    pub creds: AgentCredentials,
    /// Projection's store, read for the staged deletes.
    pub staged: ProjectionStore,
    /// Configuration id → domain DNS name.
    pub domains: BTreeMap<Uuid, String>,
    /// The configured interval (`[push] heartbeat_interval_secs`).
    pub every: Duration,
    /// Wakes the task for an early heartbeat (deletes staged or released).
    pub beat_now: Arc<Notify>,
    /// Restarts in progress, acknowledged once every part is done.
    pub restarts: Arc<RestartTracker>,
    /// Full re-reads handed to the feeds.
    pub resyncs: Arc<ResyncRequests>,
    /// Delete releases handed to the projection task.
    pub releases: mpsc::Sender<Release>,
    /// Configurations whose revision moved, read again (domain → configuration), for the
    /// projection task; `None`: the tenant's settings are not followed.
    pub configurations: Option<mpsc::Sender<BTreeMap<String, Configuration>>>,
    /// The revision in force per configuration (from the settings accepted so far).
    pub revisions: BTreeMap<Uuid, u64>,
    /// The leases each answer grants, for the push stage ([`super::lease`]).
    pub leases: Arc<super::lease::Leases>,
}

impl HeartbeatTask {
    /// Sends heartbeats until `cancel` fires. A heartbeat in flight (token request included) is
    /// abandoned when it does: shutdown never waits for the tenant's answer or the request timeout.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut handed_over: Vec<Uuid> = Vec::new();
        loop {
            for id in self.resyncs.drain_done() {
                self.restarts.part_done(id);
            }
            let acks = self.restarts.to_acknowledge();
            let started = Instant::now();
            let health = super::health::heartbeat_reports(&self.staged, &self.domains);
            let sent = tokio::select! {
                () = cancel.cancelled() => break,
                r = send_heartbeat(&self.client, &self.creds, acks.clone(), health) => r,
            };
            let mut every = self.every;
            let mut standby_wake: Option<Instant> = None;
            match sent {
                Ok(answer) => {
                    self.restarts.acknowledged(&acks);
                    every = every.min(Duration::from_secs(
                        answer.heartbeat_interval_seconds.max(1),
                    ));
                    // A standby beats again right after the holder's lease would run out
                    // (counted from the answer, as the tenant counts `expiresInMs`).
                    if let Some(expiry) = self.leases.update(&answer.leases) {
                        standby_wake = Some(after(
                            Instant::now(),
                            expiry.max(Duration::from_millis(200)),
                        ));
                    }
                    for r in answer.pending_restarts {
                        if handed_over.contains(&r.id) {
                            continue;
                        }
                        handed_over.push(r.id);
                        self.hand_over(r).await;
                    }
                    let moved: Vec<(Uuid, u64)> = answer
                        .configurations
                        .iter()
                        .filter(|c| self.domains.contains_key(&c.id))
                        .filter(|c| self.revisions.get(&c.id) != Some(&c.revision))
                        .map(|c| (c.id, c.revision))
                        .collect();
                    if !moved.is_empty() {
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = self.refetch(&moved) => {}
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Heartbeat failed."),
            }
            // Due `every` after this heartbeat started, not after its answer: a slow answer (the
            // tenant's apply lock, its flush, a loaded machine) must not stretch the time between
            // a holder's renewals towards the lease length (twice the interval).
            let due = standby_wake.map_or(after(started, every), |w| w.min(after(started, every)));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
                () = self.beat_now.notified() => {}
                () = self.resyncs.wait_done() => {}
            }
        }
    }

    /// Reads the configurations whose revision moved and hands them to the projection task; a
    /// configuration that cannot be read is asked for again at the next heartbeat.
    async fn refetch(&mut self, moved: &[(Uuid, u64)]) {
        let Some(tx) = &self.configurations else {
            return;
        };
        let wanted: BTreeMap<Uuid, String> = moved
            .iter()
            .filter_map(|(id, _)| self.domains.get(id).map(|d| (*id, d.clone())))
            .collect();
        let fetched = crate::runtime::cloud_config::fetch(&self.client, &wanted).await;
        for (id, domain) in &wanted {
            if let Some(c) = fetched.get(&domain.to_ascii_lowercase()) {
                tracing::info!(configuration = %id, domain = %domain, revision = c.revision, "The tenant's configuration has a new revision.");
                self.revisions.insert(*id, c.revision);
            }
        }
        if !fetched.is_empty() && tx.send(fetched).await.is_err() {
            tracing::debug!("The projection task is gone; the configuration is not applied.");
        }
    }

    /// Starts a restart: a re-read for the feeds, a release for the projection task, or both.
    async fn hand_over(&self, r: cloudsync_api::agent::PendingRestart) {
        let domain = self.domains.get(&r.configuration_id).cloned();
        let has = |scopes: &[RestartScope]| r.scopes.iter().any(|s| scopes.contains(s));
        let releases = has(&[RestartScope::ForceDeletes, RestartScope::Full]);
        let rereads = has(&[RestartScope::Watermark, RestartScope::Full]);
        let mut parts = 0u8;
        if rereads {
            match &domain {
                Some(d) => {
                    tracing::info!(restart = %r.id, domain = %d, scopes = ?r.scopes, "The tenant asked for a full re-read of the domain.");
                    self.resyncs.request(d, r.id);
                    parts += 1;
                }
                None => {
                    tracing::warn!(restart = %r.id, configuration = %r.configuration_id, "A re-read was asked for a configuration this agent does not serve; acknowledged without effect.")
                }
            }
        }
        if releases {
            parts += 1;
        }
        self.restarts.begin(r.id, parts);
        if releases {
            let _ = self.releases.send(Release { id: r.id, domain }).await;
        }
    }
}

/// `at + d`, or a year after `at` when that overflows (`heartbeat_interval_secs` is the user's number).
fn after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(at)
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
