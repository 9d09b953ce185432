//! The release channel. Enters: `GET /api/v1/releases/latest` from an agent or an admin, and
//! `PUT /api/v1/releases/latest` from a Global Administrator publishing a version. Leaves: the newest
//! published version ([`cloudsync_api::release::Release`]), or — with nothing published — this
//! tenant's own build version; the published versions in the `meta` tree under
//! [`PUBLISHED_KEY`] (a JSON array of SemVer strings).
//!
//! A version published with its binary ([`super::release_binary`]) is also in that list; its
//! binary's digest, size and signature are under [`BINARIES_KEY`], and the channel answers them with
//! the version. The upgrade slot that staggers agents' restarts is [`super::release_slot`].

use axum::Json;
use axum::extract::State;

use std::collections::BTreeMap;

use cloudsync_api::release::{
    PublishRequest, Release, ReleaseBinary, ReleaseSource, Version, is_newer, parse_version,
};
use serde::{Deserialize, Serialize};

use super::authorize::{AdminsOrAgents, Authorized, GlobalAdmins};
use super::error::{ApiError, ApiJson};
use super::state::SharedState;
use super::store::{StoreError, get_json, put_json};

/// The `meta` key holding the published versions.
pub const PUBLISHED_KEY: &[u8] = b"release_published";

/// The `meta` key holding the published binaries: a JSON object, version → [`StoredBinary`].
pub const BINARIES_KEY: &[u8] = b"release_binaries";

/// A published binary's description (the bytes are a file, [`super::release_binary`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredBinary {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
    /// Standard base64 of the Ed25519 signature.
    pub signature: String,
}

/// The published binaries by version.
pub fn binaries(state: &SharedState) -> Result<BTreeMap<String, StoredBinary>, StoreError> {
    Ok(get_json(&state.store.meta, "meta", BINARIES_KEY)?.unwrap_or_default())
}

/// A version from a path or body, or a 400 naming the expected form.
pub fn version_arg(text: &str) -> Result<Version, ApiError> {
    parse_version(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "version '{text}' is not a semantic version (e.g. 1.4.2): {e}."
        ))
    })
}

/// Adds `version` to the published list (the caller holds the apply lock).
pub fn add_published(state: &SharedState, version: &Version) -> Result<(), StoreError> {
    let mut all = published(state)?;
    let text = version.to_string();
    if !all.contains(&text) {
        all.push(text);
        put_json(&state.store.meta, PUBLISHED_KEY, &all)?;
    }
    Ok(())
}

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

/// What the channel answers now.
pub fn latest(state: &SharedState) -> Result<Release, StoreError> {
    Ok(match newest(&published(state)?) {
        Some(version) => Release {
            binary: binaries(state)?.remove(&version).map(|b| ReleaseBinary {
                download_url: format!("/api/v1/releases/{version}/binary"),
                sha256: b.sha256,
                size: b.size,
                signature: b.signature,
            }),
            version,
            source: ReleaseSource::Published,
        },
        None => Release {
            version: TENANT_VERSION.to_string(),
            source: ReleaseSource::TenantBuild,
            binary: None,
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
    let version = version_arg(&req.version)?;
    let _guard = state.apply_lock.lock().await;
    add_published(&state, &version)?;
    state.store.flush().await?;
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
