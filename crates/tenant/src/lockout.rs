//! Smart lockout for every password check of the tenant: the password grant, `/{tenant}/signin`
//! and the portal's sign-in form.
//!
//! Enters: the account name a caller typed, the caller's source address, the time (an input, so
//! tests do not sleep) and the outcome of the password check. Leaves: "go ahead" or
//! [`Locked`] (the caller answers AADSTS50053), and one WARN log line per failed or refused
//! attempt (upn, source address, route, reason, remaining lockout; never the password).
//!
//! # What is modelled (Entra smart lockout, simplified)
//! - **Account from an address** (`upn` + source IP): after `threshold` failures (default 10,
//!   Entra's) that are at most `window` apart, that account is locked **from that address** for
//!   `duration` (default 60 s, Entra's). This stands in for Entra's familiar/unfamiliar locations:
//!   an attacker guessing from one address does not lock the real user out at another.
//! - **Address** (source IP alone), off by default as in Entra's smart lockout: with
//!   `address_threshold` > 0, failures over all accounts from one address count too, and past it
//!   every account is refused from that address (password spraying). Off by default because lab
//!   tests sign in hundreds of synced users from 127.0.0.1, each also with a wrong password.
//! - Each lockout of the same key doubles the next one's duration (60 s, 120 s, 240 s, …, at most
//!   `MAX_GROWTH` times the base), as Entra's lockout grows on repeats; a key quiet for a whole
//!   `window` (no failure, no lockout) is forgotten, growth included. A success from the same
//!   account and address resets that account's counter and growth; it does not reset the
//!   address counter (a valid account must not wash a spray's record).
//! - While locked, the password is not checked at all: a correct password is refused too, and
//!   the attempt is logged but not counted (it does not extend the lockout).
//! - Unknown accounts are counted like known ones, so a lockout answer does not reveal which
//!   accounts exist.
//!
//! # Memory bound
//! The table holds at most `max_entries` keys. When full, expired entries are dropped; if still
//! full, the least recently failed unlocked entries go first, then the oldest locked ones. Account
//! names are truncated to [`MAX_ACCOUNT_CHARS`], so one entry is a few hundred bytes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The AADSTS50053 text, as Entra words it.
pub const LOCKED_MESSAGE: &str = "Your account is locked because the user tried to sign in too many times with an incorrect user ID or password.";

/// A repeated lockout's duration grows at most to this many times the base duration.
pub const MAX_GROWTH: u32 = 64;
/// Account names longer than this are cut (AD allows 113 characters in a UPN).
pub const MAX_ACCOUNT_CHARS: usize = 256;

/// The lockout tunables (`tenant serve --lockout-threshold/--lockout-duration-secs/--lockout-window-secs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that lock an account from an address (Entra's default: 10).
    pub threshold: u32,
    /// The first lockout's length (Entra's default: 60 s); doubles on each repeat.
    pub duration: Duration,
    /// A failure more than this long after the previous one starts a new count.
    pub window: Duration,
    /// Failures from one address over all accounts that lock the address; 0 = not counted.
    pub address_threshold: u32,
    /// At most this many keys are tracked.
    pub max_entries: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            threshold: 10,
            duration: Duration::from_secs(60),
            window: Duration::from_secs(600),
            address_threshold: 0,
            max_entries: 65_536,
        }
    }
}

/// A refused attempt: the key is locked for `remaining` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// Time left until the lockout ends.
    pub remaining: Duration,
}

/// Why a guarded sign-in did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal<E> {
    /// Locked out: answer AADSTS50053. The password was not checked.
    Locked(Locked),
    /// The check failed with the caller's own error (counted as a failure).
    Failed(E),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String, IpAddr),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
    /// Lockouts so far (sets the next duration).
    lockouts: u32,
}

impl Entry {
    /// The end of the last activity: the last failure, or the end of a lockout after it.
    fn quiet_since(&self) -> Instant {
        self.locked_until
            .map_or(self.last_failure, |until| until.max(self.last_failure))
    }
}

/// The failure table.
#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    table: Mutex<HashMap<Key, Entry>>,
}

fn account_key(account: &str, address: IpAddr) -> Key {
    let name: String = account
        .trim()
        .chars()
        .take(MAX_ACCOUNT_CHARS)
        .collect::<String>()
        .to_lowercase();
    Key::Account(name, address)
}

impl Lockout {
    /// An empty table with `policy`.
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys an attempt of `account` from `address` counts against.
    fn keys(&self, account: &str, address: IpAddr) -> Vec<Key> {
        let mut keys = vec![account_key(account, address)];
        if self.policy.address_threshold > 0 {
            keys.push(Key::Address(address));
        }
        keys
    }

    fn threshold(&self, key: &Key) -> u32 {
        match key {
            Key::Account(..) => self.policy.threshold.max(1),
            Key::Address(_) => self.policy.address_threshold.max(1),
        }
    }

    /// Whether `account` may try a password from `address` at `now`.
    pub fn check(&self, account: &str, address: IpAddr, now: Instant) -> Result<(), Locked> {
        self.check_in(&self.lock(), account, address, now)
    }

    fn check_in(
        &self,
        table: &HashMap<Key, Entry>,
        account: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<(), Locked> {
        let mut remaining = Duration::ZERO;
        for key in self.keys(account, address) {
            if let Some(until) = table.get(&key).and_then(|e| e.locked_until)
                && until > now
            {
                remaining = remaining.max(until - now);
            }
        }
        if remaining.is_zero() {
            Ok(())
        } else {
            Err(Locked { remaining })
        }
    }

    /// Counts a failed password for `account` from `address`; returns the lockout it started.
    pub fn record_failure(&self, account: &str, address: IpAddr, now: Instant) -> Option<Locked> {
        self.count_failure_in(&mut self.lock(), account, address, now)
    }

    fn count_failure_in(
        &self,
        table: &mut HashMap<Key, Entry>,
        account: &str,
        address: IpAddr,
        now: Instant,
    ) -> Option<Locked> {
        let mut started: Option<Locked> = None;
        for key in self.keys(account, address) {
            if !table.contains_key(&key) {
                self.make_room(table, now);
            }
            let threshold = self.threshold(&key);
            let entry = table.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
                lockouts: 0,
            });
            if now.saturating_duration_since(entry.quiet_since()) > self.policy.window {
                // Quiet for a whole window: the count and the growth are forgotten.
                entry.failures = 0;
                entry.lockouts = 0;
            }
            if entry.locked_until.is_some_and(|until| until <= now) {
                entry.locked_until = None;
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if entry.failures >= threshold && entry.locked_until.is_none() {
                let growth = 1u32 << entry.lockouts.min(MAX_GROWTH.trailing_zeros());
                let duration = self.policy.duration.saturating_mul(growth);
                entry.locked_until = now.checked_add(duration);
                entry.lockouts = entry.lockouts.saturating_add(1);
                entry.failures = 0;
                let lock = Locked {
                    remaining: duration,
                };
                started = Some(started.map_or(lock, |s| Locked {
                    remaining: s.remaining.max(duration),
                }));
            }
        }
        started
    }

    /// A correct password: resets the account's counter and growth at this address.
    pub fn record_success(&self, account: &str, address: IpAddr) {
        self.lock().remove(&account_key(account, address));
    }

    /// A correct password after [`Self::guard`] counted the attempt up front: resets the
    /// account's counter at this address and takes the attempt back from the address counter.
    fn success_after_counting(&self, account: &str, address: IpAddr) {
        let mut table = self.lock();
        table.remove(&account_key(account, address));
        if self.policy.address_threshold > 0
            && let Some(entry) = table.get_mut(&Key::Address(address))
        {
            entry.failures = entry.failures.saturating_sub(1);
        }
    }

    /// Runs `verify` (the password check) unless `account` is locked out from `address`, and
    /// counts and logs the result. `route` names the caller in the log.
    pub fn guard<T, E>(
        &self,
        route: &'static str,
        account: &str,
        address: IpAddr,
        now: Instant,
        verify: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, Refusal<E>> {
        // Debug-formatted and cut: a typed name cannot forge log lines or flood the log.
        let shown: String = account.chars().take(MAX_ACCOUNT_CHARS).collect();
        // The check and the count are one step under the lock, and the attempt counts as a failure
        // before the password is checked (a success takes it back): concurrent guesses each see the
        // others, so no more than the threshold are ever checked, however many arrive at once.
        let counted = {
            let mut table = self.lock();
            match self.check_in(&table, account, address, now) {
                Ok(()) => Ok(self.count_failure_in(&mut table, account, address, now)),
                Err(locked) => Err(locked),
            }
        };
        if let Err(locked) = counted {
            tracing::warn!(
                route,
                upn = ?shown,
                source = %address,
                reason = "locked",
                lockout_remaining_secs = locked.remaining.as_secs_f64().ceil() as u64,
                "Sign-in refused: the account is locked out (AADSTS50053)."
            );
            return Err(Refusal::Locked(locked));
        }
        let started = counted.ok().flatten();
        match verify() {
            Ok(value) => {
                self.success_after_counting(account, address);
                Ok(value)
            }
            Err(err) => {
                tracing::warn!(
                    route,
                    upn = ?shown,
                    source = %address,
                    reason = "invalid_credentials",
                    lockout_remaining_secs = started.map_or(0, |l| l.remaining.as_secs()),
                    "Sign-in failed: invalid username or password."
                );
                Err(Refusal::Failed(err))
            }
        }
    }

    /// Frees at least one slot when the table is full (expired first, then the oldest).
    fn make_room(&self, table: &mut HashMap<Key, Entry>, now: Instant) {
        let cap = self.policy.max_entries.max(1);
        if table.len() < cap {
            return;
        }
        let window = self.policy.window;
        table.retain(|_, e| now.saturating_duration_since(e.quiet_since()) <= window);
        if table.len() < cap {
            return;
        }
        // Drop a quarter at once so a spray does not pay a full scan per new key: the entries that
        // matter least go first — unlocked before locked, no past lockouts before some, fewer
        // failures before more, older before newer. Junk names sprayed to push a victim's count
        // out of the table have one failure each, so they go before the victim's nine.
        let mut order: Vec<((bool, u32, u32, Instant), Key)> = table
            .iter()
            .map(|(k, e)| {
                let locked = e.locked_until.is_some_and(|until| until > now);
                ((locked, e.lockouts, e.failures, e.last_failure), k.clone())
            })
            .collect();
        order.sort_by_key(|(rank, _)| *rank);
        let drop = (cap / 4).max(1);
        for (_, key) in order.into_iter().take(drop) {
            table.remove(&key);
        }
    }

    /// Entries tracked (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caller's source address, from the connection (never from `X-Forwarded-For`, which a
/// caller could forge). `0.0.0.0` when the router runs without connection info (in process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
#[path = "lockout_tests.rs"]
mod tests;
