//! How the tenant refused: [`TenantError`], and the parsing of every answer into it (an OAuth2 body is
//! a refused sign-in, 403 is [`TenantError::Forbidden`], anything else a status with the OData code).
//! Enters: a `reqwest` answer or transport error. Leaves: the decoded body or a [`TenantError`].

use serde::de::DeserializeOwned;

use cloudsync_api::auth::OAuthError;
use cloudsync_api::error::ODataError;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The `[tenant] ca_file` could not be read.
    #[error("{}: {source}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is not a PEM certificate.
    #[error("the CA is not a usable PEM certificate: {0}")]
    Certificate(#[source] reqwest::Error),
    /// reqwest refused the settings.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
}

/// Why a call to the tenant failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The tenant could not be reached (connection refused, DNS, TLS handshake, timeout), or the
    /// answer could not be read.
    #[error("cannot reach the tenant at {url}: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was an OAuth2 error: the token endpoint refused the sign-in (wrong password,
    /// unknown user, bad secret).
    #[error("sign-in refused ({error}): {description}")]
    SignIn {
        /// The HTTP status.
        status: u16,
        /// The OAuth2 error, e.g. `invalid_grant`.
        error: String,
        /// Microsoft's description, starting with the AADSTS code.
        description: String,
        /// The raw `Retry-After` header, when sent.
        retry_after: Option<String>,
    },
    /// 403: the caller lacks the role (registration needs a Global or Hybrid Identity Administrator).
    #[error("forbidden: {message}")]
    Forbidden {
        /// The OData error code.
        code: String,
        /// The tenant's message.
        message: String,
        /// The raw `Retry-After` header, when sent.
        retry_after: Option<String>,
    },
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
        /// The raw `Retry-After` header, when sent.
        retry_after: Option<String>,
    },
    /// A success answer that is not the expected JSON.
    #[error("undecodable answer from {url}: {source}")]
    Decode {
        /// The URL called.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP client could not be built (unreadable or invalid CA file).
    #[error("building the HTTP client: {0}")]
    Build(#[from] BuildError),
    /// An agent call on a client built without the agent's credentials (the installer's client).
    #[error("this client has no agent credentials: run `cloudsync agent register`")]
    NoAgentCredentials,
    /// The credentials file could not be written or read.
    #[error(transparent)]
    Credentials(#[from] crate::control::credentials::CredentialsError),
}

impl TenantError {
    /// Whether the same call may succeed later (transport failures, 429, 5xx).
    pub fn is_retriable(&self) -> bool {
        match self {
            TenantError::Unreachable { .. } => true,
            TenantError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

pub(super) fn unreachable(url: &str, source: reqwest::Error) -> TenantError {
    TenantError::Unreachable {
        url: url.to_string(),
        source,
    }
}

/// A success answer decoded as JSON, or the refusal.
pub(super) async fn decode<T: DeserializeOwned>(
    response: reqwest::Response,
    url: &str,
) -> Result<T, TenantError> {
    if !response.status().is_success() {
        return Err(refusal(response, url).await);
    }
    let body = response
        .bytes()
        .await
        .map_err(|source| unreachable(url, source))?;
    serde_json::from_slice(&body).map_err(|source| TenantError::Decode {
        url: url.to_string(),
        source,
    })
}

/// A non-success answer: an OAuth2 error body is a refused sign-in; otherwise the OData error's
/// code and message (or the first 200 characters of the body), 403 as [`TenantError::Forbidden`].
pub(super) async fn refusal(response: reqwest::Response, url: &str) -> TenantError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(source) => return unreachable(url, source),
    };
    if let Ok(e) = serde_json::from_slice::<OAuthError>(&body) {
        return TenantError::SignIn {
            status,
            error: e.error,
            description: e.error_description,
            retry_after,
        };
    }
    let (code, message) = match serde_json::from_slice::<ODataError>(&body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (
            "Unknown".into(),
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        ),
    };
    if status == 403 {
        return TenantError::Forbidden {
            code,
            message,
            retry_after,
        };
    }
    TenantError::Status {
        url: url.to_string(),
        status,
        code,
        message,
        retry_after,
    }
}
