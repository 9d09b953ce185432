//! Randomized differential test, end to end: a real lab DC, the real tenant and the real binary running
//! `agent sync-once`. Seeded random rounds of AD changes of every kind the product syncs (set, replace
//! and clear of every mapped attribute; adding and removing single values of a multi-valued one; renames;
//! moves in and out of scope; memberships with nested groups, contacts and out-of-scope members;
//! disable/enable; password resets; UPN changes; delete and re-create with the same name). After each
//! round: one sync, then the tenant's Graph view is compared in full with what AD says it should be —
//! every attribute Microsoft's default mappings carry (worked out here from AD, independently of the
//! projection code), every object in scope and none outside, every member — and every enabled in-scope
//! user must sign in with its current AD password, every out-of-scope one must not exist.
//!
//! `CLOUDSYNC_DIFF_ROUNDS` (default 12) sets the number of rounds; `CLOUDSYNC_DIFF_SEED` replays a seed.
//! The seed is printed at the start and in every failure (docs/lab.md § Differential test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/diff_changes.rs"]
mod diff_changes;
#[path = "common/diff_oracle.rs"]
mod diff_oracle;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::BTreeSet;

use common::lab::LabDc;
use diff_changes::{Kind, clear_title, move_to, random_change, seed_world};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenant_fixture::TenantFixture;

/// Rounds when `CLOUDSYNC_DIFF_ROUNDS` is not set: small enough for CI (about 30 s here).
const DEFAULT_ROUNDS: usize = 12;

/// Prints the seed when the test fails anywhere (a panic in a helper included).
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "differential test FAILED with seed {0}; replay: CLOUDSYNC_DIFF_SEED={0} cargo nextest run --test e2e_differential",
                self.0
            );
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ad_changes_keep_the_cloud_equal_to_ad() {
    let seed = env_number("CLOUDSYNC_DIFF_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let rounds = env_number("CLOUDSYNC_DIFF_ROUNDS").map_or(DEFAULT_ROUNDS, |r| r as usize);
    eprintln!("differential test: seed {seed}, {rounds} rounds");
    let _report = SeedOnFailure(seed);
    let mut rng = StdRng::seed_from_u64(seed);

    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let mut w = seed_world(&dc);
    let config = agent_run::write_config(&dc, &t, dir.path(), &w.ous);
    agent_run::register(&config);

    let mut history: Vec<String> = Vec::new();
    for round in 0..=rounds {
        let started = std::time::Instant::now();
        let mut changes = Vec::new();
        // The two faults of issue 18 happen in every run, whatever the seed: round 1 clears a title
        // (set since creation) and moves a user out of scope; round 2 moves it back.
        match round {
            1 => {
                changes.push(clear_title(&dc, &w, 0));
                changes.push(move_to(&dc, &mut w, 1, true));
            }
            2 => changes.push(move_to(&dc, &mut w, 1, false)),
            _ => {}
        }
        if round > 0 {
            for _ in 0..rng.random_range(3..=6) {
                changes.push(random_change(&mut rng, &dc, &mut w));
            }
        }
        let sync_output = agent_run::sync_once(&config);
        let synced = started.elapsed();
        history.push(format!("round {round}: {}", changes.join("; ")));
        let mut diffs = diff_oracle::compare(&dc, &t, &w.ous).await;
        // Passwords: every enabled user in scope signs in with its current AD password; every
        // out-of-scope user does not exist in the cloud.
        let enabled = diff_oracle::enabled_users(&dc, &w.ous);
        for s in w.slots.iter().filter(|s| s.kind == Kind::User) {
            let upn = &s.upn;
            if w.in_scope(s) {
                if enabled.contains(&upn.to_ascii_lowercase()) {
                    let status = tenant_fixture::signin(&t, upn, &s.password).await;
                    if status != 200 {
                        diffs.push(format!(
                            "{upn} (in scope, enabled) cannot sign in with its AD password: {status}"
                        ));
                    }
                }
            } else {
                let status = diff_oracle::user_status(&t, upn).await;
                if status != 404 {
                    diffs.push(format!(
                        "{upn} is out of scope but the cloud has it: {status}"
                    ));
                }
            }
        }
        eprintln!(
            "differential test: round {round} ({} changes) synced in {:.1}s, compared in {:.1}s",
            changes.len(),
            synced.as_secs_f64(),
            (started.elapsed() - synced).as_secs_f64()
        );
        if !diffs.is_empty() {
            panic!(
                "seed {seed}, round {round}: the cloud differs from AD\n{}\n--- changes so far\n{}\n--- the round's sync-once\n{sync_output}",
                diffs.join("\n"),
                history.join("\n")
            );
        }
    }
    // The rounds covered clears and moves out of scope at least once in CI's bounded run too.
    let all = history.join("\n");
    let kinds: BTreeSet<&str> = ["clear ", "move ", "member "]
        .into_iter()
        .filter(|k| all.contains(k))
        .collect();
    eprintln!("differential test: seed {seed} passed; change kinds seen: {kinds:?}");
}
