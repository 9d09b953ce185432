//! The download and its checks. Enters: the channel's [`ReleaseBinary`], the pinned key, the
//! agent's client. Leaves: `<binary>.new` holding exactly the signed bytes (fsynced, the running
//! binary's mode), or a [`Refusal`] with nothing left behind.
//!
//! Order: the signature over the statement (version, size, digest) is checked **before** the
//! download — a bad signature costs nothing; then the bytes are streamed to `<binary>.new` with
//! the size bound enforced as they arrive (more bytes than announced stops the download), and the
//! size and SHA-256 compared at the end. The signature covers the digest, so matching bytes are
//! the signed bytes.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::Digest;

use cloudsync_api::release::{ReleaseBinary, Version, signed_statement};

use super::Refusal;
use crate::control::tenant_client::{TenantClient, TenantError};

/// Checks `binary.signature` against `key` for `version`.
pub fn check_signature(
    key: &VerifyingKey,
    version: &Version,
    binary: &ReleaseBinary,
) -> Result<(), Refusal> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(binary.signature.trim())
        .map_err(|_| Refusal::BadSignature("the signature is not base64".into()))?;
    let signature = Signature::from_slice(&bytes)
        .map_err(|_| Refusal::BadSignature(format!("{} bytes, not 64", bytes.len())))?;
    key.verify_strict(
        &signed_statement(version, binary.size, &binary.sha256),
        &signature,
    )
    .map_err(|_| {
        Refusal::BadSignature("it does not verify with the public key pinned at install".into())
    })
}

/// Why the download failed without being a refusal (the tenant or the disk).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The tenant refused or could not be reached.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// Writing `<binary>.new` failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Streams the binary to `new` (created with `mode`), checking size and digest.
/// `Ok(Err(refusal))`: the bytes are not the signed ones (the file is removed).
pub async fn download(
    client: &TenantClient,
    binary: &ReleaseBinary,
    new: &Path,
    mode: u32,
) -> Result<Result<(), Refusal>, FetchError> {
    let result = download_inner(client, binary, new, mode).await;
    if !matches!(result, Ok(Ok(()))) {
        let _ = std::fs::remove_file(new);
    }
    result
}

async fn download_inner(
    client: &TenantClient,
    binary: &ReleaseBinary,
    new: &Path,
    mode: u32,
) -> Result<Result<(), Refusal>, FetchError> {
    let io = |source| FetchError::Io {
        path: new.to_owned(),
        source,
    };
    let url = client.url(&binary.download_url);
    let mut response = client
        .send_as_agent(&url, |token| client.http().get(&url).bearer_auth(token))
        .await?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(new)
        .map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // A connection cut mid-body is a truncated download: refused like one.
            Err(e) => {
                return Ok(Err(Refusal::Truncated {
                    expected: binary.size,
                    got: size,
                    why: e.to_string(),
                }));
            }
        };
        size += chunk.len() as u64;
        if size > binary.size {
            return Ok(Err(Refusal::Corrupt(format!(
                "the download is longer than the announced {} bytes",
                binary.size
            ))));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io)?;
    }
    if size != binary.size {
        return Ok(Err(Refusal::Truncated {
            expected: binary.size,
            got: size,
            why: "the body ended early".into(),
        }));
    }
    let digest = hex::encode(hasher.finalize());
    if !digest.eq_ignore_ascii_case(&binary.sha256) {
        return Ok(Err(Refusal::Corrupt(format!(
            "its SHA-256 is {digest}, the release's is {}",
            binary.sha256
        ))));
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(Ok(()))
}
