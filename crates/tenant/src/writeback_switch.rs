//! The writeback switches of a configuration, for admins: `GET|PUT
//! /api/v1/configurations/{id}/writeback` ([`WritebackSwitches`] in, [`WritebackStatus`] out), the
//! API behind `cloudsync agent writeback enable|disable [--allow-unlock]`. The portal's switches
//! ([`super::portal`]) change the same fields; a change bumps the configuration's revision.

use axum::Json;
use axum::extract::{Path, State};

use cloudsync_api::writeback::{WritebackStatus, WritebackSwitches};

use super::agents::parse_id;
use super::authorize::{Admins, Authorized};
use super::error::{ApiError, ApiJson};
use super::state::SharedState;
use super::store::{ConfigRecord, get_json, put_json};
use super::writeback_submit::ready_agents;

fn load(state: &SharedState, id: uuid::Uuid) -> Result<ConfigRecord, ApiError> {
    get_json(&state.store.configs, "configs", id.as_bytes())?
        .ok_or_else(|| ApiError::NotFound(format!("Configuration {id} does not exist.")))
}

/// The switches of `record` and the agents ready to carry writeback out.
pub fn status(state: &SharedState, record: &ConfigRecord) -> Result<WritebackStatus, ApiError> {
    let spec = &record.config.spec;
    Ok(WritebackStatus {
        configuration_id: record.config.id,
        revision: record.config.revision,
        enabled: spec.password_writeback,
        allow_unlock: spec.allow_unlock,
        ready_agents: ready_agents(state, &spec.domain)?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    })
}

/// Sets both switches of a configuration; bumps the revision when one changed. Returns whether
/// anything changed. The caller holds the apply lock.
pub async fn set(
    state: &SharedState,
    record: &mut ConfigRecord,
    switches: WritebackSwitches,
) -> Result<bool, ApiError> {
    let spec = &mut record.config.spec;
    if spec.password_writeback == switches.enabled && spec.allow_unlock == switches.allow_unlock {
        return Ok(false);
    }
    spec.password_writeback = switches.enabled;
    spec.allow_unlock = switches.allow_unlock;
    record.config.revision += 1;
    put_json(&state.store.configs, record.config.id.as_bytes(), record)?;
    state.store.flush().await?;
    Ok(true)
}

/// `GET /api/v1/configurations/{id}/writeback` (admins).
pub async fn get(
    State(state): State<SharedState>,
    _: Authorized<Admins>,
    Path(id): Path<String>,
) -> Result<Json<WritebackStatus>, ApiError> {
    let record = load(&state, parse_id(&id)?)?;
    Ok(Json(status(&state, &record)?))
}

/// `PUT /api/v1/configurations/{id}/writeback` (admins).
pub async fn put(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Admins>,
    Path(id): Path<String>,
    ApiJson(switches): ApiJson<WritebackSwitches>,
) -> Result<Json<WritebackStatus>, ApiError> {
    let id = parse_id(&id)?;
    let _guard = state.apply_lock.lock().await;
    let mut record = load(&state, id)?;
    if set(&state, &mut record, switches).await? {
        tracing::info!(
            configuration = %id,
            enabled = switches.enabled,
            allow_unlock = switches.allow_unlock,
            by = %principal.id(),
            "Password writeback switches set."
        );
    }
    Ok(Json(status(&state, &record)?))
}
