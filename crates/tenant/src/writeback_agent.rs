//! The agent's side of password writeback: its key, the long poll, its answers.
//!
//! Enters: agents' client-credentials calls. Leaves: the key on the agent's record, requests handed
//! out from [`super::writeback_queue`], answers recorded there.
//!
//! - `PUT /api/v1/agents/{id}/writebackKey` ([`WritebackKey`]): the agent itself only (403 for
//!   another agent), 204. A new key replaces the old; requests already sealed to the old one are
//!   not resealed (the agent answers them 33001 if it cannot open them).
//! - `GET /api/v1/agents/{id}/writeback/requests?waitSeconds=N` (N ≤ 30, default 25): the agent
//!   itself; requests of the configurations it is paired with (its domains), at once when there
//!   are any, else `{"value":[]}` after N seconds.
//! - `POST /api/v1/agents/{id}/writeback/requests/{requestId}/answer` ([`WritebackAnswer`]): 204; the
//!   first answer wins, later ones are ignored (204); a request that is unknown or not the agent's
//!   is 404.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use cloudsync_api::writeback::{
    DEFAULT_WAIT_SECONDS, MAX_ANSWER_MESSAGE_CHARS, MAX_WAIT_SECONDS, WritebackAnswer,
    WritebackKey, WritebackRequests, is_known_code,
};

use super::agents::{all_configs, parse_id};
use super::auth::Principal;
use super::authorize::{Agents, Authorized};
use super::error::{ApiError, ApiJson, ApiQuery};
use super::state::SharedState;
use super::store::{AgentRecord, StoreError, get_json, put_json};
use super::writeback_submit::parse_key;

/// The calling agent's record, after checking the path names the caller (403 otherwise).
fn own_record(
    state: &SharedState,
    principal: &Principal,
    agent_id: &str,
) -> Result<AgentRecord, ApiError> {
    let agent_id = parse_id(agent_id)?;
    if principal.id() != agent_id {
        return Err(ApiError::Forbidden(
            "An agent may only use its own writeback routes.".into(),
        ));
    }
    get_json(&state.store.agents, "agents", agent_id.as_bytes())?
        .ok_or_else(|| ApiError::NotFound(format!("Agent {agent_id} is not registered.")))
}

/// The configurations `agent` is paired with (those of its domains).
fn paired(state: &SharedState, agent: &AgentRecord) -> Result<Vec<Uuid>, StoreError> {
    Ok(all_configs(state)?
        .into_iter()
        .filter(|r| {
            agent
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&r.config.spec.domain))
        })
        .map(|r| r.config.id)
        .collect())
}

/// `PUT /api/v1/agents/{id}/writebackKey`.
pub async fn put_key(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path(agent_id): Path<String>,
    ApiJson(body): ApiJson<WritebackKey>,
) -> Result<StatusCode, ApiError> {
    own_record(&state, &principal, &agent_id)?;
    if parse_key(&body.public_key).is_none() {
        return Err(ApiError::BadRequest(
            "publicKey must be the standard base64 of a 32-byte X25519 public key.".into(),
        ));
    }
    let _guard = state.apply_lock.lock().await;
    let mut agent = own_record(&state, &principal, &agent_id)?;
    agent.writeback_public_key = Some(body.public_key.trim().to_owned());
    put_json(&state.store.agents, agent.id.as_bytes(), &agent)?;
    state.store.flush().await?;
    tracing::info!(agent_id = %agent.id, "Agent's writeback key registered.");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/agents/{id}/writeback/requests?waitSeconds=N`.
pub async fn poll(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path(agent_id): Path<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<WritebackRequests>, ApiError> {
    let agent = own_record(&state, &principal, &agent_id)?;
    let wait = match query.get("waitSeconds") {
        None => DEFAULT_WAIT_SECONDS,
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "waitSeconds must be a whole number of seconds (0 to {MAX_WAIT_SECONDS})."
                ))
            })?
            .min(MAX_WAIT_SECONDS),
    };
    let paired = paired(&state, &agent)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let value = state.writeback.poll(agent.id, &paired, deadline).await;
    if !value.is_empty() {
        let ids: Vec<String> = value.iter().map(|r| r.id.to_string()).collect();
        tracing::info!(agent_id = %agent.id, requests = ?ids, "Password writeback requests handed out.");
    }
    Ok(Json(WritebackRequests { value }))
}

/// `POST /api/v1/agents/{id}/writeback/requests/{requestId}/answer`.
pub async fn answer(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path((agent_id, request_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<WritebackAnswer>,
) -> Result<StatusCode, ApiError> {
    let agent = own_record(&state, &principal, &agent_id)?;
    let request_id = parse_id(&request_id)?;
    if !is_known_code(body.code) {
        return Err(ApiError::BadRequest(format!(
            "code {} is not a writeback result code (0 or 33001 to 33009).",
            body.code
        )));
    }
    if body.message.chars().count() > MAX_ANSWER_MESSAGE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "message has more than {MAX_ANSWER_MESSAGE_CHARS} characters."
        )));
    }
    let code = body.code;
    let first = state
        .writeback
        .answer(agent.id, request_id, body, tokio::time::Instant::now())
        .map_err(|_| {
            ApiError::NotFound(format!("Writeback request {request_id} does not exist."))
        })?;
    if first {
        tracing::info!(agent_id = %agent.id, request_id = %request_id, code, "Password writeback answered.");
    } else {
        tracing::info!(agent_id = %agent.id, request_id = %request_id, code, "Repeated or late password writeback answer ignored.");
    }
    Ok(StatusCode::NO_CONTENT)
}
