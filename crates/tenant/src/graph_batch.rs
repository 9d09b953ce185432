//! `POST /v1.0/$batch`: at most 20 GET requests, each answered with its own status, headers and body.
//!
//! Every item counts against the read budget on its own, so a batch can hold 200s next to 429s (with
//! `Retry-After` in the item's headers), as Microsoft Graph does. `dependsOn` is ignored: all items
//! are reads and independent.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::authorize::{AdminsOrAgents, Authorized};
use super::error::{ApiError, ApiJson};
use super::graph::{ReadScope, base_url, get_resource};
use super::state::SharedState;
use super::throttle::Budget;

/// The largest `$batch`.
pub const MAX_BATCH_REQUESTS: usize = 20;

/// One request of a `$batch`.
#[derive(Debug, Deserialize)]
pub struct BatchItem {
    /// Client-chosen id, echoed in the response.
    pub id: String,
    /// HTTP method; only GET is served.
    pub method: String,
    /// URL relative to `/v1.0`.
    pub url: String,
}

/// The `$batch` body.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    /// 1 to 20 requests.
    pub requests: Vec<BatchItem>,
}

fn item_response(id: &str, result: Result<Value, ApiError>) -> Value {
    match result {
        Ok(body) => {
            json!({"id": id, "status": 200, "headers": {"Content-Type": "application/json"}, "body": body})
        }
        Err(e) => {
            let mut headers = json!({"Content-Type": "application/json"});
            if let Some(secs) = e.retry_after() {
                headers["Retry-After"] = json!(secs.to_string());
            }
            json!({"id": id, "status": e.status().as_u16(), "headers": headers, "body": e.body()})
        }
    }
}

/// `POST /v1.0/$batch`.
pub async fn batch(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<AdminsOrAgents>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Response, ApiError> {
    let n = req.requests.len();
    if n == 0 || n > MAX_BATCH_REQUESTS {
        return Err(ApiError::BadRequest(format!(
            "Number of requests in a batch must be between 1 and {MAX_BATCH_REQUESTS}; got {n}."
        )));
    }
    let mut ids: Vec<&str> = req.requests.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::BadRequest(
            "Request ids in a batch must be unique.".into(),
        ));
    }
    let scope = ReadScope::of(&state, &principal)?;
    let base = base_url(&state, &headers, &uri);
    let responses: Vec<Value> = req
        .requests
        .iter()
        .map(|item| {
            let result = if !item.method.eq_ignore_ascii_case("GET") {
                Err(ApiError::MethodNotAllowed(format!(
                    "This tenant's Graph API is read-only; {} is not allowed.",
                    item.method
                )))
            } else if let Err(retry_after) = state.throttle.take(Budget::Reads, 1) {
                Err(ApiError::TooManyRequests { retry_after })
            } else {
                let url = item.url.trim_start_matches('/');
                let url = url.strip_prefix("v1.0/").unwrap_or(url);
                let (path, query) = url.split_once('?').unwrap_or((url, ""));
                get_resource(&state, &base, path, query, &scope)
            };
            item_response(&item.id, result)
        })
        .collect();
    Ok((StatusCode::OK, Json(json!({ "responses": responses }))).into_response())
}
