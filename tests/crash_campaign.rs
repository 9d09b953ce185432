//! The crash campaign (issue 16, "Hardening"): one lab DC, one tenant (heartbeat 2 s, lease 4 s), two
//! `agent run` daemons for the same domain with password hash sync and password writeback on. A seeded
//! driver keeps changing AD (the differential test's generator), resets passwords in AD (PHS) and in
//! the cloud (writeback), and each round SIGKILLs an agent — the lease holder, the standby, or both in
//! turn — at a moment aimed at a named phase: mid initial sync, mid PHS cycle, AD changed but not read,
//! journaled but not projected, mid push, mid writeback, mid lease handover. The phase a kill landed in
//! is what the agent's metrics showed just before it (`common/crash_probe.rs`), checked after the kill
//! against its log where the log can tell (initial sync, PHS, writeback); a kill that missed its aim
//! is reported under the phase it did land in, `idle` when none.
//!
//! After each kill: `cloudsync journal verify` on the killed agent's journal (the crash image) passes;
//! the agent restarts over its state; then, polled with a deadline, the tenant equals AD in full (the
//! differential oracle: objects, every mapped attribute, memberships) and every enabled user in scope
//! signs in with its AD password. A cloud reset is either written to AD exactly once (AD's own count
//! of `unicodePwd` writes, `replPropertyMetaData`) and reported `succeeded`, or reported `failed` to
//! the caller with AD written at most once; never twice, never silently lost. The tenant's log shows
//! no batch applied twice. At the end both agents are killed once more and both journals verified.
//!
//! `CLOUDSYNC_CRASH_ROUNDS` (default [`DEFAULT_ROUNDS`]) sets the rounds after the initial two kills,
//! `CLOUDSYNC_CRASH_SEED` replays a seed (printed at the start and on failure). The summary is printed
//! and written as JSON to `$CLOUDSYNC_ARTIFACTS/crash-campaign.json` (else `target/crash-campaign.json`).
//! `harness = false`: one long scenario with its own report; the few libtest flags nextest and
//! `cargo test` pass (`--list`, `--exact NAME`, `--ignored`, a filter) are honoured by hand
//! (docs/lab.md § Crash campaign).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/crash_agent.rs"]
mod crash_agent;
#[path = "common/crash_driver.rs"]
mod crash_driver;
#[path = "common/crash_probe.rs"]
mod crash_probe;
#[path = "common/diff_changes.rs"]
mod diff_changes;
#[path = "common/diff_oracle.rs"]
mod diff_oracle;
#[path = "common/ha.rs"]
mod ha;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab::LabDc;
use crash_agent::{Agent, KeepLogs, Kill, aim, aim_applied, artifacts};
use crash_driver::{
    WRITEBACK_WAIT_SECS, change_password, holder, operation_result, refusals, reset, settle,
};
use crash_probe::{Phase, Sample};
use diff_changes::{Kind, random_change, seed_world};
use ha::strip_ansi;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tenant_fixture::{GA, HIA, TenantFixture};

/// The test's name, as `--list` reports it.
const NAME: &str = "crash_campaign";
/// Rounds after the two initial kills when `CLOUDSYNC_CRASH_ROUNDS` is not set: small enough for CI.
const DEFAULT_ROUNDS: usize = 4;
/// How long the tenant may take to equal AD again after a round (a loaded 2-core CI machine).
const SETTLE: Duration = Duration::from_secs(240);

/// What the run did, printed and written as JSON for RELIABILITY.md.
#[derive(Debug, Default, Serialize)]
struct Report {
    seed: u64,
    rounds_planned: usize,
    rounds_done: usize,
    kills: usize,
    kills_by_phase: BTreeMap<String, usize>,
    /// Kills after which the tenant came back to AD and every check passed.
    kills_survived: usize,
    checks_passed: usize,
    checks_by_kind: BTreeMap<String, usize>,
    ad_changes: usize,
    ad_password_changes: usize,
    /// Cloud resets: `succeeded` (written once), `failed-unwritten`, `failed-written-once`.
    writeback: BTreeMap<String, usize>,
    /// Lease takeovers with an image ("Lease taken over" in the agents' logs).
    takeovers: usize,
    /// Batches the tenant answered from its stored results (re-sent after a kill; not applied again).
    batch_replays: usize,
    batches_applied: usize,
    /// The longest time between the metrics sample a kill was aimed by and the SIGKILL, ms.
    max_sample_to_kill_ms: u64,
    /// The longest time the tenant took to equal AD again after a round, s.
    max_settle_secs: f64,
    kill_log: Vec<String>,
    duration_secs: f64,
    passed: bool,
    failure: Option<String>,
}

impl Report {
    fn check(&mut self, kind: &str) {
        self.checks_passed += 1;
        *self.checks_by_kind.entry(kind.to_owned()).or_insert(0) += 1;
    }
}

fn record(report: &Arc<Mutex<Report>>, round: usize, kill: &Kill) {
    let mut r = report.lock().unwrap();
    r.kills += 1;
    *r.kills_by_phase
        .entry(kill.phase.as_str().to_owned())
        .or_insert(0) += 1;
    r.max_sample_to_kill_ms = r.max_sample_to_kill_ms.max(kill.gap_ms);
    let line = format!("round {round}: {}", kill.line);
    eprintln!("crash campaign: {line}");
    r.kill_log.push(line);
}

/// `journal verify` on a killed agent's journal (must pass), counted.
fn verify_journal(report: &Arc<Mutex<Report>>, agent: &Agent, seed: u64) {
    assert!(agent.daemon.is_none());
    if let Err(e) = crash_probe::journal_verify(&agent.journal()) {
        panic!(
            "seed {seed}: {}'s journal after the kill: {e}\n--- its log\n{}",
            agent.name,
            agent.log()
        );
    }
    report.lock().unwrap().check("journal-verify");
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[allow(clippy::too_many_lines)]
async fn campaign(report: Arc<Mutex<Report>>, seed: u64, rounds: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dc = LabDc::start();
    let t = TenantFixture::start_with(&[
        "--heartbeat-interval-secs",
        "2",
        "--writeback-wait-secs",
        &WRITEBACK_WAIT_SECS.to_string(),
        // The oracle signs every user in while password hash sync may still be catching up; those
        // failures must not lock the users out (the campaign is not about smart lockout).
        "--lockout-threshold",
        "1000000",
    ]);
    let mut w = seed_world(&dc);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut agents = [
        Agent::new("A", &dc, &t, &w.ous),
        Agent::new("B", &dc, &t, &w.ous),
    ];
    let _keep = KeepLogs(vec![
        ("agent-a.log", agents[0].log.clone()),
        ("agent-b.log", agents[1].log.clone()),
        ("tenant.log", t.dir.path().join("tenant.log")),
    ]);
    let hia = t.user_token(HIA).await;
    let ga = t.user_token(GA).await;
    // Password writeback on for the configuration both agents serve.
    let configs = t.get_json(&ga, "/api/v1/configurations").await;
    let config_id = configs["value"][0]["id"].as_str().unwrap().to_owned();
    let r = t
        .client
        .put(t.at(&format!("/api/v1/configurations/{config_id}/writeback")))
        .bearer_auth(&ga)
        .json(&json!({"enabled": true, "allowUnlock": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "writeback switch: {}", r.status());

    // Round 0. A starts alone and is killed in its initial full read; B starts and is killed in its
    // first PHS cycle (1,000+ hashes) while A comes back over its partial state.
    agents[0].start();
    let zero = Sample::default();
    agents[0].sample_now(&http).await;
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..600))).await;
    let kill = aim(
        &http,
        &mut agents[0],
        &zero,
        false,
        Phase::InitialSync,
        Duration::ZERO,
    )
    .await;
    record(&report, 0, &kill);
    verify_journal(&report, &agents[0], seed);
    agents[1].start();
    agents[0].start();
    // The first cycle starts with the process (replication of 1,000+ accounts, then hashing).
    agents[1].sample_now(&http).await;
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..800))).await;
    let kill = aim(
        &http,
        &mut agents[1],
        &zero,
        false,
        Phase::Phs,
        Duration::ZERO,
    )
    .await;
    record(&report, 0, &kill);
    verify_journal(&report, &agents[1], seed);
    agents[1].start();
    let mut history: Vec<String> = Vec::new();
    let settled = settle(&dc, &t, &w, SETTLE)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}, round 0: {e}"));
    {
        let mut r = report.lock().unwrap();
        r.check("tenant-equals-ad");
        r.kills_survived += 2;
        r.max_settle_secs = r.max_settle_secs.max(settled);
        r.rounds_done = 0;
    }
    eprintln!("crash campaign: round 0 settled in {settled:.1}s");

    for round in 1..=rounds {
        let Some(h) = holder(&t, &hia, &agents).await else {
            panic!("seed {seed}, round {round}: no lease holder");
        };
        let s = 1 - h;
        let writeback_round = rng.random_bool(0.4);
        let mut targets = vec![
            Phase::DeltaUnread,
            Phase::DeltaUnprojected,
            Phase::Push,
            Phase::PushApplied,
            Phase::PushApplied,
            Phase::Phs,
            Phase::Handover,
        ];
        if writeback_round {
            targets.push(Phase::Writeback);
            targets.push(Phase::Writeback);
        }
        let mut target = targets[rng.random_range(0..targets.len())];
        let mut killed: Vec<usize> = Vec::new();
        let mut changes: Vec<String> = Vec::new();

        // A cloud reset, resolved before the round's AD changes so that AD's count of password
        // writes of its user is the writeback's alone.
        if writeback_round {
            let enabled = diff_oracle::enabled_users(&dc, &w.ous);
            let users: Vec<usize> = (0..w.slots.len())
                .filter(|&i| {
                    let sl = &w.slots[i];
                    sl.kind == Kind::User
                        && w.in_scope(sl)
                        && enabled.contains(&sl.upn.to_ascii_lowercase())
                })
                .collect();
            if users.is_empty() && target == Phase::Writeback {
                target = Phase::Push;
            }
            if !users.is_empty() {
                let i = users[rng.random_range(0..users.len())];
                let dn = w.slots[i].dn();
                let upn = w.slots[i].upn.clone();
                let new_password = format!("Crash!Wb{}x", w.next());
                let before = crash_probe::password_writes(&dc, &dn);
                let (path, request) = reset(&t, &ga, &upn, &new_password).await;
                if target == Phase::Writeback {
                    // Kill whichever agent the tenant hands the request to, as soon as it has it.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let to = loop {
                        if let Some(to) = crash_probe::handed_out_to(&t.log(), &request) {
                            break to;
                        }
                        assert!(
                            Instant::now() < deadline,
                            "request {request} never handed out"
                        );
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    };
                    let v = agents.iter().position(|a| a.id == to).unwrap();
                    let at = Instant::now();
                    agents[v].kill();
                    let gap_ms = at.elapsed().as_millis() as u64;
                    let answered = agents[v]
                        .log()
                        .lines()
                        .any(|l| l.contains("Writeback request answered") && l.contains(&request));
                    let (phase, detail) = if answered {
                        (
                            Phase::Idle,
                            "the request was answered before the kill landed",
                        )
                    } else {
                        (Phase::Writeback, "handed out to it, no answer in its log")
                    };
                    let kill = Kill {
                        phase,
                        line: format!(
                            "{} ({}) killed {} (request {request}: {detail}; {gap_ms} ms after the tenant's hand-out line was seen; aimed at writeback)",
                            agents[v].name,
                            if v == h { "holder" } else { "standby" },
                            phase.as_str()
                        ),
                        gap_ms,
                    };
                    record(&report, round, &kill);
                    verify_journal(&report, &agents[v], seed);
                    agents[v].start();
                    killed.push(v);
                }
                let (status, detail) = operation_result(&t, &ga, &path).await;
                let after = crash_probe::password_writes(&dc, &dn);
                let writes = after.saturating_sub(before);
                let outcome = match (status.as_str(), writes) {
                    ("succeeded", 1) => "succeeded",
                    ("failed", 0) if !detail.is_empty() => "failed-unwritten",
                    ("failed", 1) if !detail.is_empty() => "failed-written-once",
                    _ => panic!(
                        "seed {seed}, round {round}: cloud reset of {upn}: the caller saw {status:?} ({detail:?}) and AD wrote the password {writes} times (before {before}, after {after})"
                    ),
                };
                if writes == 1 {
                    w.slots[i].password = new_password;
                }
                changes.push(format!("cloud reset of {upn}: {outcome}"));
                let mut r = report.lock().unwrap();
                *r.writeback.entry(outcome.to_owned()).or_insert(0) += 1;
                r.check("writeback-once-or-error");
            }
        }

        // Each agent's figures before the round's AD changes (after a restart: the new process's).
        let bases = [
            agents[0].sample_now(&http).await,
            agents[1].sample_now(&http).await,
        ];
        let applied_before = crash_probe::applied_from(&t.log(), &agents[h].id).len();
        let mut applied_batch: Option<String> = None;
        // The round's AD changes: the generator's, and a password change for PHS in some rounds.
        for _ in 0..rng.random_range(2..=4) {
            changes.push(random_change(&mut rng, &dc, &mut w));
            report.lock().unwrap().ad_changes += 1;
        }
        if (target == Phase::Phs || rng.random_bool(0.4))
            && let Some(c) = change_password(&mut rng, &dc, &mut w)
        {
            changes.push(c);
            let mut r = report.lock().unwrap();
            r.ad_changes += 1;
            r.ad_password_changes += 1;
        }

        if target != Phase::Writeback {
            let victim = match target {
                Phase::Push | Phase::PushApplied | Phase::Handover => h,
                _ if rng.random_bool(0.5) => h,
                _ => s,
            };
            let within = match target {
                // Either the first sample shows it or the feed has already read the changes. The
                // handover's first kill lands wherever the holder is; the aim is the second one.
                Phase::DeltaUnread | Phase::Handover => Duration::ZERO,
                _ => Duration::from_secs(6),
            };
            let delay = match target {
                Phase::Push => rng.random_range(0..1200),
                _ => rng.random_range(0..150),
            };
            // How a killed holder comes back (not for the handover, which kills both): at once (it
            // races the standby, which usually takes the lease over first: a restart replays the
            // journal and outlasts the 4 s lease), after the standby has taken the lease over, or
            // alone: the standby is killed first, so the holder re-takes its own lease and, having
            // held the previous epoch, sends no takeover image — only its own recovery brings the
            // tenant back to AD.
            let mode = if victim == h && target != Phase::Handover {
                rng.random_range(0..3)
            } else {
                0
            };
            if mode == 2 {
                let mut kill = aim(
                    &http,
                    &mut agents[s],
                    &bases[s],
                    true,
                    Phase::Idle,
                    Duration::ZERO,
                )
                .await;
                kill.line = kill
                    .line
                    .replacen(agents[s].name, &format!("{} (standby)", agents[s].name), 1)
                    .replace("aimed at idle", "killed first, wherever it was");
                record(&report, round, &kill);
                killed.push(s);
            }
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let (aim_at, base) = (target, bases[victim].clone());
            let mut kill = if target == Phase::PushApplied {
                let (kill, batch) = aim_applied(
                    &t,
                    &mut agents[victim],
                    applied_before,
                    Duration::from_secs(8),
                )
                .await;
                applied_batch = batch;
                kill
            } else {
                aim(&http, &mut agents[victim], &base, true, aim_at, within).await
            };
            let role = if victim == h { "holder" } else { "standby" };
            kill.line = kill.line.replacen(
                agents[victim].name,
                &format!("{} ({role})", agents[victim].name),
                1,
            );
            record(&report, round, &kill);
            killed.push(victim);
            if target == Phase::Handover {
                // The standby takes the lease over; it is killed as soon as the tenant says it holds it.
                let other = 1 - victim;
                let taken_before = agents[other].count("Lease taken over");
                ha::wait_for_holder(&t, &hia, &agents[other].id, Duration::from_secs(60)).await;
                let at = Instant::now();
                agents[other].kill();
                let gap_ms = at.elapsed().as_millis() as u64;
                let log = agents[other].log();
                let taken = log.matches("Lease taken over").count() > taken_before;
                let enqueued = log.matches("Takeover image enqueued").count();
                let detail = match (taken, enqueued) {
                    (false, _) => {
                        "holder per the tenant; its log had not yet logged the takeover".to_owned()
                    }
                    (true, 0) => {
                        "took the lease over; its takeover image not enqueued yet".to_owned()
                    }
                    (true, _) => {
                        "took the lease over; takeover image enqueued, not known acknowledged"
                            .to_owned()
                    }
                };
                let kill = Kill {
                    phase: Phase::Handover,
                    line: format!(
                        "{} (new holder) killed {} ({detail}; {gap_ms} ms after the tenant showed it holding)",
                        agents[other].name,
                        Phase::Handover.as_str()
                    ),
                    gap_ms,
                };
                record(&report, round, &kill);
                killed.push(other);
            }
            for &k in &killed {
                verify_journal(&report, &agents[k], seed);
            }
            let mut to_start = killed.clone();
            if victim == h && target != Phase::Handover {
                let line = match mode {
                    1 => {
                        ha::wait_for_holder(&t, &hia, &agents[s].id, Duration::from_secs(60)).await;
                        format!(
                            "round {round}: {} restarted after {} took the lease over",
                            agents[h].name, agents[s].name
                        )
                    }
                    2 => {
                        agents[h].start();
                        ha::wait_for_holder(&t, &hia, &agents[h].id, Duration::from_secs(60)).await;
                        to_start.retain(|k| *k != h);
                        format!(
                            "round {round}: {} restarted alone and holds the lease again; then {}",
                            agents[h].name, agents[s].name
                        )
                    }
                    _ => format!("round {round}: {} restarted at once", agents[h].name),
                };
                changes.push(line.clone());
                report.lock().unwrap().kill_log.push(line);
            }
            for &k in &to_start {
                agents[k].start();
            }
        }

        history.push(format!("round {round}: {}", changes.join("; ")));
        let settled = match settle(&dc, &t, &w, SETTLE).await {
            Ok(s) => s,
            Err(e) => panic!(
                "seed {seed}, round {round}: after the kill(s) the tenant {e}\n--- the tenant's last refusals (provisioning log, newest first)\n{}\n--- changes so far\n{}",
                refusals(&t, &ga).await,
                history.join("\n")
            ),
        };
        let tenant_log = t.log();
        if let Some(b) = &applied_batch {
            let replays = crash_probe::replays_of(&tenant_log, b);
            let line = if replays > 0 {
                format!(
                    "round {round}: batch {b} was re-sent after the restart and replayed {replays} time(s), not applied again"
                )
            } else {
                format!(
                    "round {round}: batch {b} was not re-sent (the agent had recorded the answer)"
                )
            };
            eprintln!("crash campaign: {line}");
            report.lock().unwrap().kill_log.push(line);
        }
        let applied = crash_probe::applied_batches(&tenant_log);
        let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "seed {seed}, round {round}: batches applied more than once: {twice:?}"
        );
        let mut r = report.lock().unwrap();
        r.check("tenant-equals-ad");
        r.check("no-batch-applied-twice");
        r.kills_survived += killed.len();
        r.max_settle_secs = r.max_settle_secs.max(settled);
        r.rounds_done = round;
        eprintln!(
            "crash campaign: round {round} ({}; {} changes) settled in {settled:.1}s",
            target.as_str(),
            changes.len()
        );
    }

    // The end: both agents killed once more, both journals verified; the tenant's log once more.
    for a in &mut agents {
        a.kill();
        verify_journal(&report, a, seed);
    }
    let tenant_log = strip_ansi(&t.log());
    let applied = crash_probe::applied_batches(&tenant_log);
    assert!(
        applied.values().all(|n| *n == 1),
        "seed {seed}: a batch applied more than once"
    );
    for (who, log) in [
        ("tenant", tenant_log.clone()),
        ("A", agents[0].log()),
        ("B", agents[1].log()),
    ] {
        assert!(
            !log.contains("panicked"),
            "seed {seed}: {who} panicked:\n{log}"
        );
    }
    let mut r = report.lock().unwrap();
    r.check("no-batch-applied-twice");
    r.check("no-panic");
    r.batches_applied = applied.len();
    r.batch_replays = tenant_log.matches("Batch replayed").count();
    r.takeovers = agents.iter().map(|a| a.count("Lease taken over")).sum();
}

/// The libtest flags nextest and `cargo test` pass: whether to run, after answering `--list`.
fn selected() -> Option<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ignored = args.iter().any(|a| a == "--ignored");
    if args.iter().any(|a| a == "--list") {
        if !ignored {
            println!("{NAME}: test");
        }
        return None;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(
            a.as_str(),
            "--skip" | "--test-threads" | "--format" | "--color" | "-Z" | "--logfile"
        ) {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    let matches = filters.iter().all(|f| {
        if exact {
            f == NAME
        } else {
            NAME.contains(f.as_str())
        }
    });
    Some(matches && !ignored)
}

fn main() -> ExitCode {
    match selected() {
        None => return ExitCode::SUCCESS,
        Some(false) => {
            println!("running 0 tests");
            return ExitCode::SUCCESS;
        }
        Some(true) => {}
    }
    cloudsync_private_fs::restrict_umask();
    let seed = env_number("CLOUDSYNC_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let rounds = env_number("CLOUDSYNC_CRASH_ROUNDS").map_or(DEFAULT_ROUNDS, |r| r as usize);
    eprintln!("crash campaign: seed {seed}, {rounds} rounds after the initial two kills");
    let report = Arc::new(Mutex::new(Report {
        seed,
        rounds_planned: rounds,
        ..Report::default()
    }));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let inner = report.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(campaign(inner, seed, rounds));
    }));
    drop(runtime);
    let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
    r.duration_secs = started.elapsed().as_secs_f64();
    r.passed = outcome.is_ok();
    if let Err(p) = &outcome {
        r.failure = Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".to_owned()),
        );
    }
    let dir = artifacts();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("crash-campaign.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&*r).unwrap()).unwrap();
    eprintln!(
        "crash campaign: seed {}, rounds {}/{}, kills {} by phase {:?}, kills survived {}, checks passed {} {:?}, writeback {:?}, takeovers {}, batch replays {}, {:.0}s; {} -> {}",
        r.seed,
        r.rounds_done,
        r.rounds_planned,
        r.kills,
        r.kills_by_phase,
        r.kills_survived,
        r.checks_passed,
        r.checks_by_kind,
        r.writeback,
        r.takeovers,
        r.batch_replays,
        r.duration_secs,
        if r.passed { "PASSED" } else { "FAILED" },
        file.display()
    );
    if r.passed {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "crash campaign FAILED with seed {0}; replay: CLOUDSYNC_CRASH_SEED={0} CLOUDSYNC_CRASH_ROUNDS={1} cargo nextest run --test crash_campaign",
            r.seed, r.rounds_planned
        );
        ExitCode::FAILURE
    }
}
