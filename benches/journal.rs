//! Journal append throughput with group commit versus raw sled inserts of the same bytes, in one run.
//!
//! `cargo bench --bench journal` (release). Each round writes N events in batches of 1,000 (one flush per
//! batch) through [`Journal::append`], and the same keys and envelope bytes through `Tree::insert` with a
//! `flush()` every 1,000 inserts; rounds alternate so drift hits both. Reports the median events/s of each
//! and the median of the per-round ratios. Targets (issue 2): ratio >= 0.75 and >= 100,000 events/s.
//! `JOURNAL_BENCH_EVENTS` (default 50000) and `JOURNAL_BENCH_ROUNDS` (default 15) override the size;
//! `JOURNAL_BENCH_ONLY=journal|raw` runs one side once (for `perf stat -e instructions:u`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cloudsync_agent::bench::limits::raw_sled_inserts;
use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass};
use cloudsync_agent::journal::{Journal, JournalOptions, codec};

const BATCH: usize = 1_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic delta: a user with a handful of attributes, about 300 bytes encoded.
fn event(i: u64) -> Event {
    let mut guid = [0u8; 16];
    guid[..8].copy_from_slice(&i.to_le_bytes());
    Event::ObjectUpserted {
        domain: "corp.example.test".into(),
        guid: Guid(guid),
        usn: 10_000 + i,
        dn: format!("CN=User {i},OU=Staff,OU=Berlin,DC=corp,DC=example,DC=test"),
        class: ObjectClass::User,
        attributes: vec![
            Attribute::text("displayName", &[format!("User Number {i}")]),
            Attribute::text("mail", &[format!("user{i}@corp.example.test")]),
            Attribute::text("userPrincipalName", &[format!("user{i}@corp.example.test")]),
            Attribute::text("department", &["Engineering"]),
            Attribute::text("telephoneNumber", &[format!("+49 30 {i:08}")]),
            Attribute {
                name: "objectSid".into(),
                values: vec![[1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 7, 7, 7, 7].to_vec()],
            },
        ],
        full_image: false,
    }
}

fn journal_round(events: &[Event]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    // Callers hand their events over by value; building the batches is not the journal's cost.
    let batches: Vec<Vec<Event>> = events.chunks(BATCH).map(<[Event]>::to_vec).collect();
    let start = Instant::now();
    for batch in batches {
        journal.append(batch, None).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(journal.last_seq(), Some(events.len() as u64));
    events.len() as f64 / secs
}

/// The same events from `threads` concurrent appenders (batches of 1,000 each): their flushes are shared.
fn journal_concurrent_round(events: &[Event], threads: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let mut shares: Vec<Vec<Vec<Event>>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, chunk) in events.chunks(BATCH).enumerate() {
        shares[i % threads].push(chunk.to_vec());
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for share in shares {
            let journal = journal.clone();
            s.spawn(move || {
                for batch in share {
                    journal.append(batch, None).unwrap();
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(journal.last_seq(), Some(events.len() as u64));
    events.len() as f64 / secs
}

fn raw_round(entries: &[(Vec<u8>, Vec<u8>)]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let done = raw_sled_inserts(dir.path(), 64 * 1024 * 1024, entries.chunks(BATCH)).unwrap();
    assert_eq!(done.entries, entries.len() as u64);
    done.rate()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special: keep that run tiny.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick {
        2_000
    } else {
        env_or("JOURNAL_BENCH_EVENTS", 50_000)
    };
    let rounds = if quick {
        1
    } else {
        env_or("JOURNAL_BENCH_ROUNDS", 15)
    };
    if quick {
        println!("smoke run (not `cargo bench`): the figures below are not measurements");
    }
    let events: Vec<Event> = (0..n as u64).map(event).collect();
    // The raw side writes exactly the bytes the journal stores, encoded ahead of time (its cost is ours).
    let entries: Vec<(Vec<u8>, Vec<u8>)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| codec::encode_event(i as u64 + 1, 1_764_064_800_000, e).unwrap())
        .collect();
    let avg_value = entries.iter().map(|(_, v)| v.len()).sum::<usize>() / entries.len().max(1);
    println!(
        "journal append vs raw sled insert: {n} events of ~{avg_value} bytes, flush every {BATCH}, {rounds} rounds"
    );
    let (mut ours, mut raw, mut ratios): (Vec<f64>, Vec<f64>, Vec<f64>) =
        (Vec::new(), Vec::new(), Vec::new());
    match std::env::var("JOURNAL_BENCH_ONLY").as_deref() {
        Ok("journal") => return println!("journal only: {:.0} events/s", journal_round(&events)),
        Ok("raw") => return println!("raw only: {:.0} inserts/s", raw_round(&entries)),
        _ => {}
    }
    for round in 0..rounds {
        let (j, r) = if round % 2 == 0 {
            let j = journal_round(&events);
            (j, raw_round(&entries))
        } else {
            let r = raw_round(&entries);
            (journal_round(&events), r)
        };
        println!(
            "  round {round}: journal {j:>10.0} events/s   raw sled {r:>10.0} inserts/s   ratio {:.2}",
            j / r
        );
        ours.push(j);
        raw.push(r);
        ratios.push(j / r);
    }
    let concurrent: Vec<f64> = (0..rounds.min(5))
        .map(|_| journal_concurrent_round(&events, 2))
        .collect();
    println!(
        "journal, 2 concurrent appenders (group commit): median {:.0} events/s",
        median(concurrent)
    );
    // Each round's ratio pairs two runs seconds apart, so its median is steadier than the ratio of the
    // medians on a machine shared with other work.
    println!(
        "median: journal {:.0} events/s, raw sled {:.0} inserts/s, per-round ratio {:.2} (targets: >= 0.75, >= 100000/s)",
        median(ours),
        median(raw),
        median(ratios)
    );
}
