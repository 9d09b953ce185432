//! The agent ↔ tenant contract. Enters: nothing (pure data). Leaves: the wire types both sides serialise.
//!
//! The agent ↔ tenant contract: wire types shared by both sides.
//!
//! Enters: nothing (pure data). Leaves: serde types that the agent serialises and the local tenant
//! (`cloudsync tenant serve`) deserialises, and back. Neither side imports the other; both depend only
//! on this module, and docs/openapi.yaml describes the same shapes for other clients.
//!
//! [`orgid`] is the `v1;PPH1_MD4,…` password hash string (formatter and bounded parser) that the agent
//! writes and the tenant verifies.
//!
//! All JSON uses camelCase field names, like Microsoft Graph. Enums are strings.
//!
//! # Routes (all under the tenant's base URL)
//! - `POST /{tenant}/oauth2/v2.0/token` — OAuth2 token endpoint ([`auth`]).
//! - `POST /api/v1/agents` — register an agent (admin token) → [`agent::RegistrationResponse`].
//! - `POST /api/v1/agents/{agentId}/heartbeat` — agent token → [`agent::HeartbeatResponse`].
//! - `GET|POST /api/v1/configurations`, `GET|PUT /api/v1/configurations/{id}` ([`config`]).
//! - `POST /api/v1/configurations/{id}/restart` — [`config::RestartRequest`].
//! - `POST /api/v1/configurations/{id}/batches` — [`ops::OperationBatch`] → [`ops::BatchResponse`].
//! - `GET /api/v1/provisioningLogs` — [`logs::LogQuery`] → [`logs::LogPage`].
//!
//! Errors on every route use the OData error body ([`error::ODataError`]); 429 and 503 carry
//! `Retry-After` in seconds.

pub mod agent;
pub mod auth;
pub mod config;
pub mod error;
pub mod logs;
pub mod ops;
pub mod orgid;

/// The largest number of operations one batch may carry; larger batches are answered with 413.
pub const MAX_BATCH_OPERATIONS: usize = 500;

/// The largest request body the tenant accepts, in bytes; larger bodies are answered with 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The cloud a tenant belongs to, as the real agent's `ENVIRONMENTNAME` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Environment {
    /// Microsoft Entra ID global (login.microsoftonline.com).
    AzureCloud,
    /// Microsoft Entra ID for US Government (login.microsoftonline.us).
    AzureUSGovernment,
    /// Microsoft Entra ID operated by 21Vianet (login.chinacloudapi.cn).
    AzureChinaCloud,
}

impl Environment {
    /// The environment's name as used on the command line and in the wire format.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::AzureCloud => "AzureCloud",
            Environment::AzureUSGovernment => "AzureUSGovernment",
            Environment::AzureChinaCloud => "AzureChinaCloud",
        }
    }

    /// The real cloud's login host, which the emulator reports in its OpenID configuration.
    pub fn login_host(self) -> &'static str {
        match self {
            Environment::AzureCloud => "login.microsoftonline.com",
            Environment::AzureUSGovernment => "login.microsoftonline.us",
            Environment::AzureChinaCloud => "login.chinacloudapi.cn",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "AzureCloud" => Ok(Environment::AzureCloud),
            "AzureUSGovernment" => Ok(Environment::AzureUSGovernment),
            "AzureChinaCloud" => Ok(Environment::AzureChinaCloud),
            other => Err(format!(
                "unknown environment {other:?}: expected AzureCloud, AzureUSGovernment or AzureChinaCloud"
            )),
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
