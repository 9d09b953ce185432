//! Opening a store whose file lock a handle dropped a moment ago may still hold. Enters: the call
//! that opens the store and how to recognise a lock conflict in its error. Leaves: the opened store,
//! or the last error (a lock conflict once the wait is over).
//!
//! sled releases the file lock of a dropped handle asynchronously (its I/O threads still hold the
//! file, typically for milliseconds), so a reopen right after a close (a restart, a test's reboot)
//! polls for the lock instead of failing. The journal, the outbox and the tenant's store open this way.

use std::time::{Duration, Instant};

/// How long to wait before trying a held lock again.
const POLL: Duration = Duration::from_millis(10);

/// Whether `error` is sled's refusal of a file lock that another handle holds.
pub fn is_lock_conflict(error: &std::io::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

/// Calls `open` until it returns anything but an error that `is_locked` recognises, or until `wait`
/// has passed, and returns that last result. Blocks the calling thread while it waits.
pub fn open_waiting_for_lock<T, E>(
    wait: Duration,
    mut open: impl FnMut() -> Result<T, E>,
    is_locked: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = Instant::now() + wait;
    loop {
        match open() {
            Err(e) if is_locked(&e) && Instant::now() < deadline => std::thread::sleep(POLL),
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Fake {
        Locked,
        Other,
    }

    #[test]
    fn a_lock_released_within_the_wait_is_waited_for() {
        let mut calls = 0;
        let opened = open_waiting_for_lock(
            Duration::from_secs(60),
            || {
                calls += 1;
                if calls < 3 {
                    Err(Fake::Locked)
                } else {
                    Ok(calls)
                }
            },
            |e| *e == Fake::Locked,
        );
        assert_eq!(opened, Ok(3));
    }

    #[test]
    fn other_errors_and_a_lock_held_past_the_wait_are_returned() {
        let mut calls = 0;
        let other = open_waiting_for_lock(
            Duration::from_secs(60),
            || -> Result<(), Fake> {
                calls += 1;
                Err(Fake::Other)
            },
            |e| *e == Fake::Locked,
        );
        assert_eq!((other, calls), (Err(Fake::Other), 1));
        let held = open_waiting_for_lock(
            Duration::ZERO,
            || -> Result<(), Fake> { Err(Fake::Locked) },
            |e| *e == Fake::Locked,
        );
        assert_eq!(held, Err(Fake::Locked));
    }

    #[test]
    fn sled_s_lock_refusal_is_recognised() {
        // sled's text (sled 0.34 `config.rs`); the outbox and journal tests hold a real lock.
        let refusal = std::io::Error::other("could not acquire lock on \"/x/db\": Os { code: 11 }");
        assert!(is_lock_conflict(&refusal));
        assert!(!is_lock_conflict(&std::io::Error::other("disk full")));
    }
}
