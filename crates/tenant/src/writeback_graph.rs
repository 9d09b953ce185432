//! Graph's admin password reset, carried out by password writeback.
//!
//! Enters: Graph calls of a Global Administrator (the tenant's stand-in for Graph's Privileged
//! Authentication Administrator). Leaves: writeback requests ([`super::writeback_submit`]) and Graph's
//! answers, errors in Graph's envelope with the agent's result code in `innerError` and `details`.
//!
//! - `POST /v1.0/users/{id}/authentication/methods/28c10230-6103-485e-b985-444c60001490/resetPassword`
//!   `{"newPassword"}` → `202 Accepted` with `Location:
//!   {base}/v1.0/users/{id}/authentication/operations/{operationId}` (absolute, as Graph answers).
//! - `GET /v1.0/users/{id}/authentication/operations/{operationId}` → Graph's
//!   `passwordResetOperation`-like long-running operation: `status` `notStarted` (queued), `running`
//!   (handed to the agent), `succeeded`, `failed` (the agent's refusal in `statusDetail`, or nobody
//!   answered in time). Kept 10 minutes after it ends.
//! - `PATCH /v1.0/users/{id}` `{"passwordProfile":{"password","forceChangePasswordNextSignIn"}}` →
//!   waits for the agent (bounded): 204, 400 with the agent's code, or 504. Other properties of a
//!   synced user are mastered on-premises: 400, as Graph answers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use cloudsync_api::writeback::{WritebackKind, description};

use super::auth::Principal;
use super::authorize::{Authorized, GlobalAdmins};
use super::error::ApiError;
use super::graph::base_url;
use super::state::{SharedState, now_rfc3339};
use super::writeback_submit::{
    NewPassword, SecretJson, WritebackError, await_answer, find_user, into_result, submit, target,
};

/// The id of the password authentication method, the same in every tenant.
pub const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";

/// A writeback error in Graph's error envelope.
#[derive(Debug)]
pub struct GraphError(pub WritebackError);

impl From<WritebackError> for GraphError {
    fn from(e: WritebackError) -> Self {
        GraphError(e)
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let e = self.0;
        if let WritebackError::Store(err) = &e {
            tracing::error!(error = %err, "State store failed while serving a writeback request.");
        }
        let mut inner = json!({
            "date": now_rfc3339(),
            "request-id": Uuid::new_v4(),
            "client-request-id": Uuid::new_v4(),
        });
        let mut error = json!({"code": e.code(), "message": e.to_string(), "innerError": {}});
        if let Some(code) = e.writeback_code() {
            inner["writebackResultCode"] = json!(code);
            error["details"] = json!([{
                "code": code.to_string(),
                "message": description(code),
                "target": "passwordProfile",
            }]);
        }
        error["innerError"] = inner;
        let mut response = (e.status(), Json(json!({ "error": error }))).into_response();
        if matches!(e, WritebackError::NoAgent(_) | WritebackError::QueueFull) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(30u32));
        }
        response
    }
}

/// The body of `resetPassword`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetBody {
    /// Required for a synced user (Graph generates one only for cloud-only users).
    #[serde(default)]
    new_password: Option<NewPassword>,
}

fn requested_by(principal: &Principal) -> String {
    match &principal.claims.upn {
        Some(upn) => format!("admin:{upn}"),
        None => format!("admin:{}", principal.id()),
    }
}

/// `POST /v1.0/users/{id}/authentication/methods/{methodId}/resetPassword`.
pub async fn reset_password(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<GlobalAdmins>,
    Path((user_key, method)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    SecretJson(body): SecretJson<ResetBody>,
) -> Result<Response, Response> {
    if !method.eq_ignore_ascii_case(PASSWORD_METHOD_ID) {
        return Err(ApiError::NotFound(format!(
            "Authentication method '{method}' does not exist; the password method is {PASSWORD_METHOD_ID}."
        ))
        .into_response());
    }
    let graph = |e: WritebackError| GraphError(e).into_response();
    let user = find_user(&state, &user_key).map_err(graph)?;
    let Some(password) = body.new_password else {
        return Err(graph(WritebackError::BadPassword(
            "newPassword is required for a user synced from on-premises.".into(),
        )));
    };
    password.check().map_err(graph)?;
    let target = target(&state, user, WritebackKind::Reset).map_err(graph)?;
    let user_id = target.user.id;
    let queued = submit(
        &state,
        target,
        WritebackKind::Reset,
        Some(password),
        false,
        requested_by(&principal),
    )
    .map_err(graph)?;
    let location = format!(
        "{}/v1.0/users/{user_id}/authentication/operations/{}",
        base_url(&state, &headers, &uri),
        queued.id
    );
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
    Ok(response)
}

/// `GET /v1.0/users/{id}/authentication/operations/{operationId}`.
pub async fn operation(
    State(state): State<SharedState>,
    _: Authorized<GlobalAdmins>,
    Path((user_key, op)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<serde_json::Value>, Response> {
    let not_found = || {
        ApiError::NotFound(format!(
            "Operation '{op}' does not exist for user '{user_key}'."
        ))
        .into_response()
    };
    let op_id = Uuid::parse_str(&op).map_err(|_| not_found())?;
    let user = find_user(&state, &user_key).map_err(|e| GraphError(e).into_response())?;
    let view = state
        .writeback
        .view(op_id, tokio::time::Instant::now())
        .filter(|v| v.user_id == user.id)
        .ok_or_else(not_found)?;
    let detail = match (&view.answer, view.status) {
        (Some(a), _) if a.message.is_empty() => {
            Some(format!("{}: {}", a.code, description(a.code)))
        }
        (Some(a), _) => Some(format!("{}: {}", a.code, a.message)),
        (None, "failed") => Some(
            "The on-premises agent did not answer in time; the request was withdrawn.".to_owned(),
        ),
        (None, _) => None,
    };
    Ok(Json(json!({
        "@odata.context": format!(
            "{}/v1.0/$metadata#users('{}')/authentication/operations/$entity",
            base_url(&state, &headers, &uri),
            user.id
        ),
        "id": op_id,
        "status": view.status,
        "statusDetail": detail,
        "resourceLocation": null,
        "createdDateTime": view.created_at,
        "lastActionDateTime": view.last_action_at,
    })))
}

/// `passwordProfile` in a user PATCH.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordProfile {
    #[serde(default)]
    password: Option<NewPassword>,
    #[serde(default)]
    force_change_password_next_sign_in: bool,
}

/// The body of a user PATCH: only `passwordProfile` may be written for a synced user; any other
/// property is refused by name (not collected with `flatten`, which would buffer the password).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    password_profile: Option<PasswordProfile>,
}

/// `PATCH /v1.0/users/{id}`.
pub async fn patch_user(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<GlobalAdmins>,
    Path(user_key): Path<String>,
    body: Result<SecretJson<PatchBody>, ApiError>,
) -> Result<StatusCode, Response> {
    let body = match body {
        Ok(SecretJson(body)) => body,
        Err(ApiError::BadRequest(text)) if text.contains("unknown field") => {
            return Err(ApiError::BadRequest(format!(
                "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration; only passwordProfile is written back ({text})."
            ))
            .into_response());
        }
        Err(e) => return Err(e.into_response()),
    };
    patch_password(&state, &principal, &user_key, body)
        .await
        .map_err(|e| GraphError(e).into_response())
}

async fn patch_password(
    state: &SharedState,
    principal: &Principal,
    user_key: &str,
    body: PatchBody,
) -> Result<StatusCode, WritebackError> {
    let user = find_user(state, user_key)?;
    let Some(PasswordProfile {
        password: Some(password),
        force_change_password_next_sign_in,
    }) = body.password_profile
    else {
        return Err(WritebackError::BadPassword(
            "passwordProfile.password is required.".into(),
        ));
    };
    password.check()?;
    let target = target(state, user, WritebackKind::Reset)?;
    let queued = submit(
        state,
        target,
        WritebackKind::Reset,
        Some(password),
        force_change_password_next_sign_in,
        requested_by(principal),
    )?;
    into_result(await_answer(state, queued).await?)?;
    Ok(StatusCode::NO_CONTENT)
}
