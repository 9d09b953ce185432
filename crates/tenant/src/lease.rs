//! Leases per configuration: who may push, under which epoch (the contract is
//! [`cloudsync_api::lease`]).
//!
//! Enters: an agent's heartbeat (who, when, which configurations it is paired with, how many leases
//! each Active paired agent holds), or a batch's epoch. Leaves: the configuration's
//! [`LeaseRecord`] granted, renewed or left alone, the [`LeaseGrant`] for the heartbeat answer,
//! and the refusal of a batch from a lost lease. Nothing here writes the store; the callers store
//! the configuration record under the apply lock and flush before answering, so an epoch is
//! durable before any agent learns it.
//!
//! Rules:
//! 1. The holder's heartbeat renews its lease (even after expiry, as long as nobody took it over:
//!    nobody else wrote under a newer epoch, so its epoch is still the current one).
//! 2. Another agent's heartbeat leaves a live lease alone (it is a standby).
//! 3. A free configuration (never leased, or its lease expired) goes to the heartbeating agent with
//!    the previous epoch + 1 — unless another Active paired agent holds strictly fewer leases; that
//!    one takes it at its own next heartbeat (spread).
//! 4. A batch is accepted only with the current epoch from the current holder. Without an epoch
//!    (an agent that predates leases) it is accepted while the configuration never had a lease, or
//!    from the current holder, its operations then counting under the current epoch; from any
//!    other agent it is refused.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cloudsync_api::lease::{LeaseGrant, LeaseInfo};

use super::state::rfc3339;

/// A configuration's lease as stored in its record (the `lease` field of
/// [`super::store::ConfigRecord`]; absent before the first grant, never removed after, so the
/// epoch survives restarts and only grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// The holder (or last holder, once expired).
    pub holder: Uuid,
    /// The epoch of this grant.
    pub epoch: u64,
    /// When the holder got this grant, Unix seconds.
    pub since: i64,
    /// When the lease runs out unless renewed (the last renewal plus the lease length then in
    /// force), Unix milliseconds.
    pub expires_ms: i64,
}

impl LeaseRecord {
    /// Whether the lease still runs at `now_ms`.
    pub fn live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms
    }

    /// The public view.
    pub fn info(&self, now_ms: i64) -> LeaseInfo {
        let at = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
                .map(rfc3339)
                .unwrap_or_default()
        };
        LeaseInfo {
            holder_agent_id: self.holder,
            epoch: self.epoch,
            since: at(self.since.saturating_mul(1000)),
            expires: at(self.expires_ms),
            live: self.live(now_ms),
        }
    }
}

/// What a heartbeat did to one configuration's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    /// The caller held it and renewed it.
    Renewed,
    /// The caller got it, with a new epoch; `previous` held it before (expired).
    Granted {
        /// The agent whose lease expired, if any.
        previous: Option<Uuid>,
    },
    /// Another agent holds it, or should get it (spread).
    Standby,
}

/// Rules 1–3 of the module doc for one configuration at a heartbeat of `agent` at `now_ms`.
/// `fewer_elsewhere`: another Active paired agent holds strictly fewer live leases than `agent`.
pub fn on_heartbeat(
    lease: &mut Option<LeaseRecord>,
    agent: Uuid,
    now_ms: i64,
    lease_ms: u64,
    fewer_elsewhere: bool,
) -> LeaseChange {
    let expires_ms = now_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
    match lease {
        Some(l) if l.holder == agent => {
            l.expires_ms = l.expires_ms.max(expires_ms);
            LeaseChange::Renewed
        }
        Some(l) if l.live(now_ms) => LeaseChange::Standby,
        _ if fewer_elsewhere => LeaseChange::Standby,
        _ => {
            let previous = lease.map(|l| l.holder);
            let epoch = lease.map_or(0, |l| l.epoch).saturating_add(1);
            *lease = Some(LeaseRecord {
                holder: agent,
                epoch,
                since: now_ms.div_euclid(1000),
                expires_ms,
            });
            LeaseChange::Granted { previous }
        }
    }
}

/// The heartbeat answer's view of one configuration's lease for `agent`.
pub fn grant_for(
    configuration_id: Uuid,
    lease: Option<&LeaseRecord>,
    agent: Uuid,
    now_ms: i64,
) -> LeaseGrant {
    LeaseGrant {
        configuration_id,
        held: lease.is_some_and(|l| l.holder == agent),
        lease: lease.map(|l| l.info(now_ms)),
        expires_in_ms: lease.map_or(0, |l| {
            u64::try_from(l.expires_ms.saturating_sub(now_ms)).unwrap_or(0)
        }),
    }
}

/// Why a batch is refused (rule 4); `None`: it may be applied.
pub fn fence(lease: Option<&LeaseRecord>, agent: Uuid, epoch: Option<u64>) -> Option<String> {
    match (lease, epoch) {
        (None, None) => None,
        (None, Some(e)) => Some(format!(
            "The batch carries epoch {e}, but no lease was ever granted for this configuration."
        )),
        (Some(l), Some(e)) if l.epoch == e && l.holder == agent => None,
        (Some(l), None) if l.holder == agent => None,
        (Some(l), e) => Some(format!(
            "The lease of this configuration is held by agent {} with epoch {}; this batch carries {}. Nothing was applied.",
            l.holder,
            l.epoch,
            e.map_or_else(|| "no epoch".to_owned(), |e| format!("epoch {e}"))
        )),
    }
}

/// Whether an operation at (`epoch`, `version`) is newer than what is stored at
/// (`stored_epoch`, `stored_version`): lexicographic, epoch first.
pub fn newer(epoch: u64, version: u64, stored_epoch: u64, stored_version: u64) -> bool {
    (epoch, version) > (stored_epoch, stored_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 6_000;
    fn a() -> Uuid {
        Uuid::from_u128(1)
    }
    fn b() -> Uuid {
        Uuid::from_u128(2)
    }

    #[test]
    fn the_first_heartbeat_gets_epoch_1_and_renewals_keep_it() {
        let mut lease = None;
        assert_eq!(
            on_heartbeat(&mut lease, a(), 1_000, LEASE, false),
            LeaseChange::Granted { previous: None }
        );
        assert_eq!(lease.map(|l| l.epoch), Some(1));
        assert_eq!(
            on_heartbeat(&mut lease, a(), 3_000, LEASE, false),
            LeaseChange::Renewed
        );
        assert_eq!(lease.map(|l| (l.epoch, l.expires_ms)), Some((1, 9_000)));
        // A standby's heartbeat while the lease runs changes nothing.
        assert_eq!(
            on_heartbeat(&mut lease, b(), 8_999, LEASE, false),
            LeaseChange::Standby
        );
        assert_eq!(lease.map(|l| l.holder), Some(a()));
    }

    #[test]
    fn an_expired_lease_goes_to_the_next_heartbeat_with_the_next_epoch() {
        let mut lease = None;
        on_heartbeat(&mut lease, a(), 0, LEASE, false);
        assert!(lease.is_some_and(|l| l.live(5_999)));
        assert!(lease.is_some_and(|l| !l.live(6_000)));
        assert_eq!(
            on_heartbeat(&mut lease, b(), 6_000, LEASE, false),
            LeaseChange::Granted {
                previous: Some(a())
            }
        );
        assert_eq!(lease.map(|l| (l.holder, l.epoch)), Some((b(), 2)));
        // The old holder comes back: it is a standby now, and its epoch is refused.
        assert_eq!(
            on_heartbeat(&mut lease, a(), 7_000, LEASE, false),
            LeaseChange::Standby
        );
        assert!(fence(lease.as_ref(), a(), Some(1)).is_some());
        assert!(fence(lease.as_ref(), b(), Some(1)).is_some());
        assert!(fence(lease.as_ref(), b(), Some(2)).is_none());
        assert!(
            fence(lease.as_ref(), a(), Some(2)).is_some(),
            "epoch 2 is b's, not a's"
        );
    }

    #[test]
    fn the_holder_renews_an_expired_lease_nobody_took() {
        let mut lease = None;
        on_heartbeat(&mut lease, a(), 0, LEASE, false);
        assert_eq!(
            on_heartbeat(&mut lease, a(), 60_000, LEASE, false),
            LeaseChange::Renewed
        );
        assert_eq!(lease.map(|l| l.epoch), Some(1));
    }

    #[test]
    fn epochs_only_grow_over_many_takeovers() {
        let mut lease = None;
        let mut last = 0;
        for round in 0..20i64 {
            let who = if round % 2 == 0 { a() } else { b() };
            let change = on_heartbeat(&mut lease, who, round * 10_000, LEASE, false);
            assert!(matches!(change, LeaseChange::Granted { .. }), "{round}");
            let epoch = lease.map_or(0, |l| l.epoch);
            assert!(epoch > last);
            last = epoch;
        }
        // The record survives a restart as JSON, epoch and all.
        let text = serde_json::to_string(&lease).unwrap();
        let back: Option<LeaseRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, lease);
    }

    #[test]
    fn a_free_configuration_waits_for_an_agent_with_fewer_leases() {
        let mut lease = None;
        assert_eq!(
            on_heartbeat(&mut lease, a(), 0, LEASE, true),
            LeaseChange::Standby
        );
        assert!(lease.is_none());
        assert!(matches!(
            on_heartbeat(&mut lease, b(), 0, LEASE, false),
            LeaseChange::Granted { .. }
        ));
    }

    #[test]
    fn batches_without_an_epoch_before_any_lease_or_from_the_holder() {
        assert!(fence(None, a(), None).is_none());
        assert!(fence(None, a(), Some(1)).is_some());
        let mut lease = None;
        on_heartbeat(&mut lease, a(), 0, LEASE, false);
        assert!(fence(lease.as_ref(), a(), None).is_none());
        assert!(fence(lease.as_ref(), b(), None).is_some());
        assert!(fence(lease.as_ref(), a(), Some(1)).is_none());
    }

    #[test]
    fn versions_compare_epoch_first() {
        // The new holder's low sequence numbers win over the old holder's high ones...
        assert!(newer(2, 5, 1, 1_000_000));
        // ...an old epoch never overwrites a newer one...
        assert!(!newer(1, 1_000_000, 2, 5));
        // ...and within an epoch the sequence decides; equal is not newer (a replay).
        assert!(newer(2, 6, 2, 5));
        assert!(!newer(2, 5, 2, 5));
        // Objects written before leases existed are epoch 0.
        assert!(newer(1, 1, 0, 99));
    }

    #[test]
    fn the_grant_tells_the_standby_when_to_look_again() {
        let mut lease = None;
        on_heartbeat(&mut lease, a(), 1_000, LEASE, false);
        let g = grant_for(Uuid::nil(), lease.as_ref(), b(), 2_000);
        assert!(!g.held);
        assert_eq!(g.expires_in_ms, 5_000);
        assert_eq!(g.lease.as_ref().map(|l| l.holder_agent_id), Some(a()));
        assert!(grant_for(Uuid::nil(), lease.as_ref(), a(), 2_000).held);
    }
}
