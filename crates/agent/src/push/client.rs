//! The push stage's calls to the tenant, on the agent's one [`TenantClient`]: batch posts and
//! configuration reads. Enters: a serialised batch or a configuration id. Leaves: the tenant's
//! answer, or a [`CallError`] classified for the push loop (retriable or not, too large, throttled,
//! the bounded `Retry-After`). Only [`cloudsync_api`] types cross this boundary.

use std::time::Duration;

use uuid::Uuid;

use cloudsync_api::config::Configuration;
use cloudsync_api::ops::{BatchResponse, OperationBatch};

use super::retry::parse_retry_after;
use crate::control::tenant_client::{TenantClient, TenantError};

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
    Decode(#[source] serde_json::Error),
    /// A batch answer whose results do not match the batch's operations one to one.
    #[error("undecodable response: {results} results for {operations} operations")]
    ResultsMismatch {
        /// Results in the answer.
        results: usize,
        /// Operations in the batch.
        operations: usize,
    },
    /// The client cannot make the call (it has no agent credentials).
    #[error("the tenant client cannot make this call: {0}")]
    Build(#[source] TenantError),
}

impl CallError {
    /// Whether the same call may succeed later. Transport errors, 408, 429, 5xx, undecodable
    /// answers and 401 (the token is refreshed first) are retriable; other statuses are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            CallError::Transport(_) | CallError::Decode(_) | CallError::ResultsMismatch { .. } => {
                true
            }
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

    /// True for 409 `LeaseLost`: the batch's epoch is not the configuration's lease
    /// ([`cloudsync_api::lease`]).
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, CallError::Status { status: 409, code, .. } if code == "LeaseLost")
    }

    /// True for 429 (throttled).
    pub fn is_throttled(&self) -> bool {
        matches!(self, CallError::Status { status: 429, .. })
    }
}

impl From<TenantError> for CallError {
    /// The shared client's answer, in the push loop's terms: an OAuth2 refusal or a 403 is a status
    /// like any other, and a `Retry-After` header is parsed here.
    fn from(e: TenantError) -> CallError {
        let status = |status, code, message, retry_after: Option<String>| CallError::Status {
            status,
            code,
            message,
            retry_after: retry_after.as_deref().and_then(parse_retry_after),
        };
        match e {
            TenantError::Unreachable { source, .. } => CallError::Transport(source),
            TenantError::SignIn {
                status: s,
                error,
                description,
                retry_after,
            } => status(s, error, description, retry_after),
            TenantError::Forbidden {
                code,
                message,
                retry_after,
            } => status(403, code, message, retry_after),
            TenantError::Status {
                status: s,
                code,
                message,
                retry_after,
                ..
            } => status(s, code, message, retry_after),
            TenantError::Decode { source, .. } => CallError::Decode(source),
            other => CallError::Build(other),
        }
    }
}

/// The push stage's calls (an `impl` of the shared client's type, so the push loop holds one
/// `Arc<TenantClient>`).
impl TenantClient {
    /// Posts one batch; on success returns the tenant's per-operation results.
    pub async fn post_batch(
        &self,
        configuration: Uuid,
        body: &[u8],
    ) -> Result<BatchResponse, CallError> {
        let url = self.url(&format!("/api/v1/configurations/{configuration}/batches"));
        Ok(self
            .agent_json(&url, |token| {
                self.http()
                    .post(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec())
            })
            .await?)
    }

    /// Reads a configuration (its health tells whether the tenant's quarantine was cleared).
    pub async fn get_configuration(&self, configuration: Uuid) -> Result<Configuration, CallError> {
        let url = self.url(&format!("/api/v1/configurations/{configuration}"));
        Ok(self
            .agent_json(&url, |token| self.http().get(&url).bearer_auth(token))
            .await?)
    }
}

/// Serialises a batch once, so retries resend the same bytes under the same batch id.
pub fn encode_batch(batch: &OperationBatch) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

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
