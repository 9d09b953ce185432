//! Throttling and fault injection, configurable at start (flags) and at run time
//! (`GET|PUT /admin/faults`, Global Administrator).
//!
//! - **Write budget**: a token bucket per tenant; each operation in a batch costs one token. The
//!   `realistic` profile models the documented Entra limit of 7,000 writes per 5 minutes (capacity
//!   7,000, refill 7,000/300 s). A batch takes the whole tokens there are, up to its size: when only
//!   part fits, the operations that fit are applied in order and the rest are answered with per-item
//!   `Throttled` errors whose `retryAfterSeconds` is the time until the rest would fit (at most a
//!   full refill); when not one token is there, the batch is refused whole with 429 and `Retry-After`.
//! - **Read budget**: a second bucket for Graph reads; each request, and each item of a `$batch`,
//!   costs one token. A throttled `$batch` item gets its own 429 with `Retry-After`.
//! - **Faults** on `/api/*` and `/v1.0/*`: `errorRate` (0..1) answers 503 + `Retry-After: 1` before the
//!   handler runs; `latencyMs` delays every request; `dropRate` (0..1) runs the handler and then cuts
//!   the connection before the response body — the case where a write was applied but its
//!   acknowledgement was lost; `throttleItems` answers every operation of the next `batches`
//!   write batches with a per-item `Throttled` whose `retryAfterSeconds` is the given number, so
//!   clients can be tried against the numbers a broken cloud might send.
//! - **Bounds** (a `PUT` outside them is a 400 naming the field and the bound): `latencyMs` at
//!   most [`MAX_LATENCY_MS`] (one minute; a latency of 10^15 ms hung every request), bucket
//!   `capacity` 1..=[`MAX_BUCKET`] and `refillPerSecond` [`MIN_REFILL_PER_SECOND`]..=[`MAX_BUCKET`]
//!   (so a bucket's own `Retry-After` stays below about 32 years instead of saturating at 2^64 s),
//!   `throttleItems.batches` at most [`MAX_THROTTLED_BATCHES`]. `throttleItems.retryAfterSeconds`
//!   is deliberately any `u64`: the tenant never waits on it, it only travels to the client.

use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The largest injected latency, in milliseconds: one minute.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// The largest bucket capacity and refill rate.
pub const MAX_BUCKET: f64 = 1e9;
/// The slowest refill: one token per 1,000 seconds.
pub const MIN_REFILL_PER_SECOND: f64 = 0.001;
/// The most batches `throttleItems` can answer.
pub const MAX_THROTTLED_BATCHES: u64 = 1_000_000;

/// Per-item throttling of the next write batches, whatever the budget (`throttleItems`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemThrottle {
    /// How many of the next write batches are answered this way (replays of a stored batch do
    /// not count: they return the stored results).
    pub batches: u64,
    /// The `retryAfterSeconds` of every operation's `Throttled` error.
    pub retry_after_seconds: u64,
}

/// A token bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketSettings {
    /// Maximum tokens (burst).
    pub capacity: f64,
    /// Tokens added per second.
    pub refill_per_second: f64,
}

/// Everything that can be changed at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Write budget; `None` means unlimited.
    #[serde(default)]
    pub writes: Option<BucketSettings>,
    /// Read budget; `None` means unlimited.
    #[serde(default)]
    pub reads: Option<BucketSettings>,
    /// Fraction of requests answered with an injected 503.
    #[serde(default)]
    pub error_rate: f64,
    /// Added latency per request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Fraction of requests whose connection is cut after the handler ran.
    #[serde(default)]
    pub drop_rate: f64,
    /// Answer every operation of the next write batches with a per-item `Throttled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_items: Option<ItemThrottle>,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            writes: None,
            reads: None,
            error_rate: 0.0,
            latency_ms: 0,
            drop_rate: 0.0,
            throttle_items: None,
        }
    }
}

impl ThrottleSettings {
    /// The `realistic` profile: 7,000 writes per 5 minutes; 3,500 reads per 10 seconds.
    pub fn realistic() -> ThrottleSettings {
        ThrottleSettings {
            writes: Some(BucketSettings {
                capacity: 7000.0,
                refill_per_second: 7000.0 / 300.0,
            }),
            reads: Some(BucketSettings {
                capacity: 3500.0,
                refill_per_second: 350.0,
            }),
            ..ThrottleSettings::default()
        }
    }

    /// Checks ranges; returns every problem at once, each naming its field and bound.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (name, rate) in [("errorRate", self.error_rate), ("dropRate", self.drop_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!("{name} must be between 0 and 1"));
            }
        }
        if self.latency_ms > MAX_LATENCY_MS {
            problems.push(format!(
                "latencyMs must be at most {MAX_LATENCY_MS} (one minute)"
            ));
        }
        for (name, bucket) in [("writes", self.writes), ("reads", self.reads)] {
            if let Some(b) = bucket {
                // `contains` is false for NaN, so NaN and infinities are refused too.
                if !(1.0..=MAX_BUCKET).contains(&b.capacity) {
                    problems.push(format!(
                        "{name}.capacity must be between 1 and {MAX_BUCKET:e}"
                    ));
                }
                if !(MIN_REFILL_PER_SECOND..=MAX_BUCKET).contains(&b.refill_per_second) {
                    problems.push(format!(
                        "{name}.refillPerSecond must be between {MIN_REFILL_PER_SECOND} and {MAX_BUCKET:e}"
                    ));
                }
            }
        }
        if let Some(t) = self.throttle_items
            && !(1..=MAX_THROTTLED_BATCHES).contains(&t.batches)
        {
            problems.push(format!(
                "throttleItems.batches must be between 1 and {MAX_THROTTLED_BATCHES}"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// What [`Throttle::take_up_to`] granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Tokens taken: at least one, at most the cost asked for (zero only under `throttleItems`).
    pub granted: u64,
    /// When less than asked was granted: seconds until the rest would fit.
    pub rest_retry_after: Option<u64>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes `cost` tokens, or says how many seconds until they are there.
    fn take(&mut self, settings: BucketSettings, cost: f64, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * settings.refill_per_second).min(settings.capacity);
        self.at = now;
        if cost > settings.capacity {
            // Never fits: tell the client to wait a full refill (it should split the batch).
            return Err((settings.capacity / settings.refill_per_second)
                .ceil()
                .max(1.0) as u64);
        }
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(self.wait_for(settings, cost))
        }
    }

    /// Takes as many whole tokens as there are, up to `cost`; `Err(seconds)` when not one is there.
    fn take_up_to(
        &mut self,
        settings: BucketSettings,
        cost: u64,
        now: Instant,
    ) -> Result<Grant, u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * settings.refill_per_second).min(settings.capacity);
        self.at = now;
        // `tokens` is never negative, so the float-to-int cast (saturating) is exact here.
        let granted = (self.tokens.floor() as u64).min(cost);
        if granted == 0 {
            return Err(self.wait_for(settings, cost as f64));
        }
        self.tokens -= granted as f64;
        let rest = cost - granted;
        Ok(Grant {
            granted,
            rest_retry_after: (rest > 0).then(|| self.wait_for(settings, rest as f64)),
        })
    }

    /// Whole seconds (at least 1) until `cost` tokens are there; a cost above the capacity waits
    /// for a full bucket (the client has to split).
    fn wait_for(&self, settings: BucketSettings, cost: f64) -> u64 {
        let missing = (cost.min(settings.capacity) - self.tokens).max(0.0);
        (missing / settings.refill_per_second).ceil().max(1.0) as u64
    }
}

#[derive(Debug)]
struct Inner {
    settings: ThrottleSettings,
    writes: Bucket,
    reads: Bucket,
    /// Batches `throttleItems` still answers.
    throttled_batches_left: u64,
}

/// The live throttle and fault state.
#[derive(Debug)]
pub struct Throttle {
    inner: Mutex<Inner>,
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Provisioning writes.
    Writes,
    /// Graph reads.
    Reads,
}

impl Throttle {
    /// A throttle with full buckets.
    pub fn new(settings: ThrottleSettings) -> Throttle {
        let now = Instant::now();
        let full = |b: Option<BucketSettings>| Bucket {
            tokens: b.map_or(0.0, |b| b.capacity),
            at: now,
        };
        Throttle {
            inner: Mutex::new(Inner {
                writes: full(settings.writes),
                reads: full(settings.reads),
                throttled_batches_left: settings.throttle_items.map_or(0, |t| t.batches),
                settings,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another request panicked mid-update of plain numbers.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current settings.
    pub fn settings(&self) -> ThrottleSettings {
        self.lock().settings.clone()
    }

    /// Replaces the settings; buckets restart full.
    pub fn set(&self, settings: ThrottleSettings) {
        *self.lock() = Throttle::new(settings)
            .inner
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Takes `cost` tokens from a budget, or returns the seconds to wait (`Retry-After`).
    pub fn take(&self, budget: Budget, cost: u64) -> Result<(), u64> {
        self.take_at(budget, cost, Instant::now())
    }

    /// [`Throttle::take`] with an explicit clock (tests).
    pub fn take_at(&self, budget: Budget, cost: u64, now: Instant) -> Result<(), u64> {
        let mut inner = self.lock();
        let Inner {
            settings,
            writes,
            reads,
            ..
        } = &mut *inner;
        let (bucket, shape) = match budget {
            Budget::Writes => (writes, settings.writes),
            Budget::Reads => (reads, settings.reads),
        };
        match shape {
            None => Ok(()),
            Some(shape) => bucket.take(shape, cost as f64, now),
        }
    }
}

impl Throttle {
    /// Takes up to `cost` whole tokens from a budget: as many as are there. `Err(seconds)` until
    /// the whole `cost` would fit (at most a full bucket) when not one token is there.
    pub fn take_up_to(&self, budget: Budget, cost: u64) -> Result<Grant, u64> {
        self.take_up_to_at(budget, cost, Instant::now())
    }

    /// [`Throttle::take_up_to`] with an explicit clock (tests).
    pub fn take_up_to_at(&self, budget: Budget, cost: u64, now: Instant) -> Result<Grant, u64> {
        let mut inner = self.lock();
        let Inner {
            settings,
            writes,
            reads,
            throttled_batches_left,
        } = &mut *inner;
        if budget == Budget::Writes
            && *throttled_batches_left > 0
            && let Some(t) = settings.throttle_items
        {
            *throttled_batches_left -= 1;
            return Ok(Grant {
                granted: 0,
                rest_retry_after: Some(t.retry_after_seconds),
            });
        }
        let (bucket, shape) = match budget {
            Budget::Writes => (writes, settings.writes),
            Budget::Reads => (reads, settings.reads),
        };
        match shape {
            None => Ok(Grant {
                granted: cost,
                rest_retry_after: None,
            }),
            Some(shape) => bucket.take_up_to(shape, cost, now),
        }
    }
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
