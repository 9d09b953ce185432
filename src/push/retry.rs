//! Retry timing: exponential backoff with jitter that honours `Retry-After`.
//!
//! reqwest's built-in retry neither reads `Retry-After` nor knows about per-operation results, so the
//! push stage computes every delay here, and the caller sleeps on tokio's clock (pausable in tests).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shape of a backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// The largest delay (also the slow-probe interval when the configuration is quarantined).
    pub cap: Duration,
    /// Fraction of each delay that is randomised (0 = none, 0.5 = "equal jitter").
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The un-jittered delay before retry number `attempt` (1 = first retry): base · 2^(attempt-1), capped.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `attempt`: the nominal delay with its jitter fraction replaced
    /// by a uniform random part (`random` in 0..1), but never less than `retry_after` when the server
    /// said how long to wait. A server's `Retry-After` wins over the cap.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: f64) -> Duration {
        let nominal = self.nominal(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let fixed = nominal.mul_f64(1.0 - jitter);
        let random_part = nominal.mul_f64(jitter * random.clamp(0.0, 1.0));
        let backoff = fixed + random_part;
        match retry_after {
            // Honour the server exactly, plus a little jitter so many clients do not return at once.
            Some(ra) => ra + self.base.mul_f64(random.clamp(0.0, 1.0) * jitter),
            None => backoff,
        }
    }

    /// [`Backoff::delay`] with a fresh random number.
    pub fn delay_random(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, retry_after, rand::random::<f64>())
    }
}

/// Parses a `Retry-After` header value: delay-seconds (the HTTP-date form is not used by the API).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(24 * 3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            jitter: 0.5,
        }
    }

    #[test]
    fn doubles_then_caps() {
        let want = [100, 200, 400, 800, 1600, 2000, 2000];
        for (i, ms) in want.iter().enumerate() {
            assert_eq!(b().nominal(i as u32 + 1), Duration::from_millis(*ms));
        }
        assert_eq!(b().nominal(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        assert_eq!(b().delay(3, None, 0.0), Duration::from_millis(200));
        assert_eq!(b().delay(3, None, 1.0), Duration::from_millis(400));
        assert_eq!(b().delay(3, None, 0.5), Duration::from_millis(300));
    }

    #[test]
    fn retry_after_wins_even_over_the_cap() {
        let d = b().delay(1, Some(Duration::from_secs(7)), 0.0);
        assert_eq!(d, Duration::from_secs(7));
        let d = b().delay(9, Some(Duration::from_secs(7)), 1.0);
        assert_eq!(d, Duration::from_millis(7050));
        assert_eq!(parse_retry_after(" 22 "), Some(Duration::from_secs(22)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
