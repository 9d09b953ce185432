//! Client-side write pacing: keeps the agent at or below the tenant's documented write ceiling
//! (7,000 writes per 5 minutes for Entra), instead of bursting into 429s.
//!
//! A token bucket of `rate` operations per second whose capacity is one full batch and which
//! starts EMPTY: the first batch of `n` operations waits `n / rate`, so over any run the agent's
//! average write rate measured from its start can never exceed `rate`.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket for operations.
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Pacer {
    /// A pacer of `rate` operations per second, holding at most `capacity` operations.
    pub fn new(rate: f64, capacity: usize, now: Instant) -> Pacer {
        Pacer {
            rate: rate.max(f64::MIN_POSITIVE),
            capacity: (capacity.max(1)) as f64,
            tokens: 0.0,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
    }

    /// Zero when `ops` operations may go now; otherwise how long until they may.
    pub fn wait_for(&mut self, ops: usize, now: Instant) -> Duration {
        self.refill(now);
        let need = (ops as f64).min(self.capacity);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            // A tiny configured rate must not overflow the conversion: wait at most an hour.
            Duration::try_from_secs_f64((need - self.tokens) / self.rate)
                .unwrap_or(super::retry::MAX_SERVER_DELAY)
                .min(super::retry::MAX_SERVER_DELAY)
        }
    }

    /// Spends `ops` operations (may go negative for a batch larger than the capacity).
    pub fn spend(&mut self, ops: usize, now: Instant) {
        self.refill(now);
        self.tokens -= ops as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_empty_and_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100.0, 500, t0);
        assert_eq!(p.wait_for(500, t0), Duration::from_secs(5));
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(p.wait_for(500, t5), Duration::ZERO);
        p.spend(500, t5);
        assert_eq!(p.wait_for(200, t5), Duration::from_secs(2));
        // Never more than the capacity accumulates.
        let later = t5 + Duration::from_secs(3600);
        assert_eq!(p.wait_for(500, later), Duration::ZERO);
        p.spend(500, later);
        assert_eq!(p.wait_for(1, later), Duration::from_millis(10));
    }
}
