//! The release channel. Enters: `GET /api/v1/releases/latest` from an agent or an admin, and
//! `PUT /api/v1/releases/latest` from a Global Administrator publishing a version. Leaves: the newest
//! published version ([`cloudsync_api::release::Release`]), or — with nothing published — this
//! tenant's own build version; the published versions in the `meta` tree under
//! [`PUBLISHED_KEY`] (a JSON array of SemVer strings).
//!
//! The channel only names a version: `cloudsync updater run` compares it with its own and reports;
//! downloading, checking the signature of and swapping in a new binary is a later issue's work.

use axum::Json;
use axum::extract::State;

use cloudsync_api::release::{PublishRequest, Release, ReleaseSource, is_newer, parse_version};

use super::authorize::{AdminsOrAgents, Authorized, GlobalAdmins};
use super::error::{ApiError, ApiJson};
use super::state::SharedState;
use super::store::{StoreError, get_json, put_json};

/// The `meta` key holding the published versions.
pub const PUBLISHED_KEY: &[u8] = b"release_published";

/// The tenant's own build version, answered while nothing is published.
pub const TENANT_VERSION: &str = env!("CARGO_PKG_VERSION");

fn published(state: &SharedState) -> Result<Vec<String>, StoreError> {
    Ok(get_json(&state.store.meta, "meta", PUBLISHED_KEY)?.unwrap_or_default())
}

/// The newest of `versions` by SemVer precedence (entries that do not parse are skipped: the PUT
/// route stores only parsed ones).
fn newest(versions: &[String]) -> Option<String> {
    versions
        .iter()
        .filter_map(|v| parse_version(v).ok())
        .reduce(|a, b| if is_newer(&b, &a) { b } else { a })
        .map(|v| v.to_string())
}

fn latest(state: &SharedState) -> Result<Release, StoreError> {
    Ok(match newest(&published(state)?) {
        Some(version) => Release {
            version,
            source: ReleaseSource::Published,
        },
        None => Release {
            version: TENANT_VERSION.to_string(),
            source: ReleaseSource::TenantBuild,
        },
    })
}

/// `GET /api/v1/releases/latest` (agents and admins).
pub async fn get_latest(
    State(state): State<SharedState>,
    _: Authorized<AdminsOrAgents>,
) -> Result<Json<Release>, ApiError> {
    Ok(Json(latest(&state)?))
}

/// `PUT /api/v1/releases/latest` (Global Administrators): publishes a version; the channel answers
/// the newest published one, so publishing an older version does not roll agents back.
pub async fn publish(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<GlobalAdmins>,
    ApiJson(req): ApiJson<PublishRequest>,
) -> Result<Json<Release>, ApiError> {
    let version = parse_version(&req.version).map_err(|e| {
        ApiError::BadRequest(format!(
            "version '{}' is not a semantic version (e.g. 1.4.2): {e}.",
            req.version
        ))
    })?;
    let _guard = state.apply_lock.lock().await;
    let mut all = published(&state)?;
    let text = version.to_string();
    if !all.contains(&text) {
        all.push(text);
        put_json(&state.store.meta, PUBLISHED_KEY, &all)?;
        state.store.flush().await?;
    }
    tracing::info!(version = %version, published_by = %principal.id(), "Agent version published.");
    Ok(Json(latest(&state)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_is_by_precedence() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
        assert_eq!(newest(&v(&[])), None);
        assert_eq!(
            newest(&v(&["0.9.0", "0.10.0", "0.2.0"])).as_deref(),
            Some("0.10.0")
        );
        assert_eq!(
            newest(&v(&["1.0.0-rc.1", "1.0.0"])).as_deref(),
            Some("1.0.0")
        );
    }
}
