//! The cloud side of the agent configuration: `[tenant]` (where to push and how to trust it) and
//! `[push]` (delivery knobs). `[projection]` is [`crate::projection::config::ProjectionConfig`].
//!
//! ```toml
//! [tenant]
//! url = "https://127.0.0.1:8443"                # the tenant's base URL
//! ca_file = ".lab/tenant/ca.pem"                # trust only this CA (else the system roots)
//! tenant_id = "contoso.onmicrosoft.com"          # tenant GUID or its domain (token endpoint path)
//! credentials_file = ".lab/agent-credentials.json"  # written by `agent register`, mode 0600
//! [push]
//! max_batch_ops = 500
//! max_in_flight = 4
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use cloudsync_api::Environment;

/// Where the tenant is and how the agent authenticates to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's base URL (`https://host:port`).
    pub url: String,
    /// PEM file with the CA that signs the tenant's certificate; absent = the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The tenant id (GUID) or its initial domain; names the token endpoint.
    pub tenant_id: String,
    /// The agent's credentials, written by `cloudsync agent register` (mode 0600; a group- or
    /// world-readable file is refused).
    pub credentials_file: PathBuf,
    /// The cloud the agent is installed for.
    #[serde(default = "default_environment")]
    pub environment: Environment,
    /// Skip certificate verification (labs only; logged as a warning).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Allow `http://` (labs only; the client secret crosses the wire in clear).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Per-request timeout, seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

fn default_environment() -> Environment {
    Environment::AzureCloud
}
fn default_request_timeout() -> u64 {
    60
}

impl TenantConfig {
    /// The token endpoint path relative to the base URL.
    pub fn token_endpoint(&self) -> String {
        format!("/{}/oauth2/v2.0/token", self.tenant_id)
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

/// Delivery knobs of the push stage (the rest of [`crate::push::PushConfig`] keeps its defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSettings {
    /// Operations per batch (1..=500).
    pub max_batch_ops: usize,
    /// Batches in flight at once (at least 1).
    pub max_in_flight: usize,
    /// How long to wait for a full batch, milliseconds.
    pub linger_ms: u64,
    /// Client-side write pacing in operations per second (Entra: 7000/300 = 23.33); absent = off.
    pub write_rate_limit: Option<f64>,
    /// How often the agent sends a heartbeat, seconds (the tenant's announced interval wins when shorter).
    pub heartbeat_interval_secs: u64,
    /// How often `agent run` projects new journal events, milliseconds.
    pub projection_tick_ms: u64,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            max_batch_ops: cloudsync_api::MAX_BATCH_OPERATIONS,
            max_in_flight: 4,
            linger_ms: 20,
            write_rate_limit: None,
            heartbeat_interval_secs: 600,
            projection_tick_ms: 500,
        }
    }
}

impl PushSettings {
    /// The push stage's configuration.
    pub fn to_push_config(&self) -> crate::push::PushConfig {
        crate::push::PushConfig {
            max_batch_ops: self.max_batch_ops,
            max_in_flight: self.max_in_flight,
            linger: Duration::from_millis(self.linger_ms),
            write_rate_limit: self.write_rate_limit,
            ..crate::push::PushConfig::default()
        }
    }
}
