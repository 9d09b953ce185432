//! The release channel: which agent version is the newest the tenant offers.
//!
//! `GET /api/v1/releases/latest` (an agent or an admin) answers a [`Release`]: the newest version an
//! admin published with `PUT /api/v1/releases/latest` ([`PublishRequest`], Global Administrators),
//! or, with nothing published, the tenant's own build version. Versions are Semantic Versioning 2.0
//! strings ([`parse_version`]); "newer" is SemVer precedence ([`is_newer`]).

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
}
