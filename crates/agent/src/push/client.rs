//! HTTP to the tenant: the client-credentials token (cached, renewed before expiry, refreshed once
//! on 401), batch posts and configuration reads. Only [`cloudsync_api`] types cross this boundary.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;
use zeroize::Zeroizing;

use cloudsync_api::auth::{OAuthError, TokenResponse};
use cloudsync_api::config::Configuration;
use cloudsync_api::error::ODataError;
use cloudsync_api::ops::{BatchResponse, OperationBatch};

use super::retry::{deadline_after, parse_retry_after};

/// The longest token lifetime believed (Entra issues 60–90 minute tokens): a day.
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// The agent's credentials from registration.
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

/// Why a call to the tenant failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connecting, sending or reading failed; the request may or may not have been applied.
    #[error("transport: {0}")]
    Transport(#[source] reqwest::Error),
    /// The tenant answered with a non-success status.
    #[error("HTTP {status}: {code}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The OData (or OAuth2) error code.
        code: String,
        /// The tenant's message.
        message: String,
        /// The `Retry-After` delay, when sent.
        retry_after: Option<Duration>,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("undecodable response: {0}")]
    Decode(String),
    /// The HTTP client could not be built (bad CA file).
    #[error("building the HTTP client: {0}")]
    Build(String),
}

impl CallError {
    /// Whether the same call may succeed later. Transport errors, 408, 429, 5xx, undecodable
    /// answers and 401 (the token is refreshed first) are retriable; other statuses are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            CallError::Transport(_) | CallError::Decode(_) => true,
            CallError::Status { status, .. } => {
                matches!(status, 401 | 408 | 429) || (500..=599).contains(status)
            }
            CallError::Build(_) => false,
        }
    }

    /// The server's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for 413: the batch must be split.
    pub fn is_too_large(&self) -> bool {
        matches!(self, CallError::Status { status: 413, .. })
    }

    /// True for 429 (throttled).
    pub fn is_throttled(&self) -> bool {
        matches!(self, CallError::Status { status: 429, .. })
    }
}

struct CachedToken {
    value: Zeroizing<String>,
    refresh_at: Instant,
}

/// A client of the tenant's agent API.
pub struct TenantClient {
    http: reqwest::Client,
    creds: Credentials,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TenantClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantClient")
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

async fn status_error(response: reqwest::Response) -> CallError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = if let Ok(e) = serde_json::from_slice::<ODataError>(&body) {
        (e.error.code, e.error.message)
    } else if let Ok(e) = serde_json::from_slice::<OAuthError>(&body) {
        (e.error, e.error_description)
    } else {
        (
            "Unknown".to_owned(),
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        )
    };
    CallError::Status {
        status,
        code,
        message,
        retry_after,
    }
}

impl TenantClient {
    /// Builds a client; TLS verification stays on unless `tls.insecure` says otherwise.
    pub fn new(creds: Credentials, tls: &TlsOptions, timeout: Duration) -> Result<Self, CallError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(pem) = &tls.ca_pem {
            let cert =
                reqwest::Certificate::from_pem(pem).map_err(|e| CallError::Build(e.to_string()))?;
            builder = builder.tls_certs_only([cert]);
        }
        if tls.insecure {
            tracing::warn!("TLS certificate verification is OFF for the tenant connection.");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| CallError::Build(e.to_string()))?;
        Ok(TenantClient {
            http,
            creds,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.creds.base_url.trim_end_matches('/'), path)
    }

    /// A valid access token: the cached one, or a fresh one when it is due for renewal.
    async fn access_token(&self, force: bool) -> Result<Zeroizing<String>, CallError> {
        let mut cached = self.token.lock().await;
        if !force
            && let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.creds.client_id.as_str()),
            ("client_secret", self.creds.client_secret.as_str()),
            ("scope", self.creds.scope.as_str()),
        ];
        let response = self
            .http
            .post(self.url(&self.creds.token_endpoint))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_encode(&form))
            .send()
            .await
            .map_err(CallError::Transport)?;
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        let body = response.bytes().await.map_err(CallError::Transport)?;
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| CallError::Decode(e.to_string()))?;
        // Renew when 80% of the lifetime has passed, so a token never expires mid-request.
        // `expires_in` is the server's number: capped (a day) before it becomes an `Instant`.
        let lifetime = Duration::from_secs(token.expires_in.clamp(1, MAX_TOKEN_LIFETIME_SECS));
        let refresh_at = deadline_after(Instant::now(), lifetime.mul_f64(0.8));
        tracing::debug!(expires_in = token.expires_in, "Obtained an access token.");
        let value = Zeroizing::new(token.access_token);
        *cached = Some(CachedToken {
            value: value.clone(),
            refresh_at,
        });
        Ok(value)
    }

    /// Forgets the cached token (after a 401).
    async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    async fn send_authorized(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let mut refreshed = false;
        loop {
            let token = self.access_token(false).await?;
            let response = make(token.as_str())
                .send()
                .await
                .map_err(CallError::Transport)?;
            if response.status().as_u16() == 401 && !refreshed {
                refreshed = true;
                self.invalidate().await;
                continue;
            }
            if !response.status().is_success() {
                return Err(status_error(response).await);
            }
            return Ok(response);
        }
    }

    /// Posts one batch; on success returns the tenant's per-operation results.
    pub async fn post_batch(
        &self,
        configuration: Uuid,
        body: &[u8],
    ) -> Result<BatchResponse, CallError> {
        let url = self.url(&format!("/api/v1/configurations/{configuration}/batches"));
        let response = self
            .send_authorized(|token| {
                self.http
                    .post(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec())
            })
            .await?;
        let bytes = response.bytes().await.map_err(CallError::Transport)?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// Reads a configuration (its health tells whether the tenant's quarantine was cleared).
    pub async fn get_configuration(&self, configuration: Uuid) -> Result<Configuration, CallError> {
        let url = self.url(&format!("/api/v1/configurations/{configuration}"));
        let response = self
            .send_authorized(|token| self.http.get(&url).bearer_auth(token))
            .await?;
        let bytes = response.bytes().await.map_err(CallError::Transport)?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()))
    }
}

/// `application/x-www-form-urlencoded` encoding (reqwest's `form` feature is not enabled).
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in [k, v].iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            for b in part.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// Serialises a batch once, so retries resend the same bytes under the same batch id.
pub fn encode_batch(batch: &OperationBatch) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(batch)
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

    #[test]
    fn classification() {
        let s = |status| CallError::Status {
            status,
            code: String::new(),
            message: String::new(),
            retry_after: None,
        };
        for retriable in [401, 408, 429, 500, 503] {
            assert!(s(retriable).is_retriable(), "{retriable}");
        }
        for permanent in [400, 403, 404, 413] {
            assert!(!s(permanent).is_retriable(), "{permanent}");
        }
        assert!(s(413).is_too_large());
    }
}
