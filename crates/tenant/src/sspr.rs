//! Self-service password reset and account unlock, carried out by password writeback.
//!
//! Enters: anonymous calls of a synced user (the real product's SSPR pages), each proven with a
//! one-time code ([`super::sspr_codes`]); an administrator reading the stand-in channel. Leaves:
//! writeback requests ([`super::writeback_submit`]) and the agent's answer, synchronously.
//!
//! - `POST /{tenant}/sspr/verificationCode` `{"userPrincipalName"}` → 200: a 6-digit code is "sent"
//!   (valid 10 minutes, 3 tries, single use). Refused like a reset when the user could not reset.
//! - `POST /{tenant}/sspr/resetPassword` `{"userPrincipalName","code","newPassword"}` and
//!   `POST /{tenant}/sspr/unlock` `{"userPrincipalName","code"}` → 200 `{"code":0,"message"}`, or
//!   400 with the agent's `code` and `message`, or 504 after the bounded wait. A wrong code is 400
//!   `InvalidVerificationCode`; the third wrong one locks the code (`VerificationCodeLocked`).
//! - `GET /api/v1/sspr/channel?userPrincipalName=…` (Global Administrators) → `{"value":[SentCode]}`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use cloudsync_api::error::ODataError;
use cloudsync_api::writeback::{WritebackKind, description};

use super::authorize::{Authorized, GlobalAdmins};
use super::error::{ApiError, ApiJson, ApiQuery};
use super::sspr_codes::CodeError;
use super::state::SharedState;
use super::writeback_submit::{
    NewPassword, SecretJson, WritebackError, await_answer, find_user, submit, target,
};

/// An SSPR refusal: the agent's answer as `{"code","message"}` plus the OData error, or an OData
/// error alone.
#[derive(Debug)]
pub enum SsprError {
    /// A writeback refusal or failure.
    Writeback(WritebackError),
    /// The verification code was not accepted.
    Code(CodeError),
    /// Anything else.
    Api(ApiError),
}

impl From<WritebackError> for SsprError {
    fn from(e: WritebackError) -> Self {
        SsprError::Writeback(e)
    }
}

impl From<ApiError> for SsprError {
    fn from(e: ApiError) -> Self {
        SsprError::Api(e)
    }
}

impl IntoResponse for SsprError {
    fn into_response(self) -> Response {
        match self {
            SsprError::Writeback(WritebackError::Agent(answer)) => (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "code": answer.code,
                    "message": answer.message,
                    "description": description(answer.code),
                    "error": {"code": "PasswordWritebackFailed", "message": answer.message},
                })),
            )
                .into_response(),
            SsprError::Writeback(e) => {
                if let WritebackError::Store(err) = &e {
                    tracing::error!(error = %err, "State store failed while serving a self-service request.");
                }
                (e.status(), Json(ODataError::new(e.code(), e.to_string()))).into_response()
            }
            SsprError::Code(e) => {
                let code = match e {
                    CodeError::NoCode => "VerificationCodeExpired",
                    CodeError::Wrong { .. } => "InvalidVerificationCode",
                    CodeError::Locked => "VerificationCodeLocked",
                };
                (
                    StatusCode::BAD_REQUEST,
                    Json(ODataError::new(code, e.to_string())),
                )
                    .into_response()
            }
            SsprError::Api(e) => e.into_response(),
        }
    }
}

fn check_tenant(state: &SharedState, tenant: &str) -> Result<(), SsprError> {
    if state.identity.matches(tenant) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("Tenant '{tenant}' not found.")).into())
    }
}

/// The body of `verificationCode`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeRequest {
    user_principal_name: String,
}

/// `POST /{tenant}/sspr/verificationCode`.
pub async fn verification_code(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Json<serde_json::Value>, SsprError> {
    check_tenant(&state, &tenant)?;
    let upn = body.user_principal_name.trim();
    let user = find_user(&state, upn)?;
    target(&state, user, WritebackKind::Reset)?;
    state
        .sspr
        .issue(upn, tokio::time::Instant::now())
        .map_err(|_| WritebackError::QueueFull)?;
    tracing::info!(upn = %upn, "Self-service verification code sent (stand-in channel).");
    Ok(Json(json!({
        "sent": true,
        "channel": "GET /api/v1/sspr/channel?userPrincipalName=<upn> (administrators)",
        "expiresInSeconds": super::sspr_codes::CODE_LIFETIME.as_secs(),
        "tries": super::sspr_codes::CODE_TRIES,
    })))
}

/// The body of `resetPassword` and `unlock` (`newPassword` for a reset only).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsprRequest {
    user_principal_name: String,
    code: String,
    #[serde(default)]
    new_password: Option<NewPassword>,
}

async fn run(
    state: SharedState,
    tenant: String,
    body: SsprRequest,
    kind: WritebackKind,
) -> Result<Json<serde_json::Value>, SsprError> {
    check_tenant(&state, &tenant)?;
    let upn = body.user_principal_name.trim().to_owned();
    let user = find_user(&state, &upn)?;
    let password = match kind {
        WritebackKind::Reset => {
            let Some(p) = body.new_password else {
                return Err(WritebackError::BadPassword("newPassword is required.".into()).into());
            };
            p.check()?;
            Some(p)
        }
        WritebackKind::Unlock => None,
    };
    let target = target(&state, user, kind)?;
    state
        .sspr
        .verify(&upn, &body.code, tokio::time::Instant::now())
        .map_err(|e| {
            tracing::warn!(upn = %upn, refusal = %e, "Self-service verification code refused.");
            SsprError::Code(e)
        })?;
    let queued = submit(
        &state,
        target,
        kind,
        password,
        false,
        format!("self-service:{upn}"),
    )?;
    let answer = await_answer(&state, queued).await?;
    if answer.code != cloudsync_api::writeback::SUCCESS {
        return Err(WritebackError::Agent(answer).into());
    }
    Ok(Json(json!({
        "code": answer.code,
        "message": if answer.message.is_empty() { description(answer.code).to_owned() } else { answer.message },
    })))
}

/// `POST /{tenant}/sspr/resetPassword`.
pub async fn reset_password(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    SecretJson(body): SecretJson<SsprRequest>,
) -> Result<Json<serde_json::Value>, SsprError> {
    run(state, tenant, body, WritebackKind::Reset).await
}

/// `POST /{tenant}/sspr/unlock`.
pub async fn unlock(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    SecretJson(body): SecretJson<SsprRequest>,
) -> Result<Json<serde_json::Value>, SsprError> {
    run(state, tenant, body, WritebackKind::Unlock).await
}

/// `GET /api/v1/sspr/channel?userPrincipalName=…` (Global Administrators).
pub async fn channel(
    State(state): State<SharedState>,
    _: Authorized<GlobalAdmins>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let upn = query
        .get("userPrincipalName")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadRequest("userPrincipalName is required.".into()))?;
    Ok(Json(json!({ "value": state.sspr.channel(upn) })))
}
