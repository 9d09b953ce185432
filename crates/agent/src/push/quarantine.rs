//! Configuration quarantine and the status the push stage publishes.
//!
//! A configuration enters quarantine locally when (a) at least `after_failures` calls in a row
//! failed as a whole (transport errors, 5xx, refused tokens; 429 is pacing, not failure) over at
//! least `after` of wall time, or (b) the tenant answers operations with `Quarantined` (its own
//! quarantine after batches that failed entirely). While quarantined the stage sends nothing but a
//! slow probe every `probe_interval`: for (a) the next batch attempt, for (b) a read of the
//! configuration. It leaves quarantine when a probe succeeds, i.e. for (b) when an admin restart
//! with scope `Quarantine` has set the configuration's health back to `Healthy`.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Why the configuration is quarantined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum QuarantineReason {
    /// Most calls keep failing.
    CallsFailing {
        /// Failed calls in a row.
        consecutive: u32,
        /// The last error.
        last_error: String,
    },
    /// The tenant quarantined the configuration.
    Tenant {
        /// The tenant's message.
        message: String,
    },
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineReason::CallsFailing {
                consecutive,
                last_error,
            } => write!(f, "{consecutive} calls in a row failed; last: {last_error}"),
            QuarantineReason::Tenant { message } => write!(f, "tenant: {message}"),
        }
    }
}

/// The push stage's published state (for `status`, logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushStatus {
    /// The persisted push checkpoint.
    pub checkpoint: u64,
    /// Operations read from the outbox and not yet acknowledged.
    pub outstanding: usize,
    /// Batches currently being sent.
    pub in_flight: usize,
    /// Batch send attempts (including retries).
    pub batch_attempts: u64,
    /// Batches the tenant answered.
    pub batches_answered: u64,
    /// Operations acknowledged (success or skipped).
    pub ops_acknowledged: u64,
    /// Operations retried after a retriable per-operation error.
    pub ops_retried: u64,
    /// Objects quarantined after a permanent per-operation error.
    pub objects_quarantined: u64,
    /// Whole calls that failed (transport, 5xx, …).
    pub calls_failed: u64,
    /// 429 answers, and batch answers with per-item `Throttled` results.
    pub throttled: u64,
    /// Set while the configuration is quarantined.
    pub quarantine: Option<QuarantineReason>,
    /// Batches the tenant refused with `LeaseLost` (another agent holds the configuration).
    pub lease_lost: u64,
    /// The outbox backlog (operations not yet acknowledged) when this agent last took a lease
    /// over: how far behind the tenant the standby was.
    pub lease_backlog_at_takeover: Option<u64>,
    /// Operations of configurations another agent holds, acknowledged here without being sent (a
    /// standby's; the image on a takeover replaces them, see [`crate::control::lease`]).
    pub standby_discarded: u64,
}

/// Quarantine thresholds.
#[derive(Debug, Clone, Copy)]
pub struct QuarantinePolicy {
    /// Failed calls in a row needed.
    pub after_failures: u32,
    /// …over at least this long.
    pub after: Duration,
    /// Interval of the slow probe while quarantined.
    pub probe_interval: Duration,
}

/// Tracks consecutive whole-call failures.
#[derive(Debug, Default)]
pub struct FailureStreak {
    consecutive: u32,
    since: Option<Instant>,
}

impl FailureStreak {
    /// Records a failed call; returns the streak length.
    pub fn failed(&mut self, now: Instant) -> u32 {
        self.consecutive = self.consecutive.saturating_add(1);
        self.since.get_or_insert(now);
        self.consecutive
    }

    /// Records a successful call.
    pub fn succeeded(&mut self) {
        self.consecutive = 0;
        self.since = None;
    }

    /// Failed calls in a row.
    pub fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// Whether the streak meets the policy's quarantine condition.
    pub fn warrants_quarantine(&self, policy: &QuarantinePolicy, now: Instant) -> bool {
        self.consecutive >= policy.after_failures
            && self
                .since
                .is_some_and(|s| now.saturating_duration_since(s) >= policy.after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_both_count_and_duration() {
        let policy = QuarantinePolicy {
            after_failures: 3,
            after: Duration::from_secs(10),
            probe_interval: Duration::from_secs(30),
        };
        let t0 = Instant::now();
        let mut s = FailureStreak::default();
        for _ in 0..5 {
            s.failed(t0);
        }
        assert!(!s.warrants_quarantine(&policy, t0 + Duration::from_secs(9)));
        assert!(s.warrants_quarantine(&policy, t0 + Duration::from_secs(10)));
        s.succeeded();
        s.failed(t0 + Duration::from_secs(20));
        assert!(!s.warrants_quarantine(&policy, t0 + Duration::from_secs(60)));
    }
}
