//! The upgrade slot: agents of one tenant never all restart for an upgrade at once. Enters:
//! `POST /api/v1/releases/{version}/upgrade-slot` and `DELETE` on the same path from agents, and
//! every heartbeat ([`SlotHolder::on_heartbeat`]). Leaves: [`UpgradeSlot`] answers.
//!
//! One slot per tenant, in memory (a restarted tenant has it free — an updater that held it then
//! finds it free again or taken by another, both safe). It is granted to one agent for
//! `--upgrade-slot-secs` (600 s by default, longer than the updater's default health deadline of
//! 120 s plus a restart); asking again while holding it renews it. It is released when its holder
//! heartbeats the release's binary (the SHA-256 the slot was granted for — the upgrade worked), when
//! its holder gives it back (the updater does after a rollback or a refusal), or when the time runs
//! out (an updater that died mid-upgrade). Other agents are refused with a time to ask again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use cloudsync_api::release::UpgradeSlot;

use super::authorize::{Agents, Authorized};
use super::error::ApiError;
use super::release::{binaries, version_arg};
use super::state::SharedState;

/// The longest "ask again in" a refused agent is told.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Held {
    agent: Uuid,
    sha256: String,
    until: Instant,
}

/// Who holds the slot, if anyone.
#[derive(Debug, Default)]
pub struct SlotHolder(Mutex<Option<Held>>);

impl SlotHolder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Grants the slot to `agent` (for the binary `sha256`) if free, expired or already its own.
    pub fn try_acquire(
        &self,
        agent: Uuid,
        sha256: &str,
        hold: Duration,
        now: Instant,
    ) -> UpgradeSlot {
        let mut slot = self.lock();
        match slot.as_ref() {
            Some(h) if h.agent != agent && h.until > now => UpgradeSlot {
                granted: false,
                seconds: (h.until - now).min(MAX_RETRY_AFTER).as_secs().max(1),
            },
            _ => {
                *slot = Some(Held {
                    agent,
                    sha256: sha256.to_owned(),
                    until: now + hold,
                });
                UpgradeSlot {
                    granted: true,
                    seconds: hold.as_secs(),
                }
            }
        }
    }

    /// Releases the slot if `agent` holds it; whether it did.
    pub fn give_back(&self, agent: Uuid) -> bool {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|h| h.agent == agent) {
            *slot = None;
            return true;
        }
        false
    }

    /// A heartbeat from `agent` running the binary `sha256`: the upgrade it holds the slot for
    /// worked, so the slot is free for the next agent.
    pub fn on_heartbeat(&self, agent: Uuid, sha256: Option<&str>) {
        let mut slot = self.lock();
        if let (Some(h), Some(sha)) = (slot.as_ref(), sha256)
            && h.agent == agent
            && h.sha256.eq_ignore_ascii_case(sha)
        {
            tracing::info!(agent_id = %agent, "The upgrading agent reports the new binary; the upgrade slot is free.");
            *slot = None;
        }
    }
}

/// `POST /api/v1/releases/{version}/upgrade-slot` (agents).
pub async fn acquire(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path(version): Path<String>,
) -> Result<Json<UpgradeSlot>, ApiError> {
    let version = version_arg(&version)?;
    let Some(binary) = binaries(&state)?.remove(&version.to_string()) else {
        return Err(ApiError::NotFound(format!(
            "Version {version} has no published binary."
        )));
    };
    let answer = state.upgrade_slot.try_acquire(
        principal.id(),
        &binary.sha256,
        state.options.upgrade_slot,
        Instant::now(),
    );
    tracing::info!(agent_id = %principal.id(), version = %version, granted = answer.granted, "Upgrade slot asked for.");
    Ok(Json(answer))
}

/// `DELETE /api/v1/releases/{version}/upgrade-slot` (agents): gives the slot back; 204 either way.
pub async fn give_back(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path(version): Path<String>,
) -> Result<StatusCode, ApiError> {
    version_arg(&version)?;
    if state.upgrade_slot.give_back(principal.id()) {
        tracing::info!(agent_id = %principal.id(), "Upgrade slot given back.");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agent_at_a_time_until_it_reports_gives_back_or_expires() {
        let slot = SlotHolder::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let hold = Duration::from_secs(60);
        let t0 = Instant::now();
        assert!(slot.try_acquire(a, "aa", hold, t0).granted);
        let refused = slot.try_acquire(b, "aa", hold, t0);
        assert!(!refused.granted);
        assert_eq!(refused.seconds, 30);
        // Asking again renews the holder's own slot.
        assert!(slot.try_acquire(a, "aa", hold, t0).granted);
        // A heartbeat of another binary, or from another agent, does not free it.
        slot.on_heartbeat(a, Some("bb"));
        slot.on_heartbeat(b, Some("aa"));
        assert!(!slot.try_acquire(b, "aa", hold, t0).granted);
        // The holder heartbeats the new binary: free.
        slot.on_heartbeat(a, Some("AA"));
        assert!(slot.try_acquire(b, "aa", hold, t0).granted);
        // Given back only by its holder.
        assert!(!slot.give_back(a));
        assert!(slot.give_back(b));
        assert!(slot.try_acquire(a, "aa", hold, t0).granted);
        // Expired: another agent gets it.
        assert!(slot.try_acquire(b, "aa", hold, t0 + hold).granted);
    }
}
