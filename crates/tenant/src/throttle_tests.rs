//! Unit tests of the throttle: budgets, grants, fault bounds and `throttleItems`.
use std::time::Duration;

use super::*;

#[test]
fn realistic_profile_allows_7000_writes_then_asks_to_wait() {
    let t = Throttle::new(ThrottleSettings::realistic());
    let start = Instant::now();
    for _ in 0..14 {
        assert_eq!(t.take_at(Budget::Writes, 500, start), Ok(()));
    }
    // 7,000 spent; 500 more need 500 / (7000/300) = 21.4 s -> 22.
    assert_eq!(t.take_at(Budget::Writes, 500, start), Err(22));
    // After 30 s, 700 tokens have refilled.
    assert_eq!(
        t.take_at(Budget::Writes, 500, start + Duration::from_secs(30)),
        Ok(())
    );
    assert_eq!(
        t.take_at(Budget::Writes, 500, start + Duration::from_secs(30)),
        Err(13)
    );
    // Reads are a separate budget.
    assert_eq!(t.take_at(Budget::Reads, 1, start), Ok(()));
}

#[test]
fn take_up_to_grants_the_whole_tokens_there_are() {
    // 10 tokens, 0.5 per second.
    let t = Throttle::new(ThrottleSettings {
        writes: Some(BucketSettings {
            capacity: 10.0,
            refill_per_second: 0.5,
        }),
        ..ThrottleSettings::default()
    });
    let start = Instant::now();
    let all = |granted| Grant {
        granted,
        rest_retry_after: None,
    };
    assert_eq!(t.take_up_to_at(Budget::Writes, 7, start), Ok(all(7)));
    // 3 left of 5 asked: the other 2 need 2 / 0.5 = 4 s.
    assert_eq!(
        t.take_up_to_at(Budget::Writes, 5, start),
        Ok(Grant {
            granted: 3,
            rest_retry_after: Some(4)
        })
    );
    // Empty: refused whole; 5 tokens need 10 s.
    assert_eq!(t.take_up_to_at(Budget::Writes, 5, start), Err(10));
    // 3 s later 1.5 tokens: one whole token granted, 0.5 kept; the other 29 are capped at a
    // full bucket: (10 - 0.5) / 0.5 = 19 s.
    let later = start + Duration::from_secs(3);
    assert_eq!(
        t.take_up_to_at(Budget::Writes, 30, later),
        Ok(Grant {
            granted: 1,
            rest_retry_after: Some(19)
        })
    );
    // Reads unlimited here: everything granted.
    assert_eq!(t.take_up_to_at(Budget::Reads, 1000, start), Ok(all(1000)));
}

#[test]
fn unlimited_by_default_and_validation_lists_every_problem() {
    let t = Throttle::new(ThrottleSettings::default());
    assert_eq!(t.take(Budget::Writes, 1_000_000), Ok(()));
    let bad = ThrottleSettings {
        error_rate: 2.0,
        drop_rate: -1.0,
        writes: Some(BucketSettings {
            capacity: 0.0,
            refill_per_second: 1.0,
        }),
        ..ThrottleSettings::default()
    };
    let err = bad.validate().unwrap_err();
    assert!(
        err.contains("errorRate") && err.contains("dropRate") && err.contains("writes"),
        "{err}"
    );
}

#[test]
fn absurd_settings_are_refused_naming_the_field_and_the_bound() {
    let bucket = |capacity, refill_per_second| {
        Some(BucketSettings {
            capacity,
            refill_per_second,
        })
    };
    let cases: Vec<(&str, ThrottleSettings, &str)> = vec![
        (
            "latency of 10^15 ms",
            ThrottleSettings {
                latency_ms: 1_000_000_000_000_000,
                ..ThrottleSettings::default()
            },
            "latencyMs must be at most 60000",
        ),
        (
            "refill of 1e-300 (Retry-After would saturate at 2^64 s)",
            ThrottleSettings {
                writes: bucket(1.0, 1e-300),
                ..ThrottleSettings::default()
            },
            "writes.refillPerSecond must be between 0.001",
        ),
        (
            "infinite read capacity",
            ThrottleSettings {
                reads: bucket(f64::INFINITY, 1.0),
                ..ThrottleSettings::default()
            },
            "reads.capacity must be between 1 and 1e9",
        ),
        (
            "zero throttled batches",
            ThrottleSettings {
                throttle_items: Some(ItemThrottle {
                    batches: 0,
                    retry_after_seconds: 1,
                }),
                ..ThrottleSettings::default()
            },
            "throttleItems.batches must be between 1 and 1000000",
        ),
    ];
    for (name, settings, want) in cases {
        let err = settings.validate().expect_err(name);
        assert!(err.contains(want), "{name}: {err}");
    }
    // The bounds themselves are accepted.
    let edge = ThrottleSettings {
        latency_ms: MAX_LATENCY_MS,
        writes: bucket(MAX_BUCKET, MIN_REFILL_PER_SECOND),
        throttle_items: Some(ItemThrottle {
            batches: MAX_THROTTLED_BATCHES,
            retry_after_seconds: u64::MAX,
        }),
        ..ThrottleSettings::default()
    };
    assert_eq!(edge.validate(), Ok(()));
}

#[test]
fn throttle_items_answers_the_next_batches_whole_then_stops() {
    let t = Throttle::new(ThrottleSettings {
        throttle_items: Some(ItemThrottle {
            batches: 2,
            retry_after_seconds: u64::MAX,
        }),
        ..ThrottleSettings::default()
    });
    let cut = Grant {
        granted: 0,
        rest_retry_after: Some(u64::MAX),
    };
    // Reads are not affected.
    assert_eq!(t.take(Budget::Reads, 1), Ok(()));
    assert_eq!(t.take_up_to(Budget::Writes, 5), Ok(cut));
    assert_eq!(t.take_up_to(Budget::Writes, 1), Ok(cut));
    assert_eq!(
        t.take_up_to(Budget::Writes, 5),
        Ok(Grant {
            granted: 5,
            rest_retry_after: None
        })
    );
}
