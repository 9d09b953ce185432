//! The cloud stages of the agent, opened: journal → projection → outbox → push, plus the agent's
//! tenant client. Enters: the configuration, the journal and the credentials file. Leaves: a
//! [`CloudStages`] that `agent sync-once` drains ([`super::sync_once`]), `agent run` hands to its
//! tasks ([`super::daemon`]), and `agent provision`/`allow-deletes` drive directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cloud_config::CloudSettings;
use super::outbox_sink::OutboxSink;
use super::progress::Progress;
use crate::config::Config;
use crate::control::credentials::{AgentCredentials, CredentialsError};
use crate::control::heartbeat::send_heartbeat;
use crate::control::tenant_client::{TenantClient, TenantConfig, TenantError};
use crate::journal::Journal;
use crate::projection::config::ConfigError as ProjectionConfigError;
use crate::projection::runner::{RunReport, Runner, RunnerError};
use crate::projection::store::{ProjectionStore, StoreError};
use crate::push::{self, Outbox, OutboxError, PushError, PushStatus, PushSummary};

/// Events projected per `run_once` call.
pub const PROJECTION_CHUNK: usize = 2_000;

/// Why the cloud stages could not open or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CloudStagesError {
    /// The configuration has no `[tenant]` section.
    #[error("the configuration has no [tenant] section")]
    NoTenant,
    /// The credentials file is missing, too open or malformed.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A domain has no tenant configuration (neither `configuration_id` nor one from registration).
    #[error(
        "domain {0} has no tenant configuration: run `cloudsync agent register` or set domains.<label>.configuration_id"
    )]
    NoConfiguration(String),
    /// The `[projection]` section does not compile (validation should have caught it).
    #[error("projection configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Projection(Vec<ProjectionConfigError>),
    /// Projection's store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Projecting failed.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The push stage stopped with an error.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A call to the tenant failed, or its client could not be built.
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

impl CloudStagesError {
    /// Whether trying again may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            CloudStagesError::Runner(e) => e.is_retriable(),
            CloudStagesError::Push(e) => e.is_retriable(),
            CloudStagesError::Tenant(e) => e.is_retriable(),
            CloudStagesError::Store(e) => e.is_retriable(),
            CloudStagesError::Outbox(e) => e.is_retriable(),
            _ => false,
        }
    }
}

/// Everything the cloud stages need, opened.
pub struct CloudStages {
    /// The `[tenant]` section.
    pub tenant: TenantConfig,
    /// The registration's credentials.
    pub creds: AgentCredentials,
    /// The agent's client (heartbeats and the push stage).
    pub client: Arc<TenantClient>,
    /// The outbox behind projection's sink.
    pub outbox: Arc<Outbox>,
    /// Projection.
    pub runner: Runner<OutboxSink>,
    /// Configuration id → domain DNS name.
    pub domains: BTreeMap<Uuid, String>,
    /// `[push]`.
    pub push: push::PushConfig,
    /// Draw projection's and push's progress on a terminal (`agent sync-once`); else log lines.
    pub interactive: bool,
    /// The tenant's per-domain settings in force ([`super::cloud_config`]).
    pub cloud: Arc<CloudSettings>,
    /// The leases `agent sync-once`'s heartbeat learned ([`crate::control::lease`]).
    pub leases: Arc<crate::control::lease::Leases>,
    /// Whether a heartbeat answer carried leases (then the push stage obeys them).
    pub leased: std::sync::atomic::AtomicBool,
}

/// The tenant configuration of every configured domain (lower-case DNS name → id): the domain's
/// `configuration_id`, else the one registration recorded.
pub fn configurations_by_domain(
    config: &Config,
    creds: &AgentCredentials,
) -> Result<BTreeMap<String, Uuid>, CloudStagesError> {
    let mut by_domain = BTreeMap::new();
    for d in config.domains.values() {
        let id = d
            .configuration_id
            .or_else(|| creds.configuration_for(&d.dns_name))
            .ok_or_else(|| CloudStagesError::NoConfiguration(d.dns_name.clone()))?;
        by_domain.insert(d.dns_name.to_ascii_lowercase(), id);
    }
    Ok(by_domain)
}

impl CloudStages {
    /// Opens credentials, outbox, projection store and runner (restoring projection's state).
    pub fn open(config: &Config, journal: Journal) -> Result<CloudStages, CloudStagesError> {
        let tenant = config.tenant.clone().ok_or(CloudStagesError::NoTenant)?;
        let creds = AgentCredentials::load(&tenant.credentials_file)?;
        let by_domain = configurations_by_domain(config, &creds)?;
        let domains = by_domain.iter().map(|(d, id)| (*id, d.clone())).collect();
        let outbox = Arc::new(Outbox::open(&config.agent.outbox_dir())?);
        let store = ProjectionStore::open(&config.agent.projection_dir())?;
        // The TOML's [projection] with the tenant's settings accepted before (a start without the
        // tenant keeps them); the tenant is asked again by `apply_cloud_config`.
        let cloud = CloudSettings::load(config.projection.clone(), store.clone());
        let compiled = cloud.compiled().map_err(CloudStagesError::Projection)?;
        let sink = OutboxSink::new(outbox.clone(), by_domain);
        let runner = Runner::open(compiled, journal, store, sink)?;
        let client = Arc::new(TenantClient::agent(&tenant, &creds)?);
        Ok(CloudStages {
            tenant,
            creds,
            client,
            outbox,
            runner,
            domains,
            push: config.push.clone(),
            interactive: false,
            cloud,
            leases: Default::default(),
            leased: Default::default(),
        })
    }

    /// Reads the tenant's configuration of every served domain and puts what changed in force
    /// (see [`super::cloud_config`]); returns the domains to re-read, with why — including those
    /// whose settings changed while the agent was stopped. Bounded by the client's timeout; a
    /// tenant that does not answer leaves the settings in force.
    pub async fn apply_cloud_config(&mut self) -> Vec<(String, String)> {
        let configs = super::cloud_config::fetch(&self.client, &self.domains).await;
        let mut rereads = self.runner.take_rereads();
        let applied = self.cloud.offer(&configs, self.runner.config());
        if let Some(compiled) = applied.compiled {
            self.runner.reconfigure(compiled, applied.rereads.clone());
        }
        for (d, why) in applied.rereads {
            match rereads.iter_mut().find(|(x, _)| *x == d) {
                Some(r) => r.1 = why,
                None => rereads.push((d, why)),
            }
        }
        rereads
    }

    /// Projects every journal event not yet projected and writes projection's snapshot (what a
    /// one-shot `agent sync-once` leaves for the next start); returns the summed report.
    pub async fn project_all(&mut self) -> Result<RunReport, CloudStagesError> {
        let total = self.project_pending().await?;
        if total.events > 0 {
            self.runner.snapshot()?;
        }
        Ok(total)
    }

    /// Projects every journal event not yet projected as the daemon does: a snapshot only each
    /// [`crate::projection::runner::Runner::snapshot_every`] events, none at the end (the snapshot
    /// is the whole state, so writing one after a small delta costs in proportion to the
    /// directory). Returns the summed report.
    pub async fn project_pending(&mut self) -> Result<RunReport, CloudStagesError> {
        let mut total = RunReport::default();
        let progress = Progress::stage(
            "projection",
            "all domains",
            "events projected",
            Some(self.runner.backlog()),
            self.interactive,
        );
        loop {
            let r = self.runner.run_once(PROJECTION_CHUNK).await?;
            total.events += r.events;
            progress.update(total.events);
            total.enqueued += r.enqueued;
            total.staged += r.staged;
            total.cursor = r.cursor;
            for d in r.exceeded {
                if !total.exceeded.contains(&d) {
                    total.exceeded.push(d);
                }
            }
            if r.events == 0 {
                break;
            }
        }
        progress.finish_at(total.events);
        Ok(total)
    }

    /// Sends a heartbeat carrying the staged deletes of every configuration served (restarts it
    /// hands over are left for `agent run`; nothing is acknowledged here).
    pub async fn heartbeat(
        &self,
    ) -> Result<cloudsync_api::agent::HeartbeatResponse, CloudStagesError> {
        let health = crate::control::health::heartbeat_reports(self.runner.store(), &self.domains);
        let answer = send_heartbeat(&self.client, &self.creds, Vec::new(), health).await?;
        if !answer.leases.is_empty() {
            self.leases.update(&answer.leases);
            self.leased
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(answer)
    }

    /// Pushes until every enqueued operation is acknowledged, or `cancel` fires.
    pub async fn push_until_drained(
        &self,
        cancel: CancellationToken,
    ) -> Result<(PushSummary, PushStatus), CloudStagesError> {
        let cfg = push::PushConfig {
            stop_when_drained: true,
            ..self.push.clone()
        };
        let (tx, rx) = watch::channel(PushStatus::default());
        let backlog = self
            .outbox
            .last_seq()?
            .saturating_sub(self.outbox.checkpoint()?);
        let progress = Progress::stage(
            "push",
            "all domains",
            "operations acknowledged",
            Some(backlog),
            self.interactive,
        );
        let mut watched = rx.clone();
        let shown = async {
            while watched.changed().await.is_ok() {
                progress.update(watched.borrow().ops_acknowledged);
            }
        };
        // After a heartbeat that granted leases, only held configurations go, under their epoch.
        let leases = self
            .leased
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| self.leases.clone());
        let pushed = push::run_leased(
            self.outbox.clone(),
            self.client.clone(),
            cfg,
            cancel,
            tx,
            leases,
            // `sync-once` makes no takeover image, so a standby's operations wait for one.
            false,
        );
        // `run` owns the sender: when it returns, `changed` fails and the watcher ends with it.
        let (summary, ()) = tokio::join!(pushed, shown);
        let summary = summary?;
        let status = rx.borrow().clone();
        progress.finish_at(status.ops_acknowledged);
        Ok((summary, status))
    }
}
