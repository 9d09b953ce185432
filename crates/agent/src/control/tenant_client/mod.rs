//! The agent's one HTTP client for the tenant. Enters: the `[tenant]` settings ([`TenantConfig`]:
//! URL, CA pin, timeout) and, for the agent's own calls, its registration credentials. Leaves: HTTPS
//! requests carrying only [`cloudsync_api`] wire types, and their answers decoded, or a
//! [`TenantError`] saying how the tenant refused.
//!
//! One `reqwest` client per agent, verification on and trusting only `ca_file` when set; the token
//! endpoint is called form-encoded (the installer's password grant, the agent's client-credentials
//! grant); the agent's token is cached, renewed after 80% of its lifetime and refreshed once on 401.
//! The calls built on it: registration ([`super::register`]), heartbeats ([`super::heartbeat`]) and
//! the push stage's batch calls ([`crate::push::client`], which adds its own retry classification).

mod error;
mod settings;

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::credentials::AgentCredentials;
use cloudsync_api::auth::TokenResponse;

pub use error::{BuildError, TenantError};
pub use settings::TenantConfig;

use error::{decode, refusal, unreachable};

/// The public client id the installer signs in with: the contract's, the only client the tenant's
/// password grant takes.
pub use cloudsync_api::auth::INSTALLER_CLIENT_ID;
/// The scope of the installer's admin token.
pub const ADMIN_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The scope of the agent's client-credentials token.
pub const AGENT_SCOPE: &str = "api://cloudsync/.default";

/// The longest token lifetime believed (Entra issues 60–90 minute tokens): a day.
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// The agent's client-credentials login, from registration.
#[derive(Clone)]
pub struct Credentials {
    /// The tenant's base URL, e.g. `https://127.0.0.1:8443`.
    pub base_url: String,
    /// The token endpoint path relative to the base URL (`/{tenant}/oauth2/v2.0/token`).
    pub token_endpoint: String,
    /// The agent's client id.
    pub client_id: String,
    /// The agent's client secret (zeroized on drop, never printed).
    pub client_secret: Zeroizing<String>,
    /// The scope to request.
    pub scope: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("base_url", &self.base_url)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// How to reach the tenant over TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trust only this CA (PEM) instead of the system roots, e.g. the local tenant's CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Turn certificate verification off. Explicit and logged; never the default.
    pub insecure: bool,
}

struct CachedToken {
    value: Zeroizing<String>,
    refresh_at: Instant,
}

/// The agent's login part of [`Credentials`] (the base URL lives in the client).
struct AgentLogin {
    token_endpoint: String,
    client_id: String,
    client_secret: Zeroizing<String>,
    scope: String,
}

/// An HTTP client for the tenant: verification on, trusting only the configured CA when set.
pub struct TenantClient {
    http: reqwest::Client,
    base: String,
    /// The token endpoint of the installer's sign-in (`[tenant] tenant_id`).
    token_endpoint: String,
    agent: Option<AgentLogin>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TenantClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantClient")
            .field("base", &self.base)
            .field(
                "client_id",
                &self.agent.as_ref().map(|a| a.client_id.as_str()),
            )
            .finish_non_exhaustive()
    }
}

fn build_http(tls: &TlsOptions, timeout: Duration) -> Result<reqwest::Client, BuildError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(pem) = &tls.ca_pem {
        let cert = reqwest::Certificate::from_pem(pem).map_err(BuildError::Certificate)?;
        builder = builder.tls_certs_only([cert]);
    }
    if tls.insecure {
        tracing::warn!("TLS certificate verification is OFF for the tenant connection.");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(BuildError::Client)
}

fn tls_of(tenant: &TenantConfig) -> Result<TlsOptions, BuildError> {
    let ca_pem = match &tenant.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| BuildError::CaFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    Ok(TlsOptions {
        ca_pem,
        insecure: tenant.insecure_skip_verify,
    })
}

impl TenantClient {
    /// The agent's client from its login; TLS verification stays on unless `tls.insecure` says
    /// otherwise.
    pub fn new(
        creds: Credentials,
        tls: &TlsOptions,
        timeout: Duration,
    ) -> Result<TenantClient, TenantError> {
        Ok(TenantClient {
            http: build_http(tls, timeout)?,
            base: creds.base_url.trim_end_matches('/').to_string(),
            token_endpoint: creds.token_endpoint.clone(),
            agent: Some(AgentLogin {
                token_endpoint: creds.token_endpoint,
                client_id: creds.client_id,
                client_secret: creds.client_secret,
                scope: creds.scope,
            }),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The installer's client from `[tenant]` (admin calls only: no agent credentials yet).
    pub fn installer(tenant: &TenantConfig) -> Result<TenantClient, TenantError> {
        Ok(TenantClient {
            http: build_http(&tls_of(tenant)?, tenant.request_timeout())?,
            base: tenant.url.trim_end_matches('/').to_string(),
            token_endpoint: tenant.token_endpoint(),
            agent: None,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The registered agent's client: `[tenant]` plus the credentials file.
    pub fn agent(
        tenant: &TenantConfig,
        creds: &AgentCredentials,
    ) -> Result<TenantClient, TenantError> {
        let login = Credentials {
            base_url: tenant.url.clone(),
            token_endpoint: creds.token_endpoint.clone(),
            client_id: creds.client_id.clone(),
            client_secret: Zeroizing::new(creds.client_secret.to_string()),
            scope: AGENT_SCOPE.into(),
        };
        let mut client = TenantClient::new(login, &tls_of(tenant)?, tenant.request_timeout())?;
        client.token_endpoint = tenant.token_endpoint();
        Ok(client)
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The underlying HTTP client, for requests the calls build themselves.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` and decodes a success answer as JSON.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, TenantError> {
        let response = request
            .send()
            .await
            .map_err(|source| unreachable(url, source))?;
        decode(response, url).await
    }

    /// Posts a form to the token endpoint `path` and returns the access token.
    async fn token(&self, path: &str, form: &[(&str, &str)]) -> Result<TokenResponse, TenantError> {
        let url = self.url(path);
        let request = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_encode(form));
        self.send_json(request, &url).await
    }

    /// The installer's sign-in: a password-grant token for an administrator.
    pub async fn admin_token(
        &self,
        upn: &str,
        password: &str,
    ) -> Result<Zeroizing<String>, TenantError> {
        let token = self
            .token(
                &self.token_endpoint,
                &[
                    ("grant_type", "password"),
                    ("client_id", INSTALLER_CLIENT_ID),
                    ("username", upn),
                    ("password", password),
                    ("scope", ADMIN_SCOPE),
                ],
            )
            .await?;
        Ok(Zeroizing::new(token.access_token))
    }

    /// A valid agent token: the cached one, or a fresh one when it is due for renewal (or `force`).
    pub(crate) async fn agent_token(&self, force: bool) -> Result<Zeroizing<String>, TenantError> {
        let login = self.agent.as_ref().ok_or(TenantError::NoAgentCredentials)?;
        let mut cached = self.token.lock().await;
        if !force
            && let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let token = self
            .token(
                &login.token_endpoint,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", login.client_id.as_str()),
                    ("client_secret", login.client_secret.as_str()),
                    ("scope", login.scope.as_str()),
                ],
            )
            .await?;
        // Renew when 80% of the lifetime has passed, so a token never expires mid-request.
        // `expires_in` is the server's number: capped (a day) before it becomes an `Instant`.
        let lifetime = Duration::from_secs(token.expires_in.clamp(1, MAX_TOKEN_LIFETIME_SECS));
        let now = Instant::now();
        let refresh_at = now.checked_add(lifetime.mul_f64(0.8)).unwrap_or(now);
        tracing::debug!(expires_in = token.expires_in, "Obtained an access token.");
        let value = Zeroizing::new(token.access_token);
        *cached = Some(CachedToken {
            value: value.clone(),
            refresh_at,
        });
        Ok(value)
    }

    /// Sends the request `make` builds with the agent's bearer token; a 401 forgets the token and
    /// resends once with a fresh one. Returns the success answer, undecoded.
    pub(crate) async fn send_as_agent(
        &self,
        url: &str,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, TenantError> {
        let mut refreshed = false;
        loop {
            let token = self.agent_token(refreshed).await?;
            let response = make(token.as_str())
                .send()
                .await
                .map_err(|source| unreachable(url, source))?;
            if response.status().as_u16() == 401 && !refreshed {
                refreshed = true;
                *self.token.lock().await = None;
                continue;
            }
            if !response.status().is_success() {
                return Err(refusal(response, url).await);
            }
            return Ok(response);
        }
    }

    /// [`Self::send_as_agent`], the answer decoded as JSON.
    pub(crate) async fn agent_json<T: DeserializeOwned>(
        &self,
        url: &str,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, TenantError> {
        let response = self.send_as_agent(url, make).await?;
        decode(response, url).await
    }
}

/// `application/x-www-form-urlencoded` (RFC 3986 unreserved bytes pass, the rest is `%XX`;
/// reqwest's `form` feature is not enabled).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        // RFC 3986 unreserved characters pass; everything else is %XX (upper-case hex).
        assert_eq!(
            form_encode(&[("a b", "x=y&z"), ("scope", "api://c/.default")]),
            "a%20b=x%3Dy%26z&scope=api%3A%2F%2Fc%2F.default"
        );
    }
}
