//! Self-service verification codes and the channel that stands in for SMS or e-mail.
//!
//! Enters: a synced user's request for a code, then the code back with a reset or unlock. Leaves:
//! one 6-digit code per user (a new one replaces the old), valid [`CODE_LIFETIME`], single use, at
//! most [`CODE_TRIES`] wrong tries (then locked until a new code is asked); and the channel: the codes
//! sent, which an administrator reads (`GET /api/v1/sspr/channel`) as a user would read an SMS.
//!
//! Memory only, bounded ([`MAX_CODES`] users, [`MAX_SENT`] channel messages, oldest dropped). Codes
//! are compared in constant time and never logged. Every time is an argument.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// How long a code is valid.
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Wrong tries before a code is locked.
pub const CODE_TRIES: u8 = 3;
/// The most users holding a code at once.
pub const MAX_CODES: usize = 10_000;
/// The most messages the channel keeps.
pub const MAX_SENT: usize = 1_000;

/// A message on the stand-in channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentCode {
    /// The user it was sent to.
    pub user_principal_name: String,
    /// The 6-digit code.
    pub code: String,
    /// When it was sent, RFC 3339.
    pub sent_date_time: String,
    /// When it stops being valid, RFC 3339.
    pub expires_date_time: String,
}

/// Why a code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// No code, an expired one, or one already used.
    #[error("There is no valid verification code for this user; request a new one.")]
    NoCode,
    /// The code is wrong.
    #[error("The verification code is wrong; {tries_left} tries left.")]
    Wrong {
        /// Tries left before the code locks.
        tries_left: u8,
    },
    /// Too many wrong tries.
    #[error("Too many wrong verification codes; request a new code.")]
    Locked,
}

/// Too many users hold codes.
#[derive(Debug, thiserror::Error)]
#[error("too many verification codes are outstanding")]
pub struct CodesFull;

#[derive(Debug)]
struct Code {
    digits: String,
    expires: Instant,
    tries_left: u8,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, Code>,
    sent: VecDeque<SentCode>,
}

/// The codes and the channel.
#[derive(Debug, Default)]
pub struct SsprCodes {
    inner: Mutex<Inner>,
}

impl SsprCodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a new code for `upn` (replacing any earlier one) and "sends" it on the channel.
    pub fn issue(&self, upn: &str, now: Instant) -> Result<(), CodesFull> {
        let mut inner = self.lock();
        inner.codes.retain(|_, c| now < c.expires);
        let key = upn.to_lowercase();
        if inner.codes.len() >= MAX_CODES && !inner.codes.contains_key(&key) {
            return Err(CodesFull);
        }
        let digits = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let sent_at = time::OffsetDateTime::now_utc();
        if inner.sent.len() >= MAX_SENT {
            inner.sent.pop_front();
        }
        inner.sent.push_back(SentCode {
            user_principal_name: upn.to_owned(),
            code: digits.clone(),
            sent_date_time: super::state::rfc3339(sent_at),
            expires_date_time: super::state::rfc3339(sent_at + CODE_LIFETIME),
        });
        inner.codes.insert(
            key,
            Code {
                digits,
                expires: now + CODE_LIFETIME,
                tries_left: CODE_TRIES,
            },
        );
        Ok(())
    }

    /// Checks `code` for `upn`; a right code is used up, a wrong one costs a try.
    pub fn verify(&self, upn: &str, code: &str, now: Instant) -> Result<(), CodeError> {
        let mut inner = self.lock();
        let key = upn.to_lowercase();
        let Some(entry) = inner.codes.get_mut(&key) else {
            return Err(CodeError::NoCode);
        };
        if now >= entry.expires {
            inner.codes.remove(&key);
            return Err(CodeError::NoCode);
        }
        if entry.tries_left == 0 {
            return Err(CodeError::Locked);
        }
        if bool::from(entry.digits.as_bytes().ct_eq(code.trim().as_bytes())) {
            inner.codes.remove(&key);
            return Ok(());
        }
        entry.tries_left -= 1;
        if entry.tries_left == 0 {
            Err(CodeError::Locked)
        } else {
            Err(CodeError::Wrong {
                tries_left: entry.tries_left,
            })
        }
    }

    /// The channel's messages for `upn`, oldest first.
    pub fn channel(&self, upn: &str) -> Vec<SentCode> {
        self.lock()
            .sent
            .iter()
            .filter(|s| s.user_principal_name.eq_ignore_ascii_case(upn))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn code_of(c: &SsprCodes, upn: &str) -> String {
        c.channel(upn).last().unwrap().code.clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_code_is_single_use() {
        let c = SsprCodes::default();
        let now = Instant::now();
        c.issue("U@x", now).unwrap();
        let code = code_of(&c, "u@X");
        assert_eq!(code.len(), 6);
        assert_eq!(c.verify("u@x", &code, now), Ok(()));
        assert_eq!(c.verify("u@x", &code, now), Err(CodeError::NoCode));
    }

    #[tokio::test(start_paused = true)]
    async fn three_wrong_tries_lock_the_code_and_a_new_code_unlocks() {
        let c = SsprCodes::default();
        let now = Instant::now();
        c.issue("u@x", now).unwrap();
        let code = code_of(&c, "u@x");
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert_eq!(
            c.verify("u@x", wrong, now),
            Err(CodeError::Wrong { tries_left: 2 })
        );
        assert_eq!(
            c.verify("u@x", wrong, now),
            Err(CodeError::Wrong { tries_left: 1 })
        );
        assert_eq!(c.verify("u@x", wrong, now), Err(CodeError::Locked));
        assert_eq!(c.verify("u@x", &code, now), Err(CodeError::Locked));
        c.issue("u@x", now).unwrap();
        let fresh = code_of(&c, "u@x");
        assert_eq!(c.verify("u@x", &fresh, now), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_code_expires() {
        let c = SsprCodes::default();
        let now = Instant::now();
        c.issue("u@x", now).unwrap();
        let code = code_of(&c, "u@x");
        assert_eq!(
            c.verify("u@x", &code, now + CODE_LIFETIME),
            Err(CodeError::NoCode)
        );
        assert_eq!(c.verify("v@x", &code, now), Err(CodeError::NoCode));
    }
}
