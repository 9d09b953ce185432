//! The configurations this agent holds the lease of, and their epochs (the contract is
//! [`cloudsync_api::lease`]). Enters: each heartbeat answer's [`LeaseGrant`]s, and the push
//! stage's `LeaseLost` refusals. Leaves: per configuration, the epoch to stamp on batches (only
//! while held), a generation counter the push stage watches, and log lines for every change.
//!
//! A standby keeps its feeds and projection running; the push stage sends only the configurations it
//! holds (in the daemon it acknowledges a standby's operations unsent). On a grant with a new epoch
//! that another agent held before, `runtime::takeover` enqueues this agent's full image of the
//! configuration and `imageComplete` (see `ARCHITECTURE.md`, "The lease and fencing contract").

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use cloudsync_api::lease::LeaseGrant;

/// One configuration's lease as this agent knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This agent holds it under `epoch`.
    Held {
        /// The epoch to stamp on batches.
        epoch: u64,
    },
    /// Another agent holds it (or nobody does yet).
    Standby {
        /// The holder, if any.
        holder: Option<Uuid>,
        /// The holder's epoch (0: never leased).
        epoch: u64,
    },
}

/// The shared view: the heartbeat task writes it, the push stage reads it.
#[derive(Debug)]
pub struct Leases {
    states: Mutex<BTreeMap<Uuid, LeaseState>>,
    generation: watch::Sender<u64>,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            states: Mutex::new(BTreeMap::new()),
            generation: watch::channel(0).0,
        }
    }
}

impl Leases {
    /// The epoch to stamp on `configuration`'s batches, while this agent holds it.
    pub fn epoch(&self, configuration: Uuid) -> Option<u64> {
        match self.lock().get(&configuration) {
            Some(LeaseState::Held { epoch }) => Some(*epoch),
            _ => None,
        }
    }

    /// Every configuration's state (for `agent status` and tests).
    pub fn snapshot(&self) -> BTreeMap<Uuid, LeaseState> {
        self.lock().clone()
    }

    /// Fires when any configuration's state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Takes in a heartbeat answer's grants; logs each change. Returns how long a standby should
    /// wait before its next heartbeat to take over an expiring lease at once (`None`: no lease of
    /// another agent to watch).
    pub fn update(&self, grants: &[LeaseGrant]) -> Option<Duration> {
        let mut changed = false;
        let mut watch_for: Option<Duration> = None;
        {
            let mut states = self.lock();
            for g in grants {
                let new = if g.held {
                    LeaseState::Held {
                        epoch: g.lease.as_ref().map_or(0, |l| l.epoch),
                    }
                } else {
                    if g.lease.is_some() {
                        // Just past the expiry: the tenant grants on the first heartbeat after it.
                        let at = Duration::from_millis(g.expires_in_ms.saturating_add(100));
                        watch_for = Some(watch_for.map_or(at, |w| w.min(at)));
                    }
                    LeaseState::Standby {
                        holder: g.lease.as_ref().map(|l| l.holder_agent_id),
                        epoch: g.lease.as_ref().map_or(0, |l| l.epoch),
                    }
                };
                match &new {
                    LeaseState::Held { epoch } => {
                        crate::metrics::lease(&g.configuration_id.to_string(), true, *epoch);
                    }
                    LeaseState::Standby { epoch, .. } => {
                        crate::metrics::lease(&g.configuration_id.to_string(), false, *epoch);
                    }
                }
                let old = states.insert(g.configuration_id, new.clone());
                if old.as_ref() == Some(&new) {
                    continue;
                }
                changed = true;
                match &new {
                    LeaseState::Held { epoch } => tracing::info!(
                        configuration = %g.configuration_id,
                        epoch,
                        since = g.lease.as_ref().map_or("", |l| l.since.as_str()),
                        "Lease held: this agent pushes the configuration."
                    ),
                    LeaseState::Standby { holder, epoch } => {
                        if matches!(old, Some(LeaseState::Held { .. })) {
                            tracing::warn!(configuration = %g.configuration_id, holder = ?holder, epoch, "Lease lost to another agent: pushing stops for the configuration.");
                        } else {
                            tracing::info!(configuration = %g.configuration_id, holder = ?holder, epoch, "Standing by: another agent holds the lease; reading AD and projecting continue, pushing waits.");
                        }
                    }
                }
            }
        }
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
        watch_for
    }

    /// The tenant refused a batch with `LeaseLost`: stop pushing `configuration` until a
    /// heartbeat grants it again.
    pub fn lost(&self, configuration: Uuid) {
        let was = self.lock().insert(
            configuration,
            LeaseState::Standby {
                holder: None,
                epoch: 0,
            },
        );
        if matches!(was, Some(LeaseState::Held { .. })) {
            crate::metrics::lease(&configuration.to_string(), false, 0);
            self.generation.send_modify(|g| *g += 1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, LeaseState>> {
        // A panic while holding the lock cannot leave the map half-written (one insert at a time).
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Waits for a lease change; forever without leases (or once the heartbeat task is gone).
pub async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    let gone = match rx {
        Some(r) => r.changed().await.is_err(),
        None => true,
    };
    if gone {
        *rx = None;
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::lease::LeaseInfo;

    fn grant(config: u128, held: bool, holder: u128, epoch: u64) -> LeaseGrant {
        LeaseGrant {
            configuration_id: Uuid::from_u128(config),
            held,
            lease: Some(LeaseInfo {
                holder_agent_id: Uuid::from_u128(holder),
                epoch,
                since: String::new(),
                expires: String::new(),
                live: true,
            }),
            expires_in_ms: 1_500,
        }
    }

    #[test]
    fn held_standby_and_lost() {
        let leases = Leases::default();
        let mut rx = leases.subscribe();
        assert_eq!(leases.update(&[grant(1, true, 7, 3)]), None);
        assert_eq!(leases.epoch(Uuid::from_u128(1)), Some(3));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        // The same answer again changes nothing.
        leases.update(&[grant(1, true, 7, 3)]);
        assert!(!rx.has_changed().unwrap());
        // Another agent took it over: standby, and a heartbeat right after its expiry.
        assert_eq!(
            leases.update(&[grant(1, false, 8, 4)]),
            Some(Duration::from_millis(1_600))
        );
        assert_eq!(leases.epoch(Uuid::from_u128(1)), None);
        leases.update(&[grant(1, true, 7, 5)]);
        leases.lost(Uuid::from_u128(1));
        assert_eq!(leases.epoch(Uuid::from_u128(1)), None);
    }

    #[test]
    fn the_lease_is_exported_as_a_metric_with_one_state_at_a_time() {
        let leases = Leases::default();
        let id = Uuid::from_u128(0xfeed).to_string();
        let series = |state: &str| {
            let text = crate::metrics::metrics().encode().unwrap();
            text.lines()
                .find(|l| {
                    l.starts_with("cloudsync_lease_epoch{")
                        && l.contains(&id)
                        && l.contains(&format!("state=\"{state}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
        };
        leases.update(&[grant(0xfeed, true, 7, 6)]);
        assert_eq!(series("held").as_deref(), Some("6"));
        assert_eq!(series("standby"), None);
        leases.update(&[grant(0xfeed, false, 8, 7)]);
        assert_eq!(
            series("held"),
            None,
            "no stale held series after the takeover"
        );
        assert_eq!(series("standby").as_deref(), Some("7"));
    }
}
