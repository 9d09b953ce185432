//! Run-time control of throttling and faults: `GET|PUT /admin/faults` (Global Administrator only).

use axum::Json;
use axum::extract::State;

use super::authorize::{Authorized, GlobalAdmins};
use super::error::{ApiError, ApiJson};
use super::state::SharedState;
use super::throttle::ThrottleSettings;

/// `GET /admin/faults`.
pub async fn get_faults(
    State(state): State<SharedState>,
    _: Authorized<GlobalAdmins>,
) -> Result<Json<ThrottleSettings>, ApiError> {
    Ok(Json(state.throttle.settings()))
}

/// `PUT /admin/faults`: replaces all settings (buckets restart full).
pub async fn put_faults(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<GlobalAdmins>,
    ApiJson(settings): ApiJson<ThrottleSettings>,
) -> Result<Json<ThrottleSettings>, ApiError> {
    settings.validate().map_err(ApiError::BadRequest)?;
    tracing::info!(settings = ?settings, by = %principal.id(), "Fault and throttle settings changed.");
    state.throttle.set(settings.clone());
    Ok(Json(settings))
}
