//! The FIPS policy for password hash sync.
//!
//! Password hash sync needs MD4 and MD5 (the NT hash itself, the MS-DRSR session-key derivation) and
//! RC4 (MS-DRSR secret encryption) — algorithms a FIPS 140 policy forbids. When the host is in FIPS mode
//! (`/proc/sys/crypto/fips_enabled` is `1`) or the configuration sets `fips.enforce = true`, password
//! hash sync does not start unless `fips.allow_md5_for_password_hash_sync = true` (the analogue of the
//! Microsoft agent's `enforceFIPSPolicy = false`). Nothing else in cloudsync uses these algorithms, so
//! everything else keeps working.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where Linux reports FIPS mode.
pub const HOST_FIPS_FILE: &str = "/proc/sys/crypto/fips_enabled";

/// The `[fips]` configuration section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FipsSettings {
    /// Enforce FIPS policy even when the host is not in FIPS mode.
    pub enforce: bool,
    /// Allow MD4/MD5/RC4 for password hash sync even under FIPS policy.
    pub allow_md5_for_password_hash_sync: bool,
}

/// Why FIPS policy applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FipsReason {
    /// The host kernel is in FIPS mode.
    Host(PathBuf),
    /// The configuration sets `fips.enforce = true`.
    Config,
}

impl std::fmt::Display for FipsReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FipsReason::Host(path) => {
                write!(f, "the host is in FIPS mode ({} is 1)", path.display())
            }
            FipsReason::Config => f.write_str("the configuration sets fips.enforce = true"),
        }
    }
}

/// Password hash sync is refused by FIPS policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FipsError {
    /// MD4, MD5 and RC4 are refused and password hash sync may not start.
    #[error(
        "password hash sync is disabled: it needs MD4, MD5 and RC4 (the NT hash and MS-DRSR secret \
         decryption), which FIPS policy refuses because {0}; set fips.allow_md5_for_password_hash_sync = true \
         to allow them for password hash sync only"
    )]
    Refused(FipsReason),
}

/// The outcome of the policy check when password hash sync may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FipsDecision {
    /// FIPS policy does not apply.
    NotApplicable,
    /// FIPS policy applies but the configuration allows the algorithms for password hash sync.
    AllowedByException(FipsReason),
}

/// Whether the host reports FIPS mode in `path` (a missing or unreadable file means no).
pub fn host_fips_enabled(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

/// Decides whether password hash sync may start, reading FIPS mode from `host_file`.
pub fn check_password_hash_sync(
    settings: &FipsSettings,
    host_file: &Path,
) -> Result<FipsDecision, FipsError> {
    let reason = if host_fips_enabled(host_file) {
        Some(FipsReason::Host(host_file.to_path_buf()))
    } else if settings.enforce {
        Some(FipsReason::Config)
    } else {
        None
    };
    match reason {
        None => Ok(FipsDecision::NotApplicable),
        Some(reason) if settings.allow_md5_for_password_hash_sync => {
            tracing::warn!(
                %reason,
                "FIPS policy applies; MD4, MD5 and RC4 are allowed for password hash sync by fips.allow_md5_for_password_hash_sync."
            );
            Ok(FipsDecision::AllowedByException(reason))
        }
        Some(reason) => Err(FipsError::Refused(reason)),
    }
}

/// [`check_password_hash_sync`] against the real host file.
pub fn check_password_hash_sync_on_host(
    settings: &FipsSettings,
) -> Result<FipsDecision, FipsError> {
    check_password_hash_sync(settings, Path::new(HOST_FIPS_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_file(content: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fips_enabled");
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn off_when_neither_host_nor_config_asks() {
        for content in [None, Some("0\n"), Some("")] {
            let (_d, path) = host_file(content);
            assert_eq!(
                check_password_hash_sync(&FipsSettings::default(), &path),
                Ok(FipsDecision::NotApplicable)
            );
        }
    }

    #[test]
    fn host_fips_mode_refuses_and_names_the_setting() {
        let (_d, path) = host_file(Some("1\n"));
        let err = check_password_hash_sync(&FipsSettings::default(), &path).unwrap_err();
        assert_eq!(err, FipsError::Refused(FipsReason::Host(path.clone())));
        let msg = err.to_string();
        assert!(
            msg.contains("fips.allow_md5_for_password_hash_sync = true"),
            "{msg}"
        );
        assert!(msg.contains(&format!("{} is 1", path.display())), "{msg}");
    }

    #[test]
    fn config_enforce_refuses_and_names_the_setting() {
        let (_d, path) = host_file(Some("0\n"));
        let settings = FipsSettings {
            enforce: true,
            allow_md5_for_password_hash_sync: false,
        };
        let msg = check_password_hash_sync(&settings, &path)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("fips.enforce = true"), "{msg}");
        assert!(
            msg.contains("fips.allow_md5_for_password_hash_sync = true"),
            "{msg}"
        );
    }

    #[test]
    fn the_exception_allows_both_ways() {
        let allow = FipsSettings {
            enforce: true,
            allow_md5_for_password_hash_sync: true,
        };
        let (_d, off) = host_file(Some("0"));
        assert_eq!(
            check_password_hash_sync(&allow, &off),
            Ok(FipsDecision::AllowedByException(FipsReason::Config))
        );
        let (_d2, on) = host_file(Some("1"));
        let host_only = FipsSettings {
            enforce: false,
            allow_md5_for_password_hash_sync: true,
        };
        assert_eq!(
            check_password_hash_sync(&host_only, &on),
            Ok(FipsDecision::AllowedByException(FipsReason::Host(
                on.clone()
            )))
        );
    }

    #[test]
    fn settings_deserialize_from_toml_and_reject_typos() {
        let s: FipsSettings =
            toml::from_str("enforce = true\nallow_md5_for_password_hash_sync = true").unwrap();
        assert!(s.enforce && s.allow_md5_for_password_hash_sync);
        assert!(toml::from_str::<FipsSettings>("enforced = true").is_err());
    }
}
