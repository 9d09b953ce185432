//! Agent registration and heartbeats.
//!
//! Flow: the installer signs in as an admin (password grant), `POST /api/v1/agents` with a
//! [`RegistrationRequest`], and receives a [`RegistrationResponse`] holding the agent's client id and
//! secret (shown once). The agent then uses client credentials for every further call, and sends a
//! [`HeartbeatRequest`] periodically; the answer carries the configurations it serves and any pending
//! restart requests.
//!
//! # Agent-side health in heartbeats
//! A heartbeat lists, per configuration the agent serves, what only the agent knows
//! ([`AgentConfigurationHealth`]): how many deletes its delete threshold holds back. While an agent
//! reports staged deletes the tenant shows the configuration's health as
//! `DeleteThresholdExceeded { deletes: <staged> }` ("Delete threshold exceeded"); the first heartbeat
//! after `cloudsync agent allow-deletes` or a `ForceDeletes` restart released them reports zero and
//! clears it. Each heartbeat replaces the sending agent's previous report: a configuration the agent
//! serves but does not list counts as "nothing staged". The field defaults to empty, so heartbeats of
//! agents that predate it still decode (and never raise the state).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Environment;
use super::config::RestartScope;

/// Sent by the installer to register an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequest {
    /// The agent's host name.
    pub host_name: String,
    /// The agent's version string.
    pub version: String,
    /// The cloud the agent was installed for; must match the tenant's environment.
    pub environment: Environment,
    /// The AD domains (DNS names) the agent serves.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// `PUT /api/v1/agents/{id}/domains`: the AD domains an installed agent serves, replaced (an install
/// that adds a domain to an agent keeps its registration and updates this list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentDomains {
    /// The AD domains (DNS names).
    pub domains: Vec<String>,
}

/// At most this many domains per agent.
pub const MAX_AGENT_DOMAINS: usize = 100;

/// A domain's DNS name as the tenant accepts it: 1 to 253 characters of letters, digits, `-` and `.`.
pub fn valid_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The tenant's answer to a registration; the secret is shown only here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponse {
    /// The agent's id.
    pub agent_id: Uuid,
    /// The tenant id (GUID).
    pub tenant_id: Uuid,
    /// The client id for the client-credentials grant.
    pub client_id: String,
    /// The client secret for the client-credentials grant.
    pub client_secret: String,
    /// The token endpoint path relative to the tenant's base URL.
    pub token_endpoint: String,
}

/// An agent's periodic heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// The agent's current version.
    pub version: String,
    /// Restart requests (by id) the agent has carried out since the last heartbeat.
    #[serde(default)]
    pub acknowledged_restarts: Vec<Uuid>,
    /// Agent-side health per configuration served (see the module doc); empty from older agents.
    #[serde(default)]
    pub configurations: Vec<AgentConfigurationHealth>,
    /// Lower-case hex SHA-256 of the running executable (read once at start from `/proc/self/exe`):
    /// the updater's health criterion — the tenant sees the swapped-in binary itself running, not
    /// only a version string. Absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
}

/// What the agent reports about one configuration in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfigurationHealth {
    /// The configuration.
    pub configuration_id: Uuid,
    /// Deletes the agent's delete threshold holds back (not sent) for this configuration's domain.
    #[serde(default)]
    pub staged_deletes: u64,
    /// Whether the agent's delete threshold tripped and its deletes wait for `allow-deletes` or a
    /// `ForceDeletes` restart.
    #[serde(default)]
    pub delete_threshold_exceeded: bool,
}

impl AgentConfigurationHealth {
    /// Whether this report puts the configuration into "Delete threshold exceeded".
    pub fn needs_attention(&self) -> bool {
        self.delete_threshold_exceeded || self.staged_deletes > 0
    }
}

/// A restart the agent must carry out for one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRestart {
    /// The restart request's id, acknowledged in a later heartbeat.
    pub id: Uuid,
    /// The configuration it concerns.
    pub configuration_id: Uuid,
    /// What to reset.
    pub scopes: Vec<RestartScope>,
}

/// The tenant's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The tenant's clock, RFC 3339.
    pub server_time: String,
    /// How often the tenant expects heartbeats, in seconds.
    pub heartbeat_interval_seconds: u64,
    /// (id, revision) of every configuration for the agent's domains; refetch when a revision changes.
    pub configurations: Vec<ConfigurationRef>,
    /// Restarts the agent has not yet acknowledged.
    pub pending_restarts: Vec<PendingRestart>,
    /// The lease of every configuration paired with the agent ([`super::lease`]); empty from a
    /// tenant without leases.
    #[serde(default)]
    pub leases: Vec<super::lease::LeaseGrant>,
}

/// A pointer to a configuration and its current revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRef {
    /// The configuration id.
    pub id: Uuid,
    /// Its revision, bumped on every change.
    pub revision: u64,
}

/// Whether an agent is alive, as the admin center shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentStatus {
    /// A heartbeat arrived recently.
    Active,
    /// Heartbeats were missed.
    Inactive,
}

/// An agent as the tenant lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// The agent's id.
    pub id: Uuid,
    /// Host name.
    pub host_name: String,
    /// Version last reported.
    pub version: String,
    /// The agent's environment.
    pub environment: Environment,
    /// Domains served.
    pub domains: Vec<String>,
    /// Active or Inactive.
    pub status: AgentStatus,
    /// Last heartbeat (or registration), RFC 3339.
    pub last_seen: String,
    /// SHA-256 of the executable the last heartbeat came from (absent until an agent that reports
    /// it heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
    /// The configurations whose lease this agent holds, with epoch and since when.
    #[serde(default)]
    pub leases: Vec<HeldLease>,
}

/// A lease an agent holds, as `GET /api/v1/agents` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldLease {
    /// The configuration.
    pub configuration_id: Uuid,
    /// Its domain.
    pub domain: String,
    /// The lease.
    pub lease: super::lease::LeaseInfo,
}
