//! The release channel: which agent version is the newest the tenant offers.
//!
//! `GET /api/v1/releases/latest` (an agent or an admin) answers a [`Release`]: the newest version an
//! admin published with `PUT /api/v1/releases/latest` ([`PublishRequest`], a version only) or
//! `PUT /api/v1/releases/{version}` (the binary itself, see below), both Global Administrators; or,
//! with nothing published, the tenant's own build version. Versions are Semantic Versioning 2.0
//! strings ([`parse_version`]); "newer" is SemVer precedence ([`is_newer`]).
//!
//! # A release with its binary
//! `PUT /api/v1/releases/{version}` carries the binary as the raw body (`application/octet-stream`,
//! at most the tenant's `--release-max-mib`, 200 MiB by default) and the signature in the header
//! [`SIGNATURE_HEADER`]: standard base64 of a 64-byte Ed25519 signature over
//! [`signed_statement`]`(version, size, sha256)` — not over the bare bytes, so that the signature
//! also vouches for the version: a validly signed old binary cannot be re-published as a newer
//! version (a downgrade) and pass the agent's check. The channel then answers the binary's
//! `sha256`, `size`, `signature` and `downloadUrl` (`/api/v1/releases/{version}/binary`).
//!
//! # Upgrade slots
//! `POST /api/v1/releases/{version}/upgrade-slot` (an agent) asks for the tenant's one upgrade slot:
//! at most one agent of a tenant restarts for an upgrade at a time ([`UpgradeSlot`]).

use serde::{Deserialize, Serialize};

/// A parsed version and the parser's error, re-exported so users need no `semver` of their own.
pub use semver::{Error as VersionError, Version};

/// The tenant's answer on its release channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The newest agent version, e.g. `0.2.0`.
    pub version: String,
    /// Where it comes from.
    pub source: ReleaseSource,
    /// The binary, when the version was published with one (absent: a version-only publication,
    /// or the tenant's own build).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub binary: Option<ReleaseBinary>,
}

/// A published binary as the channel describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseBinary {
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
    /// Its length in bytes.
    pub size: u64,
    /// Standard base64 of the Ed25519 signature over [`signed_statement`].
    pub signature: String,
    /// Where agents download it: `/api/v1/releases/{version}/binary`, relative to the tenant.
    pub download_url: String,
}

/// The header of `PUT /api/v1/releases/{version}` carrying the signature (standard base64).
pub const SIGNATURE_HEADER: &str = "x-cloudsync-release-signature";

/// The largest binary a tenant accepts by default (its `--release-max-mib`): 200 MiB; a debug
/// build of the agent is about 80 MiB, a release build far less.
pub const DEFAULT_RELEASE_MAX_BYTES: u64 = 200 * 1024 * 1024;

/// The bytes an Ed25519 release signature covers: a fixed text naming the format, the version (as
/// SemVer prints it), the size and the lower-case hex SHA-256 of the binary, one `key=value` a line.
/// Binding the version stops a signed old binary from being offered as a newer one.
pub fn signed_statement(version: &Version, size: u64, sha256_hex: &str) -> Vec<u8> {
    format!(
        "cloudsync-release-signature-v1\nversion={version}\nsize={size}\nsha256={}\n",
        sha256_hex.to_ascii_lowercase()
    )
    .into_bytes()
}

/// `POST /api/v1/releases/{version}/upgrade-slot`: whether this agent may restart for the upgrade
/// now. The tenant holds one slot: granted to one agent at a time, for `seconds`; released when
/// that agent heartbeats the release's binary (its SHA-256), when it gives the slot back
/// (`DELETE` on the same path, e.g. after a rollback), or when the time runs out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeSlot {
    /// Granted to the asking agent (again, if it already held it).
    pub granted: bool,
    /// Granted: how long the slot is held. Refused: when to ask again (the holder's remaining time,
    /// at most 30 s).
    pub seconds: u64,
}

/// Where [`Release::version`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReleaseSource {
    /// An admin published it.
    Published,
    /// Nothing is published: the tenant's own build version.
    TenantBuild,
}

/// The body of `PUT /api/v1/releases/latest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    /// The version to publish (SemVer).
    pub version: String,
}

/// A version string as SemVer, or the parser's reason.
pub fn parse_version(text: &str) -> Result<Version, VersionError> {
    semver::Version::parse(text.trim())
}

/// Whether `candidate` is newer than `current` by SemVer precedence (build metadata ignored).
pub fn is_newer(candidate: &Version, current: &Version) -> bool {
    candidate.cmp_precedence(current) == std::cmp::Ordering::Greater
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_semver_not_text() {
        let v = |s| parse_version(s).unwrap();
        assert!(is_newer(&v("0.10.0"), &v("0.9.3")));
        assert!(!is_newer(&v("0.1.0"), &v("0.1.0")));
        assert!(is_newer(&v("1.0.0"), &v("1.0.0-rc.1")));
        assert!(!is_newer(&v("1.0.0+b2"), &v("1.0.0+b1")));
        assert!(parse_version("latest").is_err());
    }

    #[test]
    fn the_statement_binds_version_size_and_digest() {
        let v = parse_version("1.2.3").unwrap();
        assert_eq!(
            String::from_utf8(signed_statement(&v, 42, "ABCD")).unwrap(),
            "cloudsync-release-signature-v1\nversion=1.2.3\nsize=42\nsha256=abcd\n"
        );
    }

    #[test]
    fn a_release_without_binary_prints_as_before() {
        let r = Release {
            version: "0.1.0".into(),
            source: ReleaseSource::TenantBuild,
            binary: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"version":"0.1.0","source":"tenantBuild"}"#
        );
    }
}
