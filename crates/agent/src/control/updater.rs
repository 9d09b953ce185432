//! The updater's check. Enters: the agent's tenant client (registration credentials) and this
//! build's version. Leaves: the tenant's release channel answer (`GET /api/v1/releases/latest`)
//! compared with this build: [`UpdateCheck::UpToDate`] or [`UpdateCheck::Available`].
//!
//! What the updater does not do yet: download the new version, check its signature and swap the
//! binary. That is the HA/updates issue's work; until then an available version is reported (and
//! logged) for an admin to install. `cloudsync updater run` is the command; docs/updater.md the guide.

use cloudsync_api::release::{Release, VersionError, is_newer, parse_version};

use super::tenant_client::{TenantClient, TenantError};

/// The exit code of `cloudsync updater run` when the channel offers a newer version (0: up to
/// date; 1: the check failed).
pub const EXIT_UPDATE_AVAILABLE: u8 = 2;

/// This build's version, as `cloudsync --version`, heartbeats and registration report it.
pub const THIS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The release channel's answer compared with this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateCheck {
    /// This build is the channel's version, or newer.
    UpToDate {
        /// This build.
        current: String,
        /// What the channel offers.
        latest: Release,
    },
    /// The channel offers a newer version.
    Available {
        /// This build.
        current: String,
        /// What the channel offers.
        latest: Release,
    },
}

/// Why the check could not decide.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The tenant could not be asked, or refused.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The tenant answered a version that is not SemVer.
    #[error(
        "the tenant's release channel answered version {version:?}, which is not a semantic version: {source}"
    )]
    BadVersion {
        /// The answer.
        version: String,
        /// The parser's reason.
        source: VersionError,
    },
}

/// Asks the tenant's release channel for the newest version.
pub async fn latest_release(client: &TenantClient) -> Result<Release, TenantError> {
    let url = client.url("/api/v1/releases/latest");
    client
        .agent_json(&url, |token| client.http().get(&url).bearer_auth(token))
        .await
}

/// Compares `latest` with `current` (both SemVer).
pub fn compare(current: &str, latest: Release) -> Result<UpdateCheck, UpdateError> {
    let bad = |version: &str, source| UpdateError::BadVersion {
        version: version.to_string(),
        source,
    };
    let mine = parse_version(current).map_err(|e| bad(current, e))?;
    let theirs = parse_version(&latest.version).map_err(|e| bad(&latest.version, e))?;
    let current = current.to_string();
    Ok(if is_newer(&theirs, &mine) {
        UpdateCheck::Available { current, latest }
    } else {
        UpdateCheck::UpToDate { current, latest }
    })
}

/// One check: the channel asked, the answer compared with this build.
pub async fn check(client: &TenantClient) -> Result<UpdateCheck, UpdateError> {
    compare(THIS_VERSION, latest_release(client).await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cloudsync_api::release::ReleaseSource;

    fn rel(v: &str) -> Release {
        Release {
            version: v.into(),
            source: ReleaseSource::Published,
        }
    }

    #[test]
    fn newer_is_available_equal_or_older_is_up_to_date() {
        assert!(matches!(
            compare("0.9.0", rel("0.10.0")).unwrap(),
            UpdateCheck::Available { .. }
        ));
        assert!(matches!(
            compare("0.1.0", rel("0.1.0")).unwrap(),
            UpdateCheck::UpToDate { .. }
        ));
        assert!(matches!(
            compare("0.2.0", rel("0.1.9")).unwrap(),
            UpdateCheck::UpToDate { .. }
        ));
        assert!(matches!(
            compare("0.1.0", rel("soon")),
            Err(UpdateError::BadVersion { .. })
        ));
    }
}
