//! The `[push]` settings: the push stage's tunables, deserialised straight from the agent's
//! configuration (validated by [`crate::config`]). Enters: the TOML table. Leaves: a [`PushConfig`].
//!
//! ```toml
//! [push]
//! max_batch_ops = 500                 # operations per batch (1..=500)
//! max_in_flight = 4                   # batches in flight at once (at least 1)
//! linger_ms = 20                      # how long to wait for a full batch
//! # write_rate_limit = 23.33          # client-side pacing, operations per second (absent = off)
//! heartbeat_interval_secs = 600       # the tenant's announced interval wins when shorter
//! projection_tick_ms = 500            # how often `agent run` projects new journal events
//! ```
//! Every other field is not configurable and keeps its default.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::quarantine::QuarantinePolicy;
use super::retry::{self, Backoff};

/// Tunables of the push stage; the keys of `[push]` are the ones not marked "not configurable".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Operations per batch (clamped to 1..=500; the configuration accepts 1..=500).
    pub max_batch_ops: usize,
    /// Bytes of operation JSON per batch. Not configurable.
    #[serde(skip)]
    pub max_batch_bytes: usize,
    /// How long to wait for a full batch (`linger_ms`).
    #[serde(rename = "linger_ms", deserialize_with = "millis")]
    pub linger: Duration,
    /// Batches in flight at once (at least 1).
    pub max_in_flight: usize,
    /// Operations read from the outbox and not yet acknowledged, at most (the bounded window).
    /// Not configurable.
    #[serde(skip)]
    pub max_pending: usize,
    /// Backoff after a failed call. Not configurable.
    #[serde(skip)]
    pub call_backoff: Backoff,
    /// Backoff of an operation after a retriable per-operation error. Not configurable.
    #[serde(skip)]
    pub op_backoff: Backoff,
    /// Attempts of an operation failing with `ReferenceNotFound` before its object is quarantined
    /// (the referenced object never arrived); other retriable codes wait for an admin and never
    /// give up. Not configurable.
    #[serde(skip)]
    pub max_reference_attempts: u32,
    /// When the configuration enters quarantine, and how it probes. Not configurable.
    #[serde(skip)]
    pub quarantine: QuarantinePolicy,
    /// Client-side write pacing in operations per second (Entra: 7000/300 = 23.33); `None` = off.
    pub write_rate_limit: Option<f64>,
    /// How long in-flight batches may take after cancellation. Not configurable.
    #[serde(skip)]
    pub shutdown_grace: Duration,
    /// The longest wait a server-supplied delay (`Retry-After`, `retryAfterSeconds`) can impose;
    /// never above [`retry::MAX_SERVER_DELAY`] (one hour, the default). Not configurable.
    #[serde(skip)]
    pub max_server_delay: Duration,
    /// Return once every enqueued operation is acknowledged (drivers, tests, benchmarks). Not
    /// configurable.
    #[serde(skip)]
    pub stop_when_drained: bool,
    /// How often the agent sends a heartbeat, seconds (the tenant's announced interval wins when
    /// shorter). Read by the heartbeat task, not by the push loop.
    pub heartbeat_interval_secs: u64,
    /// How often `agent run` projects new journal events, milliseconds. Read by the projection
    /// task, not by the push loop.
    pub projection_tick_ms: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            max_batch_ops: cloudsync_api::MAX_BATCH_OPERATIONS,
            max_batch_bytes: 4 * 1024 * 1024,
            linger: Duration::from_millis(20),
            max_in_flight: 4,
            max_pending: 8 * cloudsync_api::MAX_BATCH_OPERATIONS,
            call_backoff: Backoff::default(),
            op_backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
                jitter: 0.5,
            },
            max_reference_attempts: 12,
            quarantine: QuarantinePolicy {
                after_failures: 10,
                after: Duration::from_secs(120),
                probe_interval: Duration::from_secs(60),
            },
            write_rate_limit: None,
            shutdown_grace: Duration::from_secs(10),
            max_server_delay: retry::MAX_SERVER_DELAY,
            stop_when_drained: false,
            heartbeat_interval_secs: 600,
            projection_tick_ms: 500,
        }
    }
}

/// A whole number of milliseconds.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_sets_its_keys_and_everything_else_keeps_its_default() {
        let c: PushConfig = toml::from_str(
            "max_batch_ops = 100\nmax_in_flight = 2\nlinger_ms = 7\nwrite_rate_limit = 23.5\nheartbeat_interval_secs = 1\nprojection_tick_ms = 100\n",
        )
        .expect("parses");
        let d = PushConfig::default();
        assert_eq!(
            (
                c.max_batch_ops,
                c.max_in_flight,
                c.linger,
                c.write_rate_limit
            ),
            (100, 2, Duration::from_millis(7), Some(23.5))
        );
        assert_eq!((c.heartbeat_interval_secs, c.projection_tick_ms), (1, 100));
        assert_eq!(c.shutdown_grace, d.shutdown_grace);
        assert_eq!(c.op_backoff, d.op_backoff);
        assert_eq!(c.max_pending, d.max_pending);
        assert_eq!(c.max_reference_attempts, d.max_reference_attempts);
        let empty: PushConfig = toml::from_str("").expect("parses");
        assert_eq!(empty.linger, d.linger);
        assert_eq!(empty.heartbeat_interval_secs, 600);
        assert!(toml::from_str::<PushConfig>("shutdown_grace = 3").is_err());
    }
}
