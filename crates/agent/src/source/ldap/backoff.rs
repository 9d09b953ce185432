//! Exponential reconnect backoff with jitter: 1 s, 2 s, 4 s … capped at 60 s, ±20 %.

use std::time::Duration;

use rand::Rng;

/// Backoff state for one connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next delay (without jitter), advancing the attempt counter.
    pub fn next_base_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay with ±20 % jitter so that several agents do not reconnect in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next_base_delay();
        let jitter = rand::rng().random_range(0.8..1.2);
        d.mul_f64(jitter)
    }

    /// Call after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let seq: Vec<u64> = (0..5).map(|_| b.next_base_delay().as_secs()).collect();
        assert_eq!(seq, [1, 2, 4, 5, 5]);
        b.reset();
        let d = b.next_delay();
        assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200));
    }
}
