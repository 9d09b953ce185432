//! One updater run. Enters: the agent's client and id, `[updater]`, this build's version. Leaves:
//! an [`Outcome`] (each with its exit code) and, for an upgrade, the swapped binary and a
//! restarted agent — or the previous binary back after a rollback.
//!
//! Steps (docs/updater.md):
//! 1. Ask the channel. Equal (or the tenant's own build) → up to date; a published version older
//!    than this build → refused ([`Refusal::Older`]); newer without a binary or without a pinned key
//!    → not applied, saying why.
//! 2. Check the signature (pinned key, statement of version, size, SHA-256) → else refused.
//! 3. Download to `<binary>.new`, size and digest checked → else refused, `.new` removed.
//! 4. Take the tenant's upgrade slot, waiting up to `slot_wait_secs` → else deferred.
//! 5. Swap ([`super::swap`]), run the restart command, and wait up to `health_deadline_secs` for the
//!    tenant to show this agent Active with a heartbeat from the new binary (its SHA-256).
//! 6. Not healthy → roll back (`.previous` renamed back), restart again, wait for the previous
//!    binary's heartbeat, give the slot back, report with an ERROR line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudsync_api::agent::{AgentInfo, AgentStatus};
use cloudsync_api::release::{
    Release, ReleaseSource, UpgradeSlot, Version, is_newer, parse_version,
};
use uuid::Uuid;

use super::fetch::{FetchError, check_signature, download};
use super::settings::{UpdaterConfig, parse_public_key};
use super::swap::{SwapError, beside, roll_back, swap_in};
use super::{
    EXIT_DEFERRED, EXIT_REFUSED, EXIT_ROLLED_BACK, EXIT_UPDATE_AVAILABLE, Refusal, UpdateError,
    latest_release,
};
use crate::control::executable::sha256_of_file;
use crate::control::tenant_client::{TenantClient, TenantError};

/// How often the tenant is asked while waiting for health.
const POLL: Duration = Duration::from_millis(500);

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This build is the channel's version or newer (or nothing is published).
    UpToDate {
        /// This build.
        current: String,
        /// The channel's answer.
        latest: Release,
    },
    /// Newer, but not applied: `why` says (no pinned key, no binary published).
    NotApplied {
        /// This build.
        current: String,
        /// The channel's version.
        offered: String,
        /// Why.
        why: String,
    },
    /// Refused; the installed binary is untouched.
    Refused {
        /// The channel's version.
        offered: String,
        /// Why.
        refusal: Refusal,
    },
    /// Another agent holds the upgrade slot.
    Deferred {
        /// The channel's version.
        offered: String,
        /// How long this run waited.
        waited: Duration,
    },
    /// Swapped, restarted, and the tenant sees the new binary Active.
    Updated {
        /// The version before.
        from: String,
        /// The version now.
        to: String,
        /// The binary swapped.
        binary: PathBuf,
    },
    /// The new binary did not report healthy; the previous one is back.
    RolledBack {
        /// The version tried.
        offered: String,
        /// What went wrong.
        why: String,
        /// Whether the previous binary was seen heartbeating again within the deadline.
        previous_healthy: bool,
    },
}

impl Outcome {
    /// The exit code of `cloudsync updater run` (docs/updater.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::UpToDate { .. } | Outcome::Updated { .. } => 0,
            Outcome::NotApplied { .. } => EXIT_UPDATE_AVAILABLE,
            Outcome::Refused { .. } => EXIT_REFUSED,
            Outcome::RolledBack { .. } => EXIT_ROLLED_BACK,
            Outcome::Deferred { .. } => EXIT_DEFERRED,
        }
    }
}

/// A run that could not decide or act (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The channel could not be asked or answered nonsense.
    #[error(transparent)]
    Check(#[from] UpdateError),
    /// The tenant refused or could not be reached.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The download could not be written.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The swap or the rollback failed on disk.
    #[error(transparent)]
    Swap(#[from] SwapError),
    /// The installed binary could not be found or read.
    #[error("the installed binary {path}: {source}")]
    Binary {
        /// Its path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What one run works with.
#[derive(Debug)]
pub struct Updater<'a> {
    /// The agent's client.
    pub client: &'a TenantClient,
    /// The agent's id (its record on the tenant is the health signal).
    pub agent_id: Uuid,
    /// `[updater]`.
    pub config: &'a UpdaterConfig,
    /// This build's version.
    pub current: String,
}

impl Updater<'_> {
    /// Runs the steps of the module doc once.
    pub async fn run(&self) -> Result<Outcome, ApplyError> {
        let latest = latest_release(self.client)
            .await
            .map_err(UpdateError::from)?;
        let bad = |version: &str, source| UpdateError::BadVersion {
            version: version.to_owned(),
            source,
        };
        let mine = parse_version(&self.current).map_err(|e| bad(&self.current, e))?;
        let offered = parse_version(&latest.version).map_err(|e| bad(&latest.version, e))?;
        let offered_text = offered.to_string();
        if !is_newer(&offered, &mine) {
            if latest.source == ReleaseSource::Published && is_newer(&mine, &offered) {
                return Ok(Outcome::Refused {
                    offered: offered_text,
                    refusal: Refusal::Older {
                        offered: latest.version.clone(),
                        running: self.current.clone(),
                    },
                });
            }
            return Ok(Outcome::UpToDate {
                current: self.current.clone(),
                latest,
            });
        }
        let not_applied = |why: &str| {
            Ok(Outcome::NotApplied {
                current: self.current.clone(),
                offered: offered_text.clone(),
                why: why.to_owned(),
            })
        };
        let Some(binary) = latest.binary.clone() else {
            return not_applied("it was published without a binary (a version only)");
        };
        let Some(key_text) = &self.config.public_key else {
            return not_applied(
                "no release public key is pinned ([updater] public_key, set by `agent install --release-public-key`), so the download cannot be verified",
            );
        };
        // Validation refused a malformed key at load; this cannot fail for a loaded config.
        let key = match parse_public_key(key_text) {
            Ok(k) => k,
            Err(e) => return not_applied(&format!("[updater] public_key {e}")),
        };
        let refused = |refusal| {
            Ok(Outcome::Refused {
                offered: offered_text.clone(),
                refusal,
            })
        };
        if let Err(r) = check_signature(&key, &offered, &binary) {
            return refused(r);
        }
        let path = self.binary_path()?;
        let mode = std::fs::metadata(&path)
            .map_err(|source| ApplyError::Binary {
                path: path.clone(),
                source,
            })?
            .permissions()
            .mode()
            & 0o7777;
        let old_sha = sha256_of_file(&path).map_err(|source| ApplyError::Binary {
            path: path.clone(),
            source,
        })?;
        let new = beside(&path, ".new");
        tracing::info!(version = %offered, path = %new.display(), size = binary.size, "Downloading the release.");
        if let Err(r) = download(self.client, &binary, &new, mode).await? {
            return refused(r);
        }
        let started = Instant::now();
        if !self.take_slot(&offered).await? {
            let _ = std::fs::remove_file(&new);
            return Ok(Outcome::Deferred {
                offered: offered_text,
                waited: started.elapsed(),
            });
        }
        let outcome = self
            .swap_and_check(&path, &offered_text, &binary.sha256, &old_sha)
            .await;
        if !matches!(outcome, Ok(Outcome::Updated { .. })) {
            self.give_back_slot(&offered).await;
        }
        outcome
    }

    fn binary_path(&self) -> Result<PathBuf, ApplyError> {
        match &self.config.binary {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe().map_err(|source| ApplyError::Binary {
                path: PathBuf::from("/proc/self/exe"),
                source,
            }),
        }
    }

    async fn swap_and_check(
        &self,
        path: &Path,
        offered: &str,
        new_sha: &str,
        old_sha: &str,
    ) -> Result<Outcome, ApplyError> {
        swap_in(path)?;
        tracing::info!(version = %offered, path = %path.display(), "Swapped in the new binary; the previous one is kept beside it as .previous.");
        let deadline = Duration::from_secs(self.config.health_deadline_secs);
        let why = match self.restart(deadline).await {
            Err(why) => why,
            Ok(()) => {
                if self.wait_for_binary(new_sha, deadline).await {
                    return Ok(Outcome::Updated {
                        from: self.current.clone(),
                        to: offered.to_owned(),
                        binary: path.to_owned(),
                    });
                }
                format!(
                    "the tenant did not see this agent Active on the new binary within {} s",
                    deadline.as_secs()
                )
            }
        };
        roll_back(path)?;
        tracing::error!(version = %offered, reason = %why, path = %path.display(), "The new agent binary did not report healthy; rolled back to the previous binary.");
        let previous_healthy = match self.restart(deadline).await {
            Ok(()) => self.wait_for_binary(old_sha, deadline).await,
            Err(e) => {
                tracing::error!(error = %e, "Restarting the previous binary failed.");
                false
            }
        };
        Ok(Outcome::RolledBack {
            offered: offered.to_owned(),
            why,
            previous_healthy,
        })
    }

    /// Runs the restart command (bounded by `deadline`); `Err` names what failed.
    async fn restart(&self, deadline: Duration) -> Result<(), String> {
        let Some((program, args)) = self.config.restart_command.split_first() else {
            return Err("no restart command is configured".into());
        };
        tracing::info!(command = ?self.config.restart_command, "Restarting the agent.");
        let run = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(format!("the restart command {program:?} failed ({s})")),
            Ok(Err(e)) => Err(format!(
                "the restart command {program:?} could not run: {e}"
            )),
            Err(_) => Err(format!(
                "the restart command {program:?} did not finish within {} s",
                deadline.as_secs()
            )),
        }
    }

    /// Polls the tenant until it shows this agent Active with a heartbeat from the binary `sha`.
    async fn wait_for_binary(&self, sha: &str, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        let url = self
            .client
            .url(&format!("/api/v1/agents/{}", self.agent_id));
        loop {
            let info: Result<AgentInfo, _> = self
                .client
                .agent_json(&url, |t| self.client.http().get(&url).bearer_auth(t))
                .await;
            match info {
                Ok(a)
                    if a.status == AgentStatus::Active
                        && a.binary_sha256
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case(sha)) =>
                {
                    tracing::info!(version = %a.version, "The tenant sees the agent Active on the expected binary.");
                    return true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Asking the tenant for the agent's record failed; trying again.")
                }
            }
            if Instant::now() + POLL > until {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks for the upgrade slot until granted or `slot_wait_secs` passed.
    async fn take_slot(&self, version: &Version) -> Result<bool, ApplyError> {
        let url = self
            .client
            .url(&format!("/api/v1/releases/{version}/upgrade-slot"));
        let until = Instant::now() + Duration::from_secs(self.config.slot_wait_secs);
        loop {
            let slot: UpgradeSlot = self
                .client
                .agent_json(&url, |t| self.client.http().post(&url).bearer_auth(t))
                .await?;
            if slot.granted {
                tracing::info!(seconds = slot.seconds, "Upgrade slot granted.");
                return Ok(true);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(false);
            }
            let wait = Duration::from_secs(slot.seconds.max(1)).min(until - now);
            tracing::info!(
                retry_in_secs = wait.as_secs(),
                "Another agent of this tenant is upgrading; waiting for the upgrade slot."
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn give_back_slot(&self, version: &Version) {
        let url = self
            .client
            .url(&format!("/api/v1/releases/{version}/upgrade-slot"));
        let r = self
            .client
            .send_as_agent(&url, |t| self.client.http().delete(&url).bearer_auth(t))
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not give the upgrade slot back; it frees itself when its time runs out.");
        }
    }
}
