//! Per-domain sync configurations, their health, and restarts.
//!
//! An admin creates a configuration per AD domain (`POST /api/v1/configurations` with a
//! [`ConfigurationSpec`]); agents read it (`GET /api/v1/configurations/{id}`) and push batches to it.
//! Every change bumps `revision`, which heartbeats report so agents know when to refetch.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which objects of the domain are in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// OU distinguished names whose subtrees are in scope; empty means the whole domain.
    #[serde(default)]
    pub organizational_units: Vec<String>,
    /// Security groups whose members are in scope; empty means no group filter.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One attribute mapping: an AD attribute or expression feeding a cloud attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMapping {
    /// The cloud (Graph) attribute, e.g. `displayName`.
    pub target: String,
    /// The source: an AD attribute name or an expression, e.g. `Join(" ", [givenName], [sn])`.
    pub source: String,
}

/// What an admin sets on a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSpec {
    /// The AD domain's DNS name, e.g. `corp.example.com`.
    pub domain: String,
    /// Scoping filters.
    #[serde(default)]
    pub scope: Scope,
    /// Attribute mappings; empty means the agent's defaults.
    #[serde(default)]
    pub mappings: Vec<AttributeMapping>,
    /// Whether password hashes are synced (`setPasswordHash` operations are accepted).
    #[serde(default)]
    pub password_hash_sync: bool,
    /// Whether cloud password resets are written back to AD.
    #[serde(default)]
    pub password_writeback: bool,
    /// Whether users may unlock their account without resetting the password (self-service unlock,
    /// written back as `lockoutTime = 0`). Needs `password_writeback` too. Absent in stores and
    /// bodies that predate it: false.
    #[serde(default)]
    pub allow_unlock: bool,
    /// Accidental-delete prevention: deletes per sync window that stop the configuration; 0 disables it.
    #[serde(default = "default_delete_threshold")]
    pub delete_threshold: u32,
}

fn default_delete_threshold() -> u32 {
    500
}

/// The health of a configuration, as the admin center shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Health {
    /// Operations are being applied.
    Healthy,
    /// Consecutive batches failed entirely; batches are refused until a `Quarantine` restart.
    Quarantine {
        /// The error code that caused the quarantine.
        reason: String,
    },
    /// More deletes than the threshold arrived in one window; deletes are refused until `ForceDeletes`.
    DeleteThresholdExceeded {
        /// Deletes counted in the window when the threshold was hit.
        deletes: u32,
    },
}

impl Health {
    /// The label the portal shows.
    pub fn label(&self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Quarantine { .. } => "Quarantine",
            Health::DeleteThresholdExceeded { .. } => "Delete threshold exceeded",
        }
    }
}

/// A configuration as the tenant stores and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    /// The configuration id.
    pub id: Uuid,
    /// Bumped on every change (spec edit, health change, restart).
    pub revision: u64,
    /// The admin-set part.
    pub spec: ConfigurationSpec,
    /// Current health.
    pub health: Health,
    /// When the last batch was applied, RFC 3339.
    #[serde(default)]
    pub last_sync: Option<String>,
    /// Which agent holds the configuration's lease, its epoch and since when ([`crate::lease`]);
    /// absent before the first grant. Filled by the tenant when it answers, never stored in `spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<crate::lease::LeaseInfo>,
}

/// What a restart resets; the same scopes as the Graph synchronization job `restart` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartScope {
    /// The agent forgets its change-feed watermark and re-reads everything. Objects the re-read no
    /// longer finds are deleted in the cloud, through the agent's delete threshold (a full resync).
    Watermark,
    /// Clears a quarantine so batches are accepted again.
    Quarantine,
    /// Lets the staged deletes through: clears "Delete threshold exceeded" for one window.
    ForceDeletes,
    /// Everything above: a full resync.
    Full,
}

/// The body of `POST /api/v1/configurations/{id}/restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartRequest {
    /// At least one scope.
    pub scopes: Vec<RestartScope>,
}

/// The answer to a restart: the request id the agent will acknowledge, and the configuration after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartResponse {
    /// The restart request's id (delivered to agents in heartbeats).
    pub restart_id: Uuid,
    /// The configuration after the restart took effect on the tenant side.
    pub configuration: Configuration,
}
