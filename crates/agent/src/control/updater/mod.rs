//! The updater. Enters: the agent's tenant client (registration credentials), this build's version
//! and `[updater]`. Leaves: the tenant's release channel answer compared with this build
//! ([`check`]), and — with a key pinned — the upgrade applied or refused ([`apply::run`]).
//!
//! - [`settings`] — `[updater]`: the pinned Ed25519 key, the restart command, deadlines.
//! - [`fetch`] — the signature check and the streamed, size- and digest-checked download.
//! - [`swap`] — the atomic swap (`.new` → binary, `.previous` kept) and the rollback.
//! - [`apply`] — one run: channel, refusals, upgrade slot, swap, restart, health, rollback.
//! - [`publish`] — an admin publishing a signed release (`cloudsync release publish`).
//!
//! `cloudsync updater run` is the command; docs/updater.md the guide (exit codes there and on the
//! `EXIT_*` constants).

use cloudsync_api::release::{Release, VersionError, is_newer, parse_version};

use super::tenant_client::{TenantClient, TenantError};

pub mod apply;
pub mod fetch;
pub mod publish;
pub mod settings;
pub mod swap;

/// Exit code: a newer version is available but not applied (no key pinned, or published without
/// a binary). 0 is "up to date" or "updated"; 1 an error.
pub const EXIT_UPDATE_AVAILABLE: u8 = 2;
/// Exit code: the offered release was refused (bad signature, truncated or corrupt download, an
/// older version); the installed binary is untouched.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code: the new binary did not report healthy in time and the previous one was put back.
pub const EXIT_ROLLED_BACK: u8 = 4;
/// Exit code: another agent holds the tenant's upgrade slot; the next run tries again.
pub const EXIT_DEFERRED: u8 = 5;

/// Why an offered release is refused (the installed binary is never changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The signature does not verify with the pinned key.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Fewer bytes arrived than the release announces.
    #[error("truncated download: {got} of {expected} bytes ({why})")]
    Truncated {
        /// Announced size.
        expected: u64,
        /// Received.
        got: u64,
        /// What ended it.
        why: String,
    },
    /// The bytes are not the signed ones.
    #[error("corrupt download: {0}")]
    Corrupt(String),
    /// The channel offers a version older than the running one (never downgrade).
    #[error("version {offered} is older than the running {running}; the updater never downgrades")]
    Older {
        /// The channel's version.
        offered: String,
        /// This build.
        running: String,
    },
}

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
            binary: None,
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
