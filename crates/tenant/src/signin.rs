//! The sign-in check that proves password hash sync end to end: `POST /{tenant}/signin` with
//! `{"userPrincipalName","password"}` answers 200 when the password matches the user's synced hash
//! and 401 otherwise — also for disabled users, unknown users and users without a synced hash, with
//! the same body so the answer does not reveal which. Smart lockout ([`super::lockout`]) runs
//! around the check: a locked account (from the caller's address) gets 400 AADSTS50053.

use axum::Json;
use axum::extract::{Path, State};
use cloudsync_api::orgid::OrgIdString;
use serde::Deserialize;

use super::apply::StoredCredential;
use super::error::{ApiError, ApiJson};
use super::lockout::{ClientAddr, LOCKED_MESSAGE, Refusal};
use super::state::SharedState;
use super::store::{StoreError, StoredObject, get_json};

/// The sign-in request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInRequest {
    /// The user's UPN.
    pub user_principal_name: String,
    /// The cleartext password (checked in memory, never stored or logged).
    pub password: String,
}

/// Returns the synced, enabled user whose stored hash matches `password`, if any.
pub fn check_synced_password(
    state: &SharedState,
    upn: &str,
    password: &str,
) -> Result<Option<StoredObject>, StoreError> {
    let Some(id) = state.store.upns.get(upn.to_lowercase().as_bytes())? else {
        return Ok(None);
    };
    let Some(user) = get_json::<StoredObject>(&state.store.objects, "objects", &id)? else {
        return Ok(None);
    };
    if user.deleted || !user.account_enabled() {
        return Ok(None);
    }
    let Some(cred) = get_json::<StoredCredential>(&state.store.credentials, "credentials", &id)?
    else {
        return Ok(None);
    };
    match OrgIdString::parse(&cred.credential) {
        Ok(hash) if super::orgid::verify(&hash, password) => Ok(Some(user)),
        _ => Ok(None),
    }
}

/// `POST /{tenant}/signin`.
pub async fn signin(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.identity.matches(&tenant) {
        return Err(ApiError::NotFound(format!("Tenant '{tenant}' not found.")));
    }
    // PBKDF2 is CPU work: keep it off the async workers.
    let checked = {
        let state = state.clone();
        let now = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let upn = &req.user_principal_name;
            state.lockout.guard("signin", upn, addr, now, || {
                match check_synced_password(&state, upn, &req.password) {
                    Ok(Some(user)) => Ok(user),
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            })
        })
        .await
        .map_err(|_| ApiError::ServiceUnavailable)?
    };
    match checked {
        Ok(user) => {
            tracing::info!(object_id = %user.id, "Synced user signed in.");
            Ok(Json(serde_json::json!({
                "result": "success",
                "id": user.id,
                "userPrincipalName": user.upn(),
            })))
        }
        Err(Refusal::Locked(_)) => Err(ApiError::BadRequest(format!(
            "AADSTS50053: {LOCKED_MESSAGE}"
        ))),
        Err(Refusal::Failed(Some(e))) => Err(e.into()),
        Err(Refusal::Failed(None)) => Err(ApiError::Unauthorized(
            "AADSTS50126: Error validating credentials due to invalid username or password.".into(),
        )),
    }
}
