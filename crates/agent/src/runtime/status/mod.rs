//! `cloudsync agent status`: what the agent's local state says, for an admin or a script.
//!
//! Enters: the agent configuration and its local state — the journal (last sequence, cursors, source
//! checkpoints), projection's store (staged deletes), the outbox (producer cursor, push checkpoint,
//! quarantined objects) and the credentials file (registration only; the secret is never read out).
//! Leaves: an [`AgentStatusReport`] ([`collect::collect`]), rendered as text or JSON by the CLI, and
//! an exit code ([`AgentStatusReport::exit_code`]).
//!
//! # What the tenant says
//! When the agent is registered, `agent status` also asks the tenant ([`tenant_view`]) how it sees the
//! agent (Active/Inactive, host, version, environment) and each configuration it serves (health,
//! last sync), next to the local truth (`tenant` in the JSON). A tenant that cannot be asked is said
//! plainly and the local part is still printed. The daemon's status file never holds this part.
//!
//! # While `agent run` holds the databases
//! sled locks each database exclusively (an `flock` on its `db` file), so a second process cannot open
//! them while the daemon runs. The daemon therefore writes the same report to a **status file**
//! ([`file`](mod@file)) every [`file::WRITE_EVERY`] and at once when deletes are staged or released; `status`
//! probes the journal's lock without waiting ([`file::held_by_another_process`]) and, when the daemon
//! holds it, prints the file instead (saying so, with its age). The file only adds what the running
//! daemon knows in memory: the push stage's configuration quarantine.
//!
//! ## Status file format (`agent-status.json` next to the journal directory)
//! JSON of [`AgentStatusReport`] (`format` = 1), written to `agent-status.json.tmp` with mode 0600,
//! flushed, then renamed over the old file, so a reader sees a whole report or the previous one. It
//! holds no secret (no client secret, no password, no hash), only ids, counters, domains, and the
//! tenant's messages about quarantined objects.
//!
//! # Exit codes
//! A bit set, so a script can test each condition: `0` nothing needs attention; `1` the state could not
//! be read (error); `2` deletes are staged ("Delete threshold exceeded"); `4` quarantine (objects the
//! tenant refused, or the configuration — locally or as the tenant reports it); `8` anything else that
//! needs an admin (not registered, the running daemon's status file is stale, or the tenant sees the
//! running agent Inactive); `16` the tenant could not be asked (unreachable or refusing: the report
//! holds only the local truth). Conditions combine: `6` = staged deletes and quarantine.

pub mod collect;
pub mod file;
pub mod tenant_view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::push::QuarantinedObject;

/// The report's format version (the status file's `format`).
pub const FORMAT: u32 = 1;

/// Exit-code bit: deletes are staged.
pub const EXIT_STAGED_DELETES: u8 = 2;
/// Exit-code bit: objects or the configuration are quarantined.
pub const EXIT_QUARANTINE: u8 = 4;
/// Exit-code bit: something else needs an admin.
pub const EXIT_OTHER: u8 = 8;
/// Exit-code bit: the tenant could not be asked how it sees the agent.
pub const EXIT_TENANT: u8 = 16;

/// Where the report's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReportSource {
    /// Read from the databases by `agent status` (no daemon was running).
    Databases,
    /// Written by the running daemon to the status file.
    Daemon,
}

/// Everything `agent status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatusReport {
    /// [`FORMAT`].
    pub format: u32,
    /// When the report was made, RFC 3339.
    pub generated_at: String,
    /// Who made it.
    pub source: ReportSource,
    /// The registration, when the agent has a `[tenant]` and a readable credentials file.
    pub registration: Option<Registration>,
    /// The journal.
    pub journal: JournalStatus,
    /// Projection.
    pub projection: ProjectionStatus,
    /// Per configured domain.
    pub domains: Vec<DomainStatus>,
    /// The push stage (absent without a `[tenant]`).
    pub push: Option<PushState>,
    /// What needs an admin, one sentence each (empty when all is well).
    pub attention: Vec<Attention>,
    /// What the tenant says (only from `agent status` of a registered agent; never in the status file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<tenant_view::TenantView>,
}

/// One thing that needs an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attention {
    /// Which exit-code bit it sets.
    pub kind: AttentionKind,
    /// What to do about it.
    pub message: String,
}

/// The classes of [`Attention`], one exit-code bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttentionKind {
    /// Deletes are staged (bit [`EXIT_STAGED_DELETES`]).
    StagedDeletes,
    /// Quarantined objects or configuration (bit [`EXIT_QUARANTINE`]).
    Quarantine,
    /// Anything else (bit [`EXIT_OTHER`]).
    Other,
    /// The tenant could not be asked (bit [`EXIT_TENANT`]).
    Tenant,
}

impl AttentionKind {
    /// The exit-code bit.
    pub fn bit(self) -> u8 {
        match self {
            AttentionKind::StagedDeletes => EXIT_STAGED_DELETES,
            AttentionKind::Quarantine => EXIT_QUARANTINE,
            AttentionKind::Other => EXIT_OTHER,
            AttentionKind::Tenant => EXIT_TENANT,
        }
    }
}

/// The agent's registration with the tenant (from the credentials file; never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The agent id.
    pub agent_id: Uuid,
    /// The tenant id.
    pub tenant_id: Uuid,
    /// The tenant's base URL.
    pub tenant_url: String,
    /// The cloud environment.
    pub environment: String,
    /// Configuration id per domain.
    pub configurations: BTreeMap<String, Uuid>,
}

/// The journal's positions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalStatus {
    /// Whether a journal exists at all (false before the first run).
    pub exists: bool,
    /// The first retained sequence.
    pub first_seq: Option<u64>,
    /// The last sequence.
    pub last_seq: Option<u64>,
    /// Consumer cursors by name.
    pub cursors: BTreeMap<String, u64>,
    /// Source checkpoints.
    pub checkpoints: Vec<CheckpointStatus>,
}

/// One source checkpoint, described without its (opaque) bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointStatus {
    /// The domain.
    pub domain: String,
    /// The source (`ldap-dirsync`, `ldap-usn`, `drsr`, `samba-priv`).
    pub source: String,
    /// Size of the stored checkpoint in bytes.
    pub bytes: usize,
    /// For LDAP sources: whether a full read is under way.
    pub full_read_in_progress: Option<bool>,
}

/// Projection's positions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    /// The last journal sequence projected into the outbox (the outbox's producer cursor).
    pub cursor: Option<u64>,
    /// Journal events not yet projected.
    pub behind: u64,
    /// The sequence the last state snapshot covers (the journal's `projection` cursor).
    pub snapshot_seq: Option<u64>,
    /// Events after the snapshot, which a restart re-projects.
    pub events_after_snapshot: u64,
    /// When the newest event the snapshot covers was appended, RFC 3339 (its age bounds the snapshot's).
    pub snapshot_covers_until: Option<String>,
}

/// One configured domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    /// The domain's DNS name.
    pub domain: String,
    /// Its tenant configuration, when known.
    pub configuration_id: Option<Uuid>,
    /// Deletes the delete threshold holds back.
    pub staged_deletes: u64,
    /// "Delete threshold exceeded".
    pub delete_threshold_exceeded: bool,
    /// The tenant's settings in force for the domain (revision, scope, PHS and writeback
    /// switches, a refused revision), once the agent has read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<crate::runtime::cloud_config::DomainCloudStatus>,
}

/// The push stage's positions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushState {
    /// The last outbox sequence enqueued.
    pub last_enqueued: u64,
    /// The push checkpoint (every sequence up to it is acknowledged).
    pub checkpoint: u64,
    /// Operations enqueued and not yet acknowledged.
    pub pending: u64,
    /// How many objects the tenant refused permanently (quarantined).
    pub quarantined_objects: usize,
    /// The first [`collect::LIST_LIMIT`] of them.
    pub quarantined: Vec<QuarantinedObject>,
    /// The configuration quarantine the running push stage is in (only in the daemon's report).
    pub configuration_quarantine: Option<String>,
}

impl AgentStatusReport {
    /// The exit code (see the module doc): the OR of the attention bits.
    pub fn exit_code(&self) -> u8 {
        self.attention.iter().fold(0, |code, a| code | a.kind.bit())
    }
}
