//! The `[tenant]` settings: where the tenant is, how to trust it and where the agent's credentials
//! file lives. Enters: the TOML table (through [`crate::config`], which validates it). Leaves: a
//! [`TenantConfig`] for the [tenant client](super::TenantClient). `[push]` is
//! [`crate::push::PushConfig`].
//!
//! ```toml
//! [tenant]
//! url = "https://127.0.0.1:8443"                # the tenant's base URL
//! ca_file = ".lab/tenant/ca.pem"                # trust only this CA (else the system roots)
//! tenant_id = "contoso.onmicrosoft.com"          # tenant GUID or its domain (token endpoint path)
//! credentials_file = ".lab/agent-credentials.json"  # written by `agent register`, mode 0600
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
