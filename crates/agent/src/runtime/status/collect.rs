//! Builds an [`AgentStatusReport`] from open handles: by `agent status` after opening the databases
//! itself, and by the daemon (which holds them) for its status file.

use std::collections::BTreeMap;

use super::{
    AgentStatusReport, Attention, AttentionKind, CheckpointStatus, DomainStatus, FORMAT,
    JournalStatus, ProjectionStatus, PushState, Registration, ReportSource,
};
use crate::config::Config;
use crate::control::credentials::{AgentCredentials, CredentialsError};
use crate::event::SourceKind;
use crate::journal::{CURSOR_PROJECTION, Journal, JournalError};
use crate::projection::store::{ProjectionStore, StoreError};
use crate::push::{Outbox, OutboxError};
use crate::runtime::outbox_sink::PRODUCER;
use crate::source::ldap::checkpoint::{DirSyncCheckpoint, UsnCheckpoint};

/// How many quarantined objects a report lists (the count is always complete).
pub const LIST_LIMIT: usize = 20;

/// Why a status could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Projection's store could not be read.
    #[error(transparent)]
    Projection(#[from] StoreError),
    /// The outbox could not be read.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The daemon's status file could not be read or written.
    #[error("status file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The daemon's status file is not a report this build understands.
    #[error("status file {path} is not a status report: {message}")]
    FileFormat {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl StatusError {
    /// Whether asking again may succeed (I/O and lock contention).
    pub fn is_retriable(&self) -> bool {
        match self {
            StatusError::Journal(e) => e.is_retriable(),
            StatusError::Projection(e) => e.is_retriable(),
            StatusError::Outbox(e) => e.is_retriable(),
            StatusError::File { .. } => true,
            StatusError::FileFormat { .. } => false,
        }
    }
}

/// The registration as far as the agent knows it.
pub enum RegistrationState<'a> {
    /// No `[tenant]`: a journal-only agent.
    NoTenant,
    /// Registered.
    Registered(&'a AgentCredentials),
    /// `[tenant]` is set but the credentials file cannot be used (missing, too open, malformed).
    Unusable(&'a CredentialsError),
    /// `[tenant]` is set but the daemon holds no credentials.
    NotLoaded,
}

/// The handles a report is built from; `None` means "does not exist yet".
pub struct Sources<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The registration.
    pub registration: RegistrationState<'a>,
    /// The journal.
    pub journal: Option<&'a Journal>,
    /// Projection's store.
    pub projection: Option<&'a ProjectionStore>,
    /// The outbox.
    pub outbox: Option<&'a Outbox>,
    /// The push stage's configuration quarantine (the daemon's live view).
    pub live_quarantine: Option<String>,
    /// Who builds the report.
    pub source: ReportSource,
}

/// Gathers the report.
pub fn collect(s: &Sources<'_>) -> Result<AgentStatusReport, StatusError> {
    let mut attention = Vec::new();
    let creds = match &s.registration {
        RegistrationState::Registered(c) => Some(*c),
        RegistrationState::Unusable(_) | RegistrationState::NotLoaded => {
            let why = match &s.registration {
                RegistrationState::Unusable(e) => e.to_string(),
                _ => "not loaded".to_owned(),
            };
            attention.push(Attention {
                kind: AttentionKind::Other,
                message: format!(
                    "[tenant] is configured but the credentials file cannot be used ({why}); run `cloudsync agent register`."
                ),
            });
            None
        }
        RegistrationState::NoTenant => None,
    };
    let registration = match (creds, &s.config.tenant) {
        (Some(c), Some(t)) => Some(Registration {
            agent_id: c.agent_id,
            tenant_id: c.tenant_id,
            tenant_url: t.url.clone(),
            environment: t.environment.as_str().to_owned(),
            configurations: c.configurations.clone(),
        }),
        _ => None,
    };
    let journal = match s.journal {
        Some(j) => journal_status(j)?,
        None => JournalStatus::default(),
    };
    let last = journal.last_seq.unwrap_or(0);
    let producer = match s.outbox {
        Some(o) => o.producer_cursor(PRODUCER)?,
        None => None,
    };
    let snapshot_seq = journal.cursors.get(CURSOR_PROJECTION).copied();
    let snapshot_covers_until = match (s.journal, snapshot_seq) {
        (Some(j), Some(seq)) if seq > 0 => j
            .read(seq)
            .next()
            .transpose()?
            .filter(|r| r.seq == seq)
            .map(|r| crate::journal::view::format_time(r.appended_at_unix_ms)),
        _ => None,
    };
    let projection = ProjectionStatus {
        cursor: producer,
        behind: last.saturating_sub(producer.unwrap_or(0)),
        snapshot_seq,
        events_after_snapshot: last.saturating_sub(snapshot_seq.unwrap_or(0)),
        snapshot_covers_until,
    };
    let staged = match s.projection {
        Some(p) => crate::control::health::staged_by_domain(p)?,
        None => BTreeMap::new(),
    };
    // The tenant's settings accepted so far (the daemon's writer adds refusals from memory).
    let cloud = s
        .projection
        .and_then(|p| p.cloud_settings().ok())
        .unwrap_or_default();
    let mut domains = Vec::new();
    for d in s.config.domains.values() {
        let key = d.dns_name.to_ascii_lowercase();
        let n = staged.get(&key).copied().unwrap_or(0);
        if n > 0 {
            attention.push(Attention {
                kind: AttentionKind::StagedDeletes,
                message: format!(
                    "Delete threshold exceeded for {}: {n} deletes are staged, not sent. Check them, then release them with `cloudsync agent allow-deletes --domain {}` or a ForceDeletes restart from the tenant.",
                    d.dns_name, d.dns_name
                ),
            });
        }
        domains.push(DomainStatus {
            domain: d.dns_name.clone(),
            configuration_id: d
                .configuration_id
                .or_else(|| creds.and_then(|c| c.configuration_for(&d.dns_name))),
            staged_deletes: n,
            delete_threshold_exceeded: n > 0,
            cloud: cloud
                .get(&key)
                .map(crate::runtime::cloud_config::DomainCloudStatus::from_settings),
        });
    }
    // Staged deletes of a domain no longer configured still wait for a decision.
    for (domain, n) in &staged {
        if !domains
            .iter()
            .any(|d| d.domain.eq_ignore_ascii_case(domain))
        {
            attention.push(Attention {
                kind: AttentionKind::StagedDeletes,
                message: format!(
                    "{n} deletes are staged for {domain}, which is no longer configured; `cloudsync agent allow-deletes --domain {domain}` releases them."
                ),
            });
        }
    }
    let push = match s.outbox {
        Some(o) => Some(push_state(o, s.live_quarantine.clone(), &mut attention)?),
        None if s.config.tenant.is_some() => Some(PushState {
            configuration_quarantine: s.live_quarantine.clone(),
            ..PushState::default()
        }),
        None => None,
    };
    Ok(AgentStatusReport {
        format: FORMAT,
        generated_at: crate::journal::view::format_time(now_ms()),
        source: s.source,
        registration,
        journal,
        projection,
        domains,
        push,
        attention,
        tenant: None,
    })
}

fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

fn journal_status(j: &Journal) -> Result<JournalStatus, StatusError> {
    let checkpoints = j
        .checkpoints()?
        .into_iter()
        .map(|c| {
            let full_read_in_progress = match c.source {
                SourceKind::LdapDirSync => DirSyncCheckpoint::decode(&c.data)
                    .ok()
                    .map(|d| d.full_read_in_progress),
                SourceKind::LdapUsnPoll => UsnCheckpoint::decode(&c.data)
                    .ok()
                    .map(|u| u.full_read_in_progress),
                SourceKind::Drsr | SourceKind::SambaPriv => None,
            };
            CheckpointStatus {
                domain: c.domain,
                source: c.source.as_str().to_owned(),
                bytes: c.data.len(),
                full_read_in_progress,
            }
        })
        .collect();
    Ok(JournalStatus {
        exists: true,
        first_seq: j.first_seq()?,
        last_seq: j.last_seq(),
        cursors: j.cursors()?.into_iter().collect(),
        checkpoints,
    })
}

fn push_state(
    o: &Outbox,
    live_quarantine: Option<String>,
    attention: &mut Vec<Attention>,
) -> Result<PushState, StatusError> {
    let last_enqueued = o.last_seq()?;
    let checkpoint = o.checkpoint()?;
    let quarantined = o.quarantined_objects()?;
    if !quarantined.is_empty() {
        attention.push(Attention {
            kind: AttentionKind::Quarantine,
            message: format!(
                "{} objects are quarantined: the tenant refused them permanently (codes listed below). Fix them in AD; the next change of each object retries it.",
                quarantined.len()
            ),
        });
    }
    if let Some(reason) = &live_quarantine {
        attention.push(Attention {
            kind: AttentionKind::Quarantine,
            message: format!(
                "The configuration is in quarantine ({reason}); once the cause is fixed, restart it from the tenant with scope Quarantine."
            ),
        });
    }
    Ok(PushState {
        last_enqueued,
        checkpoint,
        pending: last_enqueued.saturating_sub(checkpoint),
        quarantined_objects: quarantined.len(),
        quarantined: quarantined.into_iter().take(LIST_LIMIT).collect(),
        configuration_quarantine: live_quarantine,
    })
}
