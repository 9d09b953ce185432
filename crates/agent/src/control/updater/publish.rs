//! Publishing a release (an admin's command, `cloudsync release publish`). Enters: a signed-in
//! Global Administrator's session, the version, the binary's bytes and the base64 signature.
//! Leaves: `PUT /api/v1/releases/{version}` with the bytes as the body and the signature in
//! [`SIGNATURE_HEADER`]; the channel's description of the release.

use cloudsync_api::release::{Release, SIGNATURE_HEADER, Version};

use crate::control::install::admin::AdminSession;
use crate::control::tenant_client::TenantError;

/// Uploads and publishes `bytes` as `version`.
pub async fn publish(
    session: &AdminSession,
    version: &Version,
    bytes: Vec<u8>,
    signature: &str,
) -> Result<Release, TenantError> {
    let url = session.client.url(&format!("/api/v1/releases/{version}"));
    let request = session
        .client
        .http()
        .put(&url)
        .bearer_auth(session.token.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(SIGNATURE_HEADER, signature.trim())
        .body(bytes);
    session.client.send_json(request, &url).await
}
