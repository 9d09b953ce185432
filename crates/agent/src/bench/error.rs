//! Why a run of the harness stopped.

use crate::control::register::RegisterError;
use crate::control::tenant_client::TenantError;
use crate::journal::JournalError;
use crate::phs::PhsError;
use crate::push::OutboxError;
use crate::runtime::cloud_stages::CloudStagesError;
use crate::source::SinkError;

use super::tenant_process::SpawnError;

/// A failed run. None is retried: the harness reports what stopped it and exits.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--stages` names an unknown stage, or one without the stage it needs.
    #[error("--stages: {0}")]
    Stages(String),
    /// `--state-dir` exists and is not empty (a run never mixes with an earlier one's state).
    #[error("--state-dir {0} is not empty")]
    StateDirInUse(std::path::PathBuf),
    /// A file or directory of the run could not be written or read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The local tenant did not start.
    #[error(transparent)]
    Tenant(#[from] SpawnError),
    /// The agent configuration the harness writes was refused (a bug in the harness).
    #[error("the harness's agent configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// Registering the agent with the tenant failed.
    #[error("registering with the local tenant: {0}")]
    Register(#[from] RegisterError),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An append through the journal's event sink failed.
    #[error("appending to the journal: {0}")]
    Append(#[from] SinkError),
    /// The password hash pool failed.
    #[error(transparent)]
    Phs(#[from] PhsError),
    /// Projection or push failed.
    #[error(transparent)]
    CloudStages(#[from] CloudStagesError),
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The raw sled limit run failed.
    #[error("the raw sled limit: {0}")]
    Sled(#[from] sled::Error),
    /// Reading the tenant back failed.
    #[error("reading the tenant back: {0}")]
    Graph(#[from] TenantError),
    /// The tenant's in-process apply (the push stage's limit) failed.
    #[error("the tenant's in-process apply: {0}")]
    ApplyLimit(String),
    /// The push stage stopped before the outbox was drained.
    #[error("the push stage stopped at outbox sequence {checkpoint} of {last}")]
    NotDrained {
        /// The push checkpoint reached.
        checkpoint: u64,
        /// The outbox's last sequence.
        last: u64,
    },
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
        move |source| BenchError::Io { context, source }
    }
}
