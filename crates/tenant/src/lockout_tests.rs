//! Unit tests of [`super`]: smart lockout with the time passed in (no sleeps).

use super::*;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn entra() -> Lockout {
    Lockout::new(LockoutPolicy::default())
}

fn fail(l: &Lockout, upn: &str, addr: IpAddr, now: Instant) -> Result<(), Refusal<()>> {
    l.guard("test", upn, addr, now, || Err::<(), ()>(()))
}

fn succeed(l: &Lockout, upn: &str, addr: IpAddr, now: Instant) -> Result<(), Refusal<()>> {
    l.guard("test", upn, addr, now, || Ok::<(), ()>(()))
}

#[test]
fn ten_failures_lock_the_account_from_that_address_for_sixty_seconds() {
    let l = entra();
    let t0 = Instant::now();
    for i in 0..10 {
        assert_eq!(fail(&l, "ga@x", A, t0), Err(Refusal::Failed(())), "try {i}");
    }
    // The 11th try, even with the right password, is refused without checking it.
    let mut checked = false;
    let r = l.guard("test", "GA@x", A, t0, || {
        checked = true;
        Ok::<(), ()>(())
    });
    assert!(!checked, "a locked account's password must not be checked");
    assert_eq!(
        r,
        Err(Refusal::Locked(Locked {
            remaining: Duration::from_secs(60)
        }))
    );
    // Another account from the same address and the same account from another address are free.
    assert_eq!(succeed(&l, "hia@x", A, t0), Ok(()));
    assert_eq!(succeed(&l, "ga@x", B, t0), Ok(()));
    // Still locked 59 s later; free at 60 s.
    assert!(l.check("ga@x", A, t0 + Duration::from_secs(59)).is_err());
    assert_eq!(succeed(&l, "ga@x", A, t0 + Duration::from_secs(60)), Ok(()));
}

#[test]
fn a_success_resets_the_count_and_a_slow_guesser_is_not_locked() {
    let l = entra();
    let t0 = Instant::now();
    for _ in 0..9 {
        let _ = fail(&l, "u@x", A, t0);
    }
    assert_eq!(succeed(&l, "u@x", A, t0), Ok(()));
    for _ in 0..9 {
        let _ = fail(&l, "u@x", A, t0);
    }
    assert!(
        l.check("u@x", A, t0).is_ok(),
        "9 after a success do not lock"
    );
    // Failures further apart than the window start a new count.
    let mut t = t0;
    for _ in 0..30 {
        t += Duration::from_secs(601);
        assert_eq!(fail(&l, "v@x", A, t), Err(Refusal::Failed(())));
    }
}

#[test]
fn repeated_lockouts_grow_up_to_the_cap() {
    let l = entra();
    let mut t = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..9 {
        let mut started = None;
        for _ in 0..10 {
            started = l.record_failure("ga@x", A, t);
        }
        let lock = started.expect("the 10th failure locks");
        seen.push(lock.remaining.as_secs());
        t += lock.remaining;
    }
    assert_eq!(seen, [60, 120, 240, 480, 960, 1920, 3840, 3840, 3840]);
}

#[test]
fn one_address_spraying_many_accounts_is_locked_for_all_when_counted() {
    let t0 = Instant::now();
    // Off by default: 100 accounts with one wrong password each lock nothing.
    let l = entra();
    for i in 0..100 {
        let _ = fail(&l, &format!("user{i}@x"), A, t0);
    }
    assert_eq!(succeed(&l, "fresh@x", A, t0), Ok(()));
    let l = Lockout::new(LockoutPolicy {
        address_threshold: 50,
        ..LockoutPolicy::default()
    });
    for i in 0..50 {
        assert_eq!(
            fail(&l, &format!("user{i}@x"), A, t0),
            Err(Refusal::Failed(()))
        );
    }
    assert!(matches!(
        succeed(&l, "fresh@x", A, t0),
        Err(Refusal::Locked(_))
    ));
    assert_eq!(succeed(&l, "fresh@x", B, t0), Ok(()));
}

#[test]
fn the_table_stays_bounded_under_a_spray_of_random_accounts() {
    let l = Lockout::new(LockoutPolicy {
        max_entries: 1000,
        address_threshold: 50,
        ..LockoutPolicy::default()
    });
    let t0 = Instant::now();
    // A victim locked out before the spray keeps its lockout (locked entries go last).
    for _ in 0..10 {
        l.record_failure("victim@x", B, t0);
    }
    for i in 0..20_000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        l.record_failure(&format!("{i}@spray"), addr, t0);
        assert!(l.len() <= 1000, "table grew to {}", l.len());
    }
    assert!(l.check("victim@x", B, t0).is_err());
    // Names are cut, so one huge name costs no more than MAX_ACCOUNT_CHARS.
    l.record_failure(&"x".repeat(1 << 20), A, t0);
    let table = l.lock();
    assert!(table.keys().all(|k| match k {
        Key::Account(name, _) => name.len() <= MAX_ACCOUNT_CHARS,
        Key::Address(_) => true,
    }));
}

/// Issue 18 review: the check and the count were separate steps, so attempts arriving together all
/// passed the check before any failure was counted and every one of them had its password checked.
#[test]
fn concurrent_guesses_check_no_more_passwords_than_the_threshold() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    let l = Arc::new(Lockout::new(LockoutPolicy {
        threshold: 3,
        ..LockoutPolicy::default()
    }));
    let checked = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(32));
    let now = Instant::now();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (l, checked, start) = (l.clone(), checked.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let _ = l.guard("test", "ga@x", A, now, || {
                    checked.fetch_add(1, Ordering::SeqCst);
                    // Stands in for PBKDF2: the password check takes a while, during which the
                    // other attempts arrive.
                    let mut x = 0u64;
                    for i in 0..2_000_000u64 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                    Err::<u64, u64>(x)
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(checked.load(Ordering::SeqCst), 3);
}

#[test]
fn a_success_takes_its_attempt_back_from_the_address_counter() {
    let l = Lockout::new(LockoutPolicy {
        address_threshold: 3,
        ..LockoutPolicy::default()
    });
    let t0 = Instant::now();
    for i in 0..10 {
        assert_eq!(
            succeed(&l, &format!("user{i}@x"), A, t0),
            Ok(()),
            "sign-in {i}"
        );
    }
    // Ten successes from one address count nothing: two failures still do not lock it.
    assert_eq!(fail(&l, "a@x", A, t0), Err(Refusal::Failed(())));
    assert_eq!(fail(&l, "b@x", A, t0), Err(Refusal::Failed(())));
    assert_eq!(succeed(&l, "c@x", A, t0), Ok(()));
}

/// Issue 18 review: junk names sprayed from the attacker's address filled the table and evicted
/// the victim's count (the oldest unlocked entry), so the guessing could start over.
#[test]
fn a_spray_of_junk_names_does_not_evict_a_victims_count() {
    let l = Lockout::new(LockoutPolicy {
        max_entries: 8,
        ..LockoutPolicy::default()
    });
    let t0 = Instant::now();
    for i in 0..9 {
        assert_eq!(fail(&l, "ga@x", A, t0), Err(Refusal::Failed(())), "try {i}");
    }
    for i in 0..64 {
        let _ = fail(&l, &format!("junk{i}@x"), A, t0 + Duration::from_secs(1));
    }
    assert!(l.len() <= 8);
    // The victim's tenth wrong password still locks the account.
    let _ = fail(&l, "ga@x", A, t0 + Duration::from_secs(2));
    assert!(
        matches!(
            succeed(&l, "ga@x", A, t0 + Duration::from_secs(3)),
            Err(Refusal::Locked(_))
        ),
        "the victim's count was evicted"
    );
}
