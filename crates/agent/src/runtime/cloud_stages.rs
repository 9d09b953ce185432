//! The cloud half of the agent: journal → projection → outbox → push, opened from the configuration
//! and the credentials file. Used by `agent sync-once` (drain and stop) and `agent run` (see
//! [`super::service`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::cloud::{AGENT_SCOPE, Cloud, CloudError};
use super::credentials::{AgentCredentials, CredentialsError};
use super::outbox_sink::OutboxSink;
use crate::config::{Config, TenantConfig};
use crate::journal::Journal;
use crate::projection::runner::{RunReport, Runner, RunnerError};
use crate::projection::store::{ProjectionStore, StoreError};
use crate::push::{
    self, Outbox, OutboxError, PushError, PushStatus, PushSummary, TenantClient, TlsOptions,
};

/// Events projected per `run_once` call.
pub const PROJECTION_CHUNK: usize = 20_000;

/// Why the cloud half could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
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
    #[error("projection configuration: {0}")]
    Projection(String),
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
    /// A call to the tenant failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

impl PipelineError {
    /// Whether trying again may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            PipelineError::Runner(e) => e.is_retriable(),
            PipelineError::Push(e) => e.is_retriable(),
            PipelineError::Cloud(e) => e.is_retriable(),
            PipelineError::Store(e) => e.is_retriable(),
            PipelineError::Outbox(e) => e.is_retriable(),
            _ => false,
        }
    }
}

/// Everything the cloud half needs, opened.
pub struct Pipeline {
    /// The `[tenant]` section.
    pub tenant: TenantConfig,
    /// The registration's credentials.
    pub creds: AgentCredentials,
    /// Registration/heartbeat client.
    pub cloud: Cloud,
    /// The push stage's client.
    pub client: Arc<TenantClient>,
    /// The outbox behind projection's sink.
    pub outbox: Arc<Outbox>,
    /// Projection.
    pub runner: Runner<OutboxSink>,
    /// Configuration id → domain DNS name.
    pub domains: BTreeMap<Uuid, String>,
    /// Push knobs.
    pub push: push::PushConfig,
}

impl Pipeline {
    /// Opens credentials, outbox, projection store and runner (restoring projection's state).
    pub fn open(config: &Config, journal: Journal) -> Result<Pipeline, PipelineError> {
        let tenant = config.tenant.clone().ok_or(PipelineError::NoTenant)?;
        let creds = AgentCredentials::load(&tenant.credentials_file)?;
        let mut by_domain = BTreeMap::new();
        for d in config.domains.values() {
            let id = d
                .configuration_id
                .or_else(|| creds.configuration_for(&d.dns_name))
                .ok_or_else(|| PipelineError::NoConfiguration(d.dns_name.clone()))?;
            by_domain.insert(d.dns_name.to_ascii_lowercase(), id);
        }
        let domains = by_domain.iter().map(|(d, id)| (*id, d.clone())).collect();
        let compiled = config.projection.compile().map_err(|es| {
            PipelineError::Projection(
                es.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let outbox = Arc::new(Outbox::open(&config.agent.outbox_dir())?);
        let store = ProjectionStore::open(&config.agent.projection_dir())?;
        let sink = OutboxSink::new(outbox.clone(), by_domain);
        let runner = Runner::open(compiled, journal, store, sink)?;
        let tls = TlsOptions {
            ca_pem: match &tenant.ca_file {
                Some(p) => Some(
                    std::fs::read(p)
                        .map_err(|e| CloudError::Build(format!("{}: {e}", p.display())))?,
                ),
                None => None,
            },
            insecure: tenant.insecure_skip_verify,
        };
        let push_creds = push::Credentials {
            base_url: tenant.url.clone(),
            token_endpoint: creds.token_endpoint.clone(),
            client_id: creds.client_id.clone(),
            client_secret: Zeroizing::new(creds.client_secret.to_string()),
            scope: AGENT_SCOPE.into(),
        };
        let client = Arc::new(
            TenantClient::new(push_creds, &tls, tenant.request_timeout())
                .map_err(|e| CloudError::Build(e.to_string()))?,
        );
        Ok(Pipeline {
            cloud: Cloud::new(&tenant)?,
            tenant,
            creds,
            client,
            outbox,
            runner,
            domains,
            push: config.push.to_push_config(),
        })
    }

    /// Projects every journal event not yet projected; returns the summed report.
    pub async fn project_all(&mut self) -> Result<RunReport, PipelineError> {
        let mut total = RunReport::default();
        loop {
            let r = self.runner.run_once(PROJECTION_CHUNK).await?;
            total.events += r.events;
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
        if total.events > 0 {
            self.runner.snapshot()?;
        }
        Ok(total)
    }

    /// Sends a heartbeat carrying the staged deletes of every configuration served (restarts it
    /// hands over are left for `agent run`; nothing is acknowledged here).
    pub async fn heartbeat(
        &self,
    ) -> Result<cloudsync_api::agent::HeartbeatResponse, PipelineError> {
        let health = super::health::heartbeat_reports(self.runner.store(), &self.domains);
        Ok(self
            .cloud
            .heartbeat(&self.creds, Vec::new(), health)
            .await?)
    }

    /// Pushes until every enqueued operation is acknowledged, or `cancel` fires.
    pub async fn push_until_drained(
        &self,
        cancel: CancellationToken,
    ) -> Result<(PushSummary, PushStatus), PipelineError> {
        let cfg = push::PushConfig {
            stop_when_drained: true,
            ..self.push.clone()
        };
        let (tx, rx) = watch::channel(PushStatus::default());
        let summary = push::run(self.outbox.clone(), self.client.clone(), cfg, cancel, tx).await?;
        let status = rx.borrow().clone();
        Ok((summary, status))
    }
}
