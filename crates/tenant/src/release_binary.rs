//! Release binaries. Enters: `PUT /api/v1/releases/{version}` from a Global Administrator (the
//! binary as the raw body, the Ed25519 signature in [`SIGNATURE_HEADER`]) and
//! `GET /api/v1/releases/{version}/binary` from agents and admins. Leaves: the binary streamed to
//! `<state>/releases/<version>.bin` (0600, in a 0700 directory), its description under
//! [`super::release::BINARIES_KEY`], the version published; and the bytes streamed back.
//!
//! # On disk
//! `<state>/releases/<version>.bin`: the exact bytes received. Written as `<version>.part`,
//! fsynced, checked (size bound, digest), renamed, directory fsynced, and only then described in the
//! store and published — a crash leaves at most a `.part` file, overwritten by the next upload of
//! that version. A version's binary is immutable: the same bytes again are accepted (idempotent
//! retry), different bytes are a 409. The tenant does not verify the signature (it holds no key):
//! the agents do, against the key pinned at their install; it only checks that it is 64 bytes.
//! Binaries are not in sled because they are large (the bound is `--release-max-mib`, 200 MiB by
//! default: a debug build of the agent is ~80 MiB).

use std::path::{Path, PathBuf};
use std::pin::Pin;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http_body::Body as _;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use cloudsync_api::release::{Release, SIGNATURE_HEADER};

use super::authorize::{AdminsOrAgents, Authorized, GlobalAdmins};
use super::error::ApiError;
use super::release::{BINARIES_KEY, StoredBinary, add_published, binaries, latest, version_arg};
use super::state::SharedState;
use super::store::{StoreError, put_json};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |source| {
        ApiError::Store(StoreError::ReleaseFile {
            path: path.to_owned(),
            source,
        })
    }
}

fn release_dir(state: &SharedState) -> Result<&PathBuf, ApiError> {
    state.release_dir.as_ref().ok_or_else(|| {
        ApiError::Conflict("This tenant keeps no state directory, so it stores no binaries.".into())
    })
}

/// The signature header as 64 bytes, re-encoded canonically.
fn signature(headers: &HeaderMap) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::BadRequest(format!(
            "The {SIGNATURE_HEADER} header must hold the standard base64 of a 64-byte Ed25519 signature ({why}); make it with `cloudsync release sign`."
        ))
    };
    let text = headers
        .get(SIGNATURE_HEADER)
        .ok_or_else(|| bad("it is missing"))?
        .to_str()
        .map_err(|_| bad("it is not text"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| bad("it is not base64"))?;
    if bytes.len() != 64 {
        return Err(bad(&format!("it decodes to {} bytes", bytes.len())));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Streams `body` into `part` (created 0600), at most `max` bytes; returns (size, sha256 hex).
async fn receive(mut body: Body, part: &Path, max: u64) -> Result<(u64, String), ApiError> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(part)
        .await
        .map_err(io_err(part))?;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("The upload was cut off: {e}.")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(io_err(part))?;
    }
    file.sync_all().await.map_err(io_err(part))?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn too_large(max: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "A release binary may be at most {max} bytes (the tenant's --release-max-mib)."
    ))
}

/// `PUT /api/v1/releases/{version}` (Global Administrators): stores and publishes a binary.
pub async fn put_binary(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<GlobalAdmins>,
    UrlPath(version): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Release>, ApiError> {
    let version = version_arg(&version)?;
    let signature = signature(&headers)?;
    let max = state.options.release_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let dir = release_dir(&state)?.clone();
    cloudsync_private_fs::create_private_dir(&dir).map_err(io_err(&dir))?;
    let part = dir.join(format!("{version}.part"));
    let received = receive(body, &part, max).await;
    let (size, sha256) = match received {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    if size == 0 {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ApiError::BadRequest("The release binary is empty.".into()));
    }
    let _guard = state.apply_lock.lock().await;
    let mut all = binaries(&state)?;
    let key = version.to_string();
    if let Some(existing) = all.get(&key) {
        let _ = tokio::fs::remove_file(&part).await;
        if existing.sha256 != sha256 || existing.signature != signature {
            return Err(ApiError::Conflict(format!(
                "Version {version} is already published with another binary (sha256 {}); publish a new version.",
                existing.sha256
            )));
        }
        return Ok(Json(one(&state, &key)?));
    }
    let bin = dir.join(format!("{version}.bin"));
    tokio::fs::rename(&part, &bin).await.map_err(io_err(&bin))?;
    let dir_file = std::fs::File::open(&dir).map_err(io_err(&dir))?;
    dir_file.sync_all().map_err(io_err(&dir))?;
    all.insert(
        key.clone(),
        StoredBinary {
            sha256: sha256.clone(),
            size,
            signature,
        },
    );
    put_json(&state.store.meta, BINARIES_KEY, &all)?;
    add_published(&state, &version)?;
    state.store.flush().await?;
    tracing::info!(version = %version, size, sha256 = %sha256, published_by = %principal.id(), "Agent release published with its binary.");
    Ok(Json(one(&state, &key)?))
}

/// The channel's description of one published version (with its binary).
fn one(state: &SharedState, version: &str) -> Result<Release, ApiError> {
    let mut release = latest(state)?;
    if release.version != version {
        // An older version than the newest: describe it all the same.
        release.version = version.to_owned();
        release.binary =
            binaries(state)?
                .remove(version)
                .map(|b| cloudsync_api::release::ReleaseBinary {
                    download_url: format!("/api/v1/releases/{version}/binary"),
                    sha256: b.sha256,
                    size: b.size,
                    signature: b.signature,
                });
    }
    Ok(release)
}

/// `GET /api/v1/releases/{version}/binary` (agents and admins): the bytes, streamed.
pub async fn get_binary(
    State(state): State<SharedState>,
    _: Authorized<AdminsOrAgents>,
    UrlPath(version): UrlPath<String>,
) -> Result<Response, ApiError> {
    let version = version_arg(&version)?;
    let Some(described) = binaries(&state)?.remove(&version.to_string()) else {
        return Err(ApiError::NotFound(format!(
            "Version {version} has no published binary."
        )));
    };
    let path = release_dir(&state)?.join(format!("{version}.bin"));
    let file = tokio::fs::File::open(&path).await.map_err(io_err(&path))?;
    let stream = tokio_util::io::ReaderStream::new(file);
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(described.size));
    Ok(response)
}
