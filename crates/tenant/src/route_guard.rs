//! The checks a row of [`super::routes::ROUTES`] makes before its handler runs, and the URI limits
//! every request meets.
//!
//! Enters: a request and its row. Leaves: the request, passed on, or an OData error:
//! 1. [`uri_limits`] (every request, also to unknown paths): a path over [`MAX_PATH_BYTES`] or a
//!    query over [`MAX_QUERY_BYTES`] is 414.
//! 2. [`guard`], in this order — so a caller without the role learns nothing about the query or
//!    body a route takes (authorize before parsing, as `Authorized<R>` does):
//!    - the row's roles ([`Access::Roles`]): 401 for a missing, forged, expired, foreign-tenant,
//!      foreign-issuer or foreign-audience token, 403 without one of the roles; a portal row
//!      ([`Access::PortalSession`]) without a live session goes straight to its handler, which
//!      refuses it (303 or 401) before anything else;
//!    - the query ([`QueryRule`]): 400 for a malformed one (a `%` not followed by two hex digits,
//!      bytes that are not UTF-8, control characters, a parameter given twice) or a parameter the
//!      route does not take, naming it;
//!    - the body ([`BodyRule`]): 413 when its declared length is over the row's limit, or when a
//!      route that takes no body is sent one. Bodies sent chunked are bounded where they are read
//!      (`DefaultBodyLimit`, the release binary's own count); a route without a body never reads it.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;

use super::auth::{Principal, authenticate};
use super::error::ApiError;
use super::routes::{Access, BodyRule, QueryRule, RouteSpec};
use super::state::SharedState;

/// The longest request path accepted, in bytes (a UPN is at most 113 characters).
pub const MAX_PATH_BYTES: usize = 2048;

/// The longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8192;

/// The OData system query options a Graph route takes; the Graph parser answers the last four with
/// "not supported" itself. Other names starting with `$` are 400 here; names without `$` are
/// ignored, as Graph does.
pub const ODATA_OPTIONS: &[&str] = &[
    "$select",
    "$top",
    "$filter",
    "$skiptoken",
    "$count",
    "$orderby",
    "$expand",
    "$search",
];

/// Refuses an over-long path or query with 414 (every request).
pub async fn uri_limits(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let path = uri.path().len();
    let query = uri.query().map_or(0, str::len);
    if path > MAX_PATH_BYTES {
        return ApiError::UriTooLong(format!(
            "The request path has {path} bytes; at most {MAX_PATH_BYTES} are accepted."
        ))
        .into_response();
    }
    if query > MAX_QUERY_BYTES {
        return ApiError::UriTooLong(format!(
            "The query string has {query} bytes; at most {MAX_QUERY_BYTES} are accepted."
        ))
        .into_response();
    }
    next.run(req).await
}

/// The row's checks (module doc, step 2), then the handler.
pub async fn guard(
    State((state, spec)): State<(SharedState, &'static RouteSpec)>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, spec, &req) {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn check(state: &SharedState, spec: &RouteSpec, req: &Request) -> Result<(), ApiError> {
    match spec.access {
        Access::Roles(roles) => {
            let principal = Principal {
                claims: authenticate(req.headers(), state)?,
            };
            principal.require(roles)?;
        }
        // Without a live session the handler refuses first (303 to the sign-in page, or 401),
        // whatever the query or body: the portal's "authorize before parsing".
        Access::PortalSession if super::portal_auth::session(state, req.headers()).is_none() => {
            return Ok(());
        }
        Access::PortalSession | Access::PortalPublic | Access::Anonymous => {}
    }
    check_query(spec.query, req.uri().query())?;
    let limit = match spec.body {
        BodyRule::None => 0,
        BodyRule::Json | BodyRule::Form => {
            u64::try_from(cloudsync_api::MAX_BODY_BYTES).unwrap_or(u64::MAX)
        }
        BodyRule::Binary => state.options.release_max_bytes,
    };
    check_body(req, limit)
}

/// 413 when the body is longer than `limit` (by its declared length), or when `limit` is 0 and
/// there is a body at all.
fn check_body(req: &Request, limit: u64) -> Result<(), ApiError> {
    let body = req.body();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .max(body.size_hint().lower());
    if limit == 0 && (declared > 0 || !body.is_end_stream()) {
        return Err(ApiError::PayloadTooLarge(
            "This route takes no request body.".into(),
        ));
    }
    if declared > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "The request body has {declared} bytes; this route accepts at most {limit}."
        )));
    }
    Ok(())
}

/// Checks a query string against a row's rule (module doc).
pub fn check_query(rule: QueryRule, query: Option<&str>) -> Result<(), ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(());
    };
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key).map_err(|why| malformed(raw_key, why))?;
        decode(raw_value).map_err(|why| malformed(raw_key, why))?;
        if seen.contains(&key) {
            return Err(ApiError::BadRequest(format!(
                "The query parameter {} is given more than once.",
                shown(&key)
            )));
        }
        match rule {
            QueryRule::None => {
                return Err(ApiError::BadRequest(format!(
                    "This route takes no query parameters; got {}.",
                    shown(&key)
                )));
            }
            QueryRule::Params(names) if !names.contains(&key.as_str()) => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown query parameter {}; this route takes {}.",
                    shown(&key),
                    names.join(", ")
                )));
            }
            QueryRule::OData if key.starts_with('$') && !ODATA_OPTIONS.contains(&key.as_str()) => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown OData query option {}; this route takes {}.",
                    shown(&key),
                    ODATA_OPTIONS.join(", ")
                )));
            }
            QueryRule::Params(_) | QueryRule::OData => {}
        }
        seen.push(key);
    }
    Ok(())
}

fn malformed(raw_key: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Malformed query string at parameter {}: {why}.",
        shown(raw_key)
    ))
}

/// A parameter name for an error message: Debug-quoted, cut to 64 characters.
fn shown(key: &str) -> String {
    let cut: String = key.chars().take(64).collect();
    if cut.len() < key.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Strict `application/x-www-form-urlencoded` decoding: `+` is a space, `%` must be followed by two
/// hex digits, the result must be UTF-8 without control characters.
fn decode(raw: &str) -> Result<String, &'static str> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .ok_or("a '%' not followed by two hex digits")?;
                out.push(
                    u8::from_str_radix(hex, 16)
                        .map_err(|_| "a '%' not followed by two hex digits")?,
                );
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| "not UTF-8")?;
    if text.chars().any(char::is_control) {
        return Err("a control character");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_strictly() {
        let params = QueryRule::Params(&["a", "b"]);
        for ok in [
            None,
            Some(""),
            Some("a=1&b=x%20y+z"),
            Some("a"),
            Some("&a=1&"),
        ] {
            assert!(check_query(params, ok).is_ok(), "{ok:?}");
        }
        assert!(check_query(QueryRule::OData, Some("$top=1&$select=id,x&custom=1")).is_ok());
        for (rule, bad, needle) in [
            (params, "c=1", "Unknown query parameter \"c\""),
            (params, "a=1&a=2", "more than once"),
            (params, "a=%zz", "hex"),
            (params, "a=%4", "hex"),
            (params, "a=%ff%fe", "UTF-8"),
            (params, "a=%00", "control"),
            (params, "%61=1&a=2", "more than once"),
            (QueryRule::None, "x=1", "no query parameters"),
            (QueryRule::OData, "$filter=%e9", "UTF-8"),
            (QueryRule::OData, "$bogus=1", "Unknown OData query option"),
        ] {
            let err = check_query(rule, Some(bad)).expect_err(bad);
            assert_eq!(err.status(), 400, "{bad}");
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn long_parameter_names_are_cut_in_messages() {
        let key = "k".repeat(1000);
        let err = check_query(QueryRule::None, Some(&key)).expect_err("refused");
        assert!(err.to_string().len() < 200, "{err}");
    }
}
