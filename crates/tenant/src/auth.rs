//! Identity endpoints and request authentication.
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: `client_credentials` for agents (client id + secret from
//!   registration) and `password` for seeded users (the installer's admin sign-in). Errors use
//!   Microsoft's OAuth shape with AADSTS codes.
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`.
//! - [`Principal`]: the extractor every protected route uses; it answers 401 for a missing, malformed,
//!   forged or expired token, or one of another issuer or audience, and [`Principal::require`]
//!   answers 403 naming the roles that are needed. [`super::authorize::Authorized`] does both as an
//!   extractor, so a route taking it refuses a caller without the role before its body is read.
//!
//! Tokens are issued only for the resources of [`super::token::AUDIENCES`] (any other scope is
//! `invalid_resource`, AADSTS500011), and the password grant only to the installer's public client
//! id [`INSTALLER_CLIENT_ID`] (any other is `unauthorized_client`, AADSTS700016).

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use uuid::Uuid;

use cloudsync_api::auth::{INSTALLER_CLIENT_ID, OAuthError, Role, TokenRequest, TokenResponse};

use super::error::ApiError;
use super::lockout::{ClientAddr, LOCKED_MESSAGE, Refusal};
use super::orgid::constant_time_eq;
use super::state::{SharedState, now_unix};
use super::store::{AgentRecord, get_json, uuid_value};
use super::token::Claims;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's claims.
    pub claims: Claims,
}

impl Principal {
    /// Succeeds when the caller holds one of `roles`, else 403 with a message naming them.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.claims.roles.iter().any(|r| roles.contains(r)) {
            return Ok(());
        }
        let needed: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
        Err(ApiError::Forbidden(format!(
            "Insufficient privileges to complete the operation: this call needs one of the roles [{}]; the caller has [{}].",
            needed.join(", "),
            self.claims
                .roles
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// The caller's object id.
    pub fn id(&self) -> Uuid {
        self.claims.sub
    }
}

/// Roles allowed to administer hybrid identity.
pub const ADMINS: &[Role] = &[Role::GlobalAdministrator, Role::HybridIdentityAdministrator];

impl FromRequestParts<SharedState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state).map(|claims| Principal { claims })
    }
}

/// Verifies the bearer token in `headers`.
pub fn authenticate(headers: &HeaderMap, state: &SharedState) -> Result<Claims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("Access token is empty.".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("Expected an Authorization: Bearer header.".into())
        })?;
    state
        .signer
        .verify(token.trim(), now_unix())
        .map_err(|e| ApiError::Unauthorized(format!("Access token validation failure: {e}.")))
}

/// An OAuth2 failure, rendered in Microsoft's shape.
#[derive(Debug)]
struct OAuthFailure {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(OAuthError {
                error: self.error.into(),
                error_description: format!("AADSTS{}: {}", self.code, self.description),
                error_codes: vec![self.code],
            }),
        )
            .into_response()
    }
}

fn oauth_error(
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: &str,
) -> OAuthFailure {
    OAuthFailure {
        status,
        error,
        code,
        description: description.to_owned(),
    }
}

/// The audience a scope asks for: the part before `/.default` (a trailing `/` dropped, as Entra
/// reads `https://graph.microsoft.com//.default`).
fn audience(scope: Option<&str>) -> Result<String, String> {
    let scope = scope.unwrap_or("https://graph.microsoft.com/.default");
    scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
        .map(|r| r.strip_suffix('/').unwrap_or(r).to_owned())
        .ok_or_else(|| {
            format!("The provided value for scope {scope} is not valid: use <resource>/.default.")
        })
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    ClientAddr(addr): ClientAddr,
    body: Result<axum::Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !state.identity.matches(&tenant) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        )
        .into_response();
    }
    let req = match body {
        Ok(axum::Form(req)) => req,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::PayloadTooLarge("The request body is too large.".into())
                .into_response();
        }
        Err(_) => {
            return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
                "The request body must be application/x-www-form-urlencoded and contain 'grant_type'.",
            )
            .into_response();
        }
    };
    let aud = match audience(req.scope.as_deref()) {
        Ok(aud) => aud,
        Err(msg) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", 70011, &msg)
                .into_response();
        }
    };
    if !super::token::AUDIENCES.contains(&aud.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {aud} was not found in the tenant named {}. This tenant issues tokens for {} only.",
                state.identity.tenant_id,
                super::token::AUDIENCES.join(" and ")
            ),
        )
        .into_response();
    }
    let subject = match req.grant_type.as_str() {
        "client_credentials" => client_credentials(&state, &req),
        "password" => password_grant(&state, &req, addr),
        other => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        )),
    };
    let (sub, roles, upn, appid) = match subject {
        Ok(s) => s,
        Err(failure) => return failure.into_response(),
    };
    let now = now_unix();
    let lifetime = state.options.token_lifetime_secs;
    let claims = Claims {
        iss: state.signer.issuer().to_owned(),
        aud,
        tid: state.identity.tenant_id,
        sub,
        oid: sub,
        roles,
        iat: now,
        nbf: now,
        exp: now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        upn,
        appid,
    };
    Json(TokenResponse {
        token_type: "Bearer".into(),
        expires_in: lifetime,
        access_token: state.signer.sign(&claims),
        scope: req.scope.unwrap_or_default(),
    })
    .into_response()
}

type Subject = (Uuid, Vec<Role>, Option<String>, Option<String>);

fn client_credentials(state: &SharedState, req: &TokenRequest) -> Result<Subject, OAuthFailure> {
    let invalid =
        |code, msg: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", code, msg);
    let agent_id = match state.store.clients.get(req.client_id.as_bytes()) {
        Ok(Some(bytes)) => {
            uuid_value("clients", &bytes).map_err(|_| invalid(700016, "Corrupt client record."))?
        }
        Ok(None) => {
            return Err(invalid(
                700016,
                &format!(
                    "Application with identifier '{}' was not found in the directory.",
                    req.client_id
                ),
            ));
        }
        Err(_) => return Err(invalid(90033, "The directory is temporarily unavailable.")),
    };
    let agent: AgentRecord = match get_json(&state.store.agents, "agents", agent_id.as_bytes()) {
        Ok(Some(a)) => a,
        _ => {
            return Err(invalid(
                700016,
                "The application's registration is missing.",
            ));
        }
    };
    let secret = req.client_secret.as_deref().unwrap_or_default();
    let digest = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    if !constant_time_eq(digest.as_bytes(), agent.secret_sha256.as_bytes()) {
        return Err(invalid(7000215, "Invalid client secret provided."));
    }
    Ok((agent.id, vec![Role::Agent], None, Some(agent.client_id)))
}

/// The password grant: only the installer's public client, then smart lockout — a locked account
/// (from this address) gets `invalid_grant` AADSTS50053 without its password being checked.
fn password_grant(
    state: &SharedState,
    req: &TokenRequest,
    addr: std::net::IpAddr,
) -> Result<Subject, OAuthFailure> {
    if req.client_id != INSTALLER_CLIENT_ID {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{}'. The password grant is open only to the public client '{INSTALLER_CLIENT_ID}'.",
                req.client_id, state.identity.tenant_id
            ),
        ));
    }
    let username = req.username.as_deref().unwrap_or_default();
    let now = std::time::Instant::now();
    match state.lockout.guard("token", username, addr, now, || {
        check_password_grant(state, req)
    }) {
        Ok(subject) => Ok(subject),
        Err(Refusal::Failed(failure)) => Err(failure),
        Err(Refusal::Locked(_)) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50053,
            LOCKED_MESSAGE,
        )),
    }
}

fn check_password_grant(state: &SharedState, req: &TokenRequest) -> Result<Subject, OAuthFailure> {
    let username = req.username.as_deref().unwrap_or_default();
    let password = req.password.as_deref().unwrap_or_default();
    let bad = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50126,
            "Error validating credentials due to invalid username or password.",
        )
    };
    if let Some(user) = state.identity.user(username) {
        if !user.check_password(password) {
            return Err(bad());
        }
        let mut roles = user.roles.clone();
        if roles.is_empty() {
            roles.push(Role::User);
        }
        return Ok((user.id, roles, Some(user.user_principal_name.clone()), None));
    }
    // Synced users sign in with their synced password hash, as with password hash sync in the cloud.
    match super::signin::check_synced_password(state, username, password) {
        Ok(Some(object)) => Ok((
            object.id,
            vec![Role::User],
            object.upn().map(str::to_owned),
            None,
        )),
        _ => Err(bad()),
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn openid_configuration(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    if !state.identity.matches(&tenant) {
        return Err(ApiError::NotFound(format!("Tenant '{tenant}' not found.")));
    }
    let base = super::graph::base_url(&state, &headers, &uri);
    let tid = state.identity.tenant_id;
    let cloud = state.identity.environment.endpoints().cloud_instance_name;
    Ok(Json(serde_json::json!({
        "issuer": state.signer.issuer(),
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_types_supported": ["token"],
        "grant_types_supported": ["client_credentials", "password"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "subject_types_supported": ["pairwise"],
        "tenant_region_scope": "EMU",
        "cloud_instance_name": cloud,
        "cloud_environment": state.identity.environment.as_str(),
    }))
    .into_response())
}

/// `GET /{tenant}/discovery/v2.0/keys`: empty, because tokens are HS256 and opaque to clients; 404
/// for another tenant, as discovery answers.
pub async fn jwks(
    State(state): State<SharedState>,
    Path(tenant): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.identity.matches(&tenant) {
        return Err(ApiError::NotFound(format!("Tenant '{tenant}' not found.")));
    }
    Ok(Json(serde_json::json!({ "keys": [] })))
}
