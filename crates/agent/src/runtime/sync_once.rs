//! `agent sync-once`: one pass of everything, then stop. Enters: the configuration, the journal and
//! [`SyncOnceOptions`]. Leaves: a [`SyncOnceReport`] for the CLI to print — one feed pass per
//! domain ([`super::feeds::read_domains_once`]), one password hash sync cycle per domain when
//! enabled, and with a `[tenant]` projection of every new event, a heartbeat and a push until the
//! outbox is drained (or the timeout or the cancellation token stops it).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cloud_stages::{CloudStages, CloudStagesError};
use super::feeds::{DomainOutcome, read_domains_once_with};
use super::phs::{PhsWireError, replicate_hashes_once_gated};
use crate::config::Config;
use crate::journal::Journal;
use crate::projection::runner::RunReport;
use crate::push::{PushStatus, PushSummary};
use crate::source::phs::cycle::CycleReport;

/// How [`sync_once`] runs.
#[derive(Debug, Clone)]
pub struct SyncOnceOptions {
    /// Draw progress on a terminal.
    pub interactive: bool,
    /// Stop pushing after this long even if the outbox is not drained (operations waiting for a
    /// retry stay in the outbox for the next run).
    pub push_timeout: Duration,
    /// Stops pushing when fired (Ctrl-C).
    pub cancel: CancellationToken,
}

/// What [`sync_once`] did.
#[derive(Debug)]
pub struct SyncOnceReport {
    /// One feed pass per domain.
    pub domains: Vec<DomainOutcome>,
    /// One password hash sync cycle per domain (empty when `[phs]` is off or FIPS refuses).
    pub phs: Vec<(String, Result<CycleReport, PhsWireError>)>,
    /// With a `[tenant]`: what the cloud stages did, or where they stopped.
    pub cloud: Option<Result<CloudReport, CloudCycleError>>,
}

impl SyncOnceReport {
    /// Events the feed passes appended.
    pub fn appended(&self) -> u64 {
        self.domains
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|r| r.events)
            .sum()
    }
}

/// The cloud stages' part of [`SyncOnceReport`].
#[derive(Debug)]
pub struct CloudReport {
    /// What projection did.
    pub projected: RunReport,
    /// The push stage's summary (its checkpoint).
    pub push: PushSummary,
    /// The push stage's final status.
    pub status: PushStatus,
    /// The outbox's last sequence after pushing (above the checkpoint: operations wait for a retry).
    pub outbox_last: u64,
}

/// Where the cloud stages of [`sync_once`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum CloudCycleError {
    /// They could not be opened.
    #[error(transparent)]
    Open(CloudStagesError),
    /// Projecting failed.
    #[error("while projecting")]
    Project(#[source] CloudStagesError),
    /// Pushing failed.
    #[error("while pushing")]
    Push(#[source] CloudStagesError),
}

/// One pass of everything (see the module doc).
pub async fn sync_once(
    config: &Config,
    journal: Journal,
    options: SyncOnceOptions,
) -> SyncOnceReport {
    // The tenant's settings first: a changed scope or mapping makes the pass a full read.
    let settings = super::cloud_config::prepare_once(config).await;
    let domains =
        read_domains_once_with(config, &journal, options.interactive, &settings.full_reads).await;
    let phs = replicate_hashes_once_gated(config, &journal, &settings.phs_gate).await;
    let cloud = match config.tenant {
        Some(_) => Some(cloud_cycle(config, journal, options).await),
        None => None,
    };
    SyncOnceReport {
        domains,
        phs,
        cloud,
    }
}

/// Projects what the feed appended, sends a heartbeat and pushes until the outbox is drained.
async fn cloud_cycle(
    config: &Config,
    journal: Journal,
    options: SyncOnceOptions,
) -> Result<CloudReport, CloudCycleError> {
    let mut stages = CloudStages::open(config, journal).map_err(CloudCycleError::Open)?;
    stages.interactive = options.interactive;
    // The tenant's settings in force (read before the feeds; a change since is applied too).
    let _ = stages.apply_cloud_config().await;
    let projected = stages
        .project_all()
        .await
        .map_err(CloudCycleError::Project)?;
    // After projecting, so that the heartbeat carries any deletes this run staged.
    if let Err(e) = stages.heartbeat().await {
        tracing::warn!(error = %e, "Heartbeat failed.");
    }
    let cancel = options.cancel;
    let timer = cancel.clone();
    let timeout = options.push_timeout;
    let stop_timer = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        timer.cancel();
    });
    let pushed = stages.push_until_drained(cancel).await;
    stop_timer.abort();
    let (push, status) = pushed.map_err(CloudCycleError::Push)?;
    Ok(CloudReport {
        projected,
        push,
        status,
        outbox_last: stages.outbox.last_seq().unwrap_or(0),
    })
}
