//! The portal's sign-in, sign-out, security headers and routes.
//!
//! Enters: browser requests to `/` and `/portal/*`; the sign-in form's admin UPN and password.
//! Leaves: the sign-in page, a session cookie ([`super::session`]) for a Global or Hybrid Identity
//! Administrator, redirects, and on **every** portal response the headers below.
//!
//! - `GET /portal/signin` — the sign-in page; `POST /portal/signin` (`username`, `password`) checks
//!   the seeded admin's password under smart lockout ([`super::lockout`]: AADSTS50126 → 401,
//!   AADSTS50053 → 400, as the token endpoint answers), refuses other roles with 403 and on success
//!   sets the cookie and redirects (303) to `/`.
//! - `POST /portal/signout` (`csrf`) ends the session and clears the cookie.
//! - `GET /portal/portal.css` — the style sheet (no session needed; it holds no data).
//! - Every portal POST refuses a cross-origin `Origin` header (403), so a foreign page can neither
//!   post into a session nor sign a browser in to the attacker's session (login CSRF).
//!
//! Headers: `Content-Security-Policy: default-src 'none'; style-src 'self'; form-action 'self';
//! frame-ancestors 'none'; base-uri 'none'` (no script at all), `X-Frame-Options: DENY`,
//! `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.

use std::time::Instant;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::ADMINS;
use super::error::ApiError;
use super::lockout::{ClientAddr, LOCKED_MESSAGE, Refusal};
use super::portal::esc;
use super::session::Session;
use super::state::SharedState;

/// The portal's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("portal.css");

/// Adds the portal's security headers (module doc) to a response of a portal route
/// ([`super::routes`] puts it on every portal row).
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    response
}

/// `GET /portal/portal.css`.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// The session a portal request acts for: `None` without a live session cookie.
pub fn session(state: &SharedState, headers: &HeaderMap) -> Option<Session> {
    state.sessions.get(headers, Instant::now())
}

/// Refuses a cross-origin POST. A browser's `Sec-Fetch-Site` must be `same-origin`; without it,
/// an `Origin` header must name this host (the `Host` header, or the HTTP/2 `:authority`). With
/// `Referrer-Policy: no-referrer` browsers send `Origin: null` even on same-origin posts, which is
/// why `Sec-Fetch-Site` (sent by current Chromium, Firefox and Safari) decides first. Clients
/// sending neither header (curl, tests) pass; the CSRF token still guards them.
pub fn same_origin(state: &SharedState, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    let refused =
        || ApiError::Forbidden("Cross-origin form posts to the portal are refused.".into());
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes() == b"same-origin" {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let expected = host.map(|h| format!("{}://{h}", state.options.scheme));
    if origin.to_str().ok() == expected.as_deref() && expected.is_some() {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The session of a portal POST: 403 for a cross-origin post, 401 without a session.
pub fn require_session(
    state: &SharedState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Session, ApiError> {
    same_origin(state, headers, uri)?;
    session(state, headers).ok_or_else(|| {
        ApiError::Unauthorized("Sign in to the portal first (/portal/signin).".into())
    })
}

/// 403 unless `csrf` (the form's field) is the session's token.
pub fn check_csrf(session: &Session, csrf: Option<&String>) -> Result<(), ApiError> {
    match csrf {
        Some(token) if session.csrf_matches(token) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "The form's CSRF token is missing or wrong; reload the portal and try again.".into(),
        )),
    }
}

fn page(status: StatusCode, message: Option<&str>) -> Response {
    let error = message
        .map(|m| format!("<p class=\"error\" id=\"signin-error\">{}</p>", esc(m)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in — cloudsync local tenant</title>\
         <link rel=\"stylesheet\" href=\"/portal/portal.css\"></head><body>\
         <header><h1>Cloud sync admin center <small>(cloudsync local tenant, an emulator)</small></h1></header>\
         <section id=\"signin\"><h2>Sign in</h2><p>A Global Administrator or Hybrid Identity Administrator of the tenant.</p>{error}\
         <form method=\"post\" action=\"/portal/signin\">\
         <label>User <input name=\"username\" autocomplete=\"username\" required></label> \
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label> \
         <button type=\"submit\">Sign in</button></form></section></body></html>"
    );
    (status, Html(html)).into_response()
}

/// `GET /portal/signin`.
pub async fn signin_page() -> Response {
    page(StatusCode::OK, None)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `POST /portal/signin`.
pub async fn signin(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    same_origin(&state, &headers, &uri)?;
    let form = match form {
        Ok(Form(form)) => form,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::PayloadTooLarge("The form is too large.".into()));
        }
        Err(_) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                Some("Enter a user and a password."),
            ));
        }
    };
    // PBKDF2 is CPU work: keep it off the async workers.
    let checked = {
        let state = state.clone();
        let now = Instant::now();
        tokio::task::spawn_blocking(move || {
            let user = form.username.clone();
            state.lockout.guard("portal", &user, addr, now, || {
                state
                    .identity
                    .user(&form.username)
                    .filter(|u| u.check_password(&form.password))
                    .cloned()
                    .ok_or(())
            })
        })
        .await
        .map_err(|_| ApiError::ServiceUnavailable)?
    };
    let user = match checked {
        Ok(user) => user,
        Err(Refusal::Locked(_)) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                Some(&format!("AADSTS50053: {LOCKED_MESSAGE}")),
            ));
        }
        Err(Refusal::Failed(())) => {
            return Ok(page(
                StatusCode::UNAUTHORIZED,
                Some(
                    "AADSTS50126: Error validating credentials due to invalid username or password.",
                ),
            ));
        }
    };
    if !user.roles.iter().any(|r| ADMINS.contains(r)) {
        tracing::warn!(upn = %user.user_principal_name, source = %addr, "Portal sign-in refused: not an administrator.");
        return Ok(page(
            StatusCode::FORBIDDEN,
            Some(
                "The portal needs the Global Administrator or Hybrid Identity Administrator role.",
            ),
        ));
    }
    // A sign-in never reuses a session the browser already holds (no session fixation).
    let _ = state.sessions.end(&headers);
    let (_, cookie) = state.sessions.create(
        user.id,
        &user.user_principal_name,
        user.roles.clone(),
        Instant::now(),
    );
    tracing::info!(upn = %user.user_principal_name, source = %addr, "Portal sign-in.");
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/"),
    )
        .into_response())
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    csrf: Option<String>,
}

/// `POST /portal/signout`.
pub async fn signout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<SignOutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let session = require_session(&state, &headers, &uri)?;
    check_csrf(&session, form.ok().and_then(|Form(f)| f.csrf).as_ref())?;
    let cookie = state.sessions.end(&headers);
    tracing::info!(upn = %session.upn, "Portal sign-out.");
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/portal/signin"),
    )
        .into_response())
}
