//! Retry timing: exponential backoff with jitter that honours `Retry-After`.
//!
//! reqwest's built-in retry neither reads `Retry-After` nor knows about per-operation results, so the
//! push stage computes every delay here, and the caller sleeps on tokio's clock (pausable in tests).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The longest the tenant can make the agent wait, whatever it sends (`Retry-After` header, a
/// per-item `retryAfterSeconds`, a token lifetime): one hour. Entra's write budgets refill over
/// 2.5 to 5 minutes (`docs/push.md` § Throttling), so an honest throttle never asks for more; a
/// larger value is a broken or hostile answer, and an hour is the longest an admin should see
/// delivery stand still for it (the status shows the hold; the agent then simply asks again).
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(3600);

/// A delay the server sent in whole seconds, capped at `cap` (itself never above
/// [`MAX_SERVER_DELAY`]). Logs a warning when the server asked for more.
pub fn server_delay(seconds: u64, cap: Duration) -> Duration {
    let cap = cap.min(MAX_SERVER_DELAY);
    let asked = Duration::from_secs(seconds);
    if asked > cap {
        tracing::warn!(asked_seconds = seconds, capped_to = ?cap, "The tenant asked for a longer wait than the agent accepts; waiting the maximum instead.");
        cap
    } else {
        asked
    }
}

/// `now + delay` without overflow: a delay past the clock's range ends at `now + MAX_SERVER_DELAY`
/// (and, should even that overflow, at `now`). Every deadline built from a server's number goes
/// through here.
pub fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .or_else(|| now.checked_add(MAX_SERVER_DELAY))
        .unwrap_or(now)
}

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
            // (Saturating: `ra` comes from the server; callers cap it with `server_delay`.)
            Some(ra) => ra.saturating_add(self.base.mul_f64(random.clamp(0.0, 1.0) * jitter)),
            None => backoff,
        }
    }

    /// [`Backoff::delay`] with a fresh random number.
    pub fn delay_random(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, retry_after, rand::random::<f64>())
    }
}

/// Parses a `Retry-After` header value: delay-seconds (the HTTP-date form is not used by the API),
/// capped at [`MAX_SERVER_DELAY`]. A number past `u64` reads as the maximum, not as absent.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
    Some(server_delay(seconds, MAX_SERVER_DELAY))
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

    #[test]
    fn server_delays_are_capped_and_deadlines_never_overflow() {
        let hour = Duration::from_secs(3600);
        // Header: u64::MAX and a number past u64 both read as the hour; "-1" is not a delay.
        assert_eq!(parse_retry_after("18446744073709551615"), Some(hour));
        assert_eq!(parse_retry_after("99999999999999999999999"), Some(hour));
        assert_eq!(parse_retry_after("3599"), Some(Duration::from_secs(3599)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(""), None);
        // Body: capped at the configured cap, never above the hour.
        assert_eq!(server_delay(u64::MAX, hour), hour);
        assert_eq!(server_delay(u64::MAX, Duration::MAX), hour);
        assert_eq!(
            server_delay(30, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(server_delay(7, hour), Duration::from_secs(7));
        // A delay near Duration::MAX plus jitter saturates instead of panicking.
        assert_eq!(b().delay(1, Some(Duration::MAX), 1.0), Duration::MAX);
        // Deadlines: far past the clock's range ends an hour out.
        let now = Instant::now();
        assert_eq!(deadline_after(now, Duration::MAX), now + hour);
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
