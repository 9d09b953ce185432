//! The agent's calls to the tenant outside the push stage: the installer's registration
//! (admin password grant, `POST /api/v1/agents`, one configuration per domain) and heartbeats.
//! Only [`cloudsync_api`] wire types cross this boundary.

use std::time::Duration;

use serde::de::DeserializeOwned;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::credentials::{AgentCredentials, CredentialsError};
use crate::config::TenantConfig;
use cloudsync_api::agent::{
    AgentConfigurationHealth, HeartbeatRequest, HeartbeatResponse, RegistrationRequest,
    RegistrationResponse,
};
use cloudsync_api::auth::{OAuthError, TokenResponse};
use cloudsync_api::config::{Configuration, ConfigurationSpec};
use cloudsync_api::error::ODataError;

/// The public client id the installer signs in with: the contract's, the only client the tenant's
/// password grant takes.
pub use cloudsync_api::auth::INSTALLER_CLIENT_ID;
/// The scope of the installer's admin token.
pub const ADMIN_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The scope of the agent's client-credentials token.
pub const AGENT_SCOPE: &str = "api://cloudsync/.default";

/// Why a call to the tenant failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The tenant could not be reached (connection refused, DNS, TLS handshake, timeout).
    #[error("cannot reach the tenant at {url}: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint refused the sign-in (wrong password, unknown user, bad secret).
    #[error("sign-in refused ({error}): {description}")]
    SignIn {
        /// The OAuth2 error, e.g. `invalid_grant`.
        error: String,
        /// Microsoft's description, starting with the AADSTS code.
        description: String,
    },
    /// The caller lacks the role (registration needs a Global or Hybrid Identity Administrator).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Another non-success answer.
    #[error("HTTP {status} from {url}: {code}: {message}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OData error code.
        code: String,
        /// The tenant's message.
        message: String,
    },
    /// A success answer that is not the expected JSON.
    #[error("undecodable answer from {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// The parse error.
        message: String,
    },
    /// The HTTP client could not be built (unreadable or invalid CA file).
    #[error("building the HTTP client: {0}")]
    Build(String),
    /// The credentials file could not be written or read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl CloudError {
    /// Whether the same call may succeed later (transport failures, 429, 5xx).
    pub fn is_retriable(&self) -> bool {
        match self {
            CloudError::Unreachable { .. } => true,
            CloudError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// An HTTP client for the tenant: verification on, trusting only `ca_file` when set.
pub struct Cloud {
    http: reqwest::Client,
    base: String,
    tenant: TenantConfig,
}

impl Cloud {
    /// Builds the client from `[tenant]`.
    pub fn new(tenant: &TenantConfig) -> Result<Cloud, CloudError> {
        let timeout = tenant.request_timeout();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        if let Some(ca) = &tenant.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| CloudError::Build(format!("{}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| CloudError::Build(e.to_string()))?;
            builder = builder.tls_certs_only([cert]);
        }
        if tenant.insecure_skip_verify {
            tracing::warn!("TLS certificate verification is OFF for the tenant connection.");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(Cloud {
            http: builder
                .build()
                .map_err(|e| CloudError::Build(e.to_string()))?,
            base: tenant.url.trim_end_matches('/').to_string(),
            tenant: tenant.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, CloudError> {
        let response = request
            .send()
            .await
            .map_err(|source| CloudError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|source| CloudError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| CloudError::Decode {
                url: url.to_string(),
                message: e.to_string(),
            });
        }
        if let Ok(e) = serde_json::from_slice::<OAuthError>(&body) {
            return Err(CloudError::SignIn {
                error: e.error,
                description: e.error_description,
            });
        }
        let (code, message) = match serde_json::from_slice::<ODataError>(&body) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (
                "Unknown".into(),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            ),
        };
        if status == 403 {
            return Err(CloudError::Forbidden(message));
        }
        Err(CloudError::Status {
            url: url.to_string(),
            status,
            code,
            message,
        })
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<Zeroizing<String>, CloudError> {
        let url = self.url(&self.tenant.token_endpoint());
        let request = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_encode(form));
        let token: TokenResponse = self.send(request, &url).await?;
        Ok(Zeroizing::new(token.access_token))
    }

    /// The installer's sign-in: a password-grant token for an administrator.
    pub async fn admin_token(
        &self,
        upn: &str,
        password: &str,
    ) -> Result<Zeroizing<String>, CloudError> {
        self.token(&[
            ("grant_type", "password"),
            ("client_id", INSTALLER_CLIENT_ID),
            ("username", upn),
            ("password", password),
            ("scope", ADMIN_SCOPE),
        ])
        .await
    }

    /// The agent's client-credentials token.
    pub async fn agent_token(
        &self,
        creds: &AgentCredentials,
    ) -> Result<Zeroizing<String>, CloudError> {
        self.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
            ("scope", AGENT_SCOPE),
        ])
        .await
    }

    /// Registers the agent for `domains` and returns its credentials (the secret is shown only here).
    pub async fn register_agent(
        &self,
        admin: &str,
        host_name: &str,
        domains: &[String],
    ) -> Result<RegistrationResponse, CloudError> {
        let url = self.url("/api/v1/agents");
        let body = RegistrationRequest {
            host_name: host_name.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            environment: self.tenant.environment,
            domains: domains.to_vec(),
        };
        self.send(self.http.post(&url).bearer_auth(admin).json(&body), &url)
            .await
    }

    /// The configuration of `domain`: an existing one is reused, else one is created.
    /// Returns the id and whether it was created.
    pub async fn ensure_configuration(
        &self,
        admin: &str,
        domain: &str,
        delete_threshold: u32,
    ) -> Result<(Uuid, bool), CloudError> {
        let url = self.url("/api/v1/configurations");
        #[derive(serde::Deserialize)]
        struct List {
            value: Vec<Configuration>,
        }
        let list: List = self
            .send(self.http.get(&url).bearer_auth(admin), &url)
            .await?;
        if let Some(c) = list
            .value
            .iter()
            .find(|c| c.spec.domain.eq_ignore_ascii_case(domain))
        {
            return Ok((c.id, false));
        }
        let spec = ConfigurationSpec {
            domain: domain.to_string(),
            scope: Default::default(),
            mappings: Vec::new(),
            password_hash_sync: true,
            password_writeback: false,
            delete_threshold,
        };
        let created: Configuration = self
            .send(self.http.post(&url).bearer_auth(admin).json(&spec), &url)
            .await?;
        Ok((created.id, true))
    }

    /// Sends a heartbeat with the restarts carried out since the last one and the agent-side
    /// health of every configuration served (see [`super::health`]).
    pub async fn heartbeat(
        &self,
        creds: &AgentCredentials,
        acknowledged: Vec<Uuid>,
        configurations: Vec<AgentConfigurationHealth>,
    ) -> Result<HeartbeatResponse, CloudError> {
        let token = self.agent_token(creds).await?;
        let url = self.url(&format!("/api/v1/agents/{}/heartbeat", creds.agent_id));
        let body = HeartbeatRequest {
            version: env!("CARGO_PKG_VERSION").to_string(),
            acknowledged_restarts: acknowledged,
            configurations,
        };
        self.send(
            self.http.post(&url).bearer_auth(token.as_str()).json(&body),
            &url,
        )
        .await
    }
}

/// `application/x-www-form-urlencoded` (RFC 3986 unreserved bytes pass, the rest is `%XX`).
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `localhost`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
