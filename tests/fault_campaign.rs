//! The fault campaign (issue 16, "Hardening"): one lab DC, one tenant, one `agent run` daemon with
//! password hash sync on, its state on a tmpfs of its own and its wall clock behind libfaketime. One
//! fault after the other, a seeded driver making AD changes during each: a 429 storm (a tight write
//! budget, then lifted); 5xx + latency + dropped connections; the tenant crashed and restarted while
//! the agent pushes a larger change; Samba stopped and restarted; Samba frozen (SIGSTOP) for longer
//! than every timeout of the agent; the journal's disk full; the agent's wall clock stepped forward
//! and back; a DirSync cookie the DC rejects. After each: the tenant equals AD (the differential
//! oracle, every attribute and member, no object twice, every enabled user signs in), no batch was
//! applied twice (the tenant's log), and the daemon still runs. One summary line per fault, and
//! `fault-campaign.json` (docs/lab.md § Fault campaign).
//!
//! `CLOUDSYNC_FAULT_SEED` replays a seed (printed at the start and on failure);
//! `CLOUDSYNC_FAULTS=429,5xx,…` runs only the faults named (names as in the summary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/diff_changes.rs"]
mod diff_changes;
#[path = "common/diff_oracle.rs"]
mod diff_oracle;
#[path = "common/faults.rs"]
mod faults;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::process::Command;
use std::time::{Duration, Instant};

use cloudsync_agent::event::SourceKind;
use cloudsync_agent::journal::{Checkpoint, Journal, JournalOptions};
use common::lab::LabDc;
use diff_changes::{Kind, World, random_change, seed_world};
use faults::{
    Agent, BatchOutcome, FakeClock, FaultReport, StateDir, applied_twice, converge, outcome_counts,
    set_faults, tenant_lines, tenant_offset,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tenant_fixture::{GA, TenantFixture};

/// How long the tenant may take to equal AD once a fault is cleared.
const CONVERGE_WITHIN: Duration = Duration::from_secs(90);
/// How long a fault may take to show (a log line, a count).
const SHOW_WITHIN: Duration = Duration::from_secs(45);

/// Everything the faults act on.
struct Campaign {
    seed: u64,
    rng: StdRng,
    dc: LabDc,
    t: TenantFixture,
    w: World,
    state: StateDir,
    clock: FakeClock,
    agent: Agent,
    agent_id: String,
}

/// Prints the seed when the test fails anywhere.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fault campaign FAILED with seed {0}; replay: CLOUDSYNC_FAULT_SEED={0} cargo nextest run --test fault_campaign --no-capture",
                self.0
            );
        }
    }
}

impl Campaign {
    /// `n` random AD changes from the seeded driver; their descriptions.
    fn changes(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| random_change(&mut self.rng, &self.dc, &mut self.w))
            .collect()
    }

    /// The oracle, polled; records the time or the differences.
    async fn converge(&self, r: &mut FaultReport) {
        match converge(&self.dc, &self.t, &self.w, CONVERGE_WITHIN).await {
            Ok(took) => r.seconds_to_converge = Some(took.as_secs_f64()),
            Err(e) => r.failures.push(e),
        }
    }

    /// The checks every fault ends with: the daemon runs, no batch was applied twice.
    fn after(&mut self, r: &mut FaultReport) {
        let exited = self.agent.exited();
        r.check(
            "the daemon still runs",
            match exited {
                None => Ok(()),
                Some(s) => Err(format!(
                    "it exited ({s}); its log ends:\n{}",
                    faults::last_lines(&self.agent.log(), 30)
                )),
            },
        );
        let twice = applied_twice(&self.t);
        r.check(
            "no batch applied twice",
            if twice.is_empty() {
                Ok(())
            } else {
                Err(twice.join("; "))
            },
        );
    }

    /// The lease of the (one) configuration: (holder, epoch, live).
    async fn lease(&self) -> Option<(String, u64, bool)> {
        let token = self.t.user_token(GA).await;
        let v = self.t.get_json(&token, "/api/v1/configurations").await;
        let l = &v["value"].as_array()?.first()?["lease"];
        Some((
            l["holderAgentId"].as_str()?.to_owned(),
            l["epoch"].as_u64()?,
            l["live"].as_bool()?,
        ))
    }

    /// An in-scope, existing user of the world (for a change whose arrival is checked by hand).
    fn some_user(&self) -> Option<usize> {
        (0..self.w.slots.len())
            .find(|&i| self.w.slots[i].kind == Kind::User && self.w.in_scope(&self.w.slots[i]))
    }

    /// The cloud's `jobTitle` of the user with UPN `upn` (None when it has none or no such user).
    async fn cloud_title(&self, upn: &str) -> Option<String> {
        let token = self.t.user_token(GA).await;
        let v = self.t.get_json(&token, format!("/v1.0/users/{upn}")).await;
        v["jobTitle"].as_str().map(str::to_owned)
    }
}

fn env_seed() -> u64 {
    std::env::var("CLOUDSYNC_FAULT_SEED")
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("CLOUDSYNC_FAULT_SEED must be a number, not {v:?}"))
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Whether `CLOUDSYNC_FAULTS` (comma-separated name prefixes) selects fault `name`.
fn selected(name: &str) -> bool {
    match std::env::var("CLOUDSYNC_FAULTS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .any(|p| !p.trim().is_empty() && name.contains(p.trim())),
        _ => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converges_after_every_fault() {
    let seed = env_seed();
    eprintln!("fault campaign: seed {seed}");
    let _report = SeedOnFailure(seed);
    let started = Instant::now();

    let dc = LabDc::start();
    let t = TenantFixture::start_with_env(&[], &[("CLOUDSYNC_LOG_JSON", "true")]);
    let state = StateDir::tmpfs(256);
    if let Some(why) = &state.not_mounted {
        eprintln!("fault campaign: the agent's state is not on a tmpfs ({why})");
    }
    let clock = FakeClock::new(state.outside());
    let w = seed_world(&dc);
    let config = agent_run::write_config(&dc, &t, &state.path, &w.ous);
    agent_run::register(&config);
    let agent_id = {
        let creds: Value =
            serde_json::from_slice(&std::fs::read(state.path.join("credentials.json")).unwrap())
                .unwrap();
        creds["agentId"].as_str().unwrap().to_owned()
    };
    let log = state.outside().join("agent.log");
    let agent = Agent::start(&config, &log, &clock);
    let mut c = Campaign {
        seed,
        rng: StdRng::seed_from_u64(seed),
        dc,
        t,
        w,
        state,
        clock,
        agent,
        agent_id,
    };

    let mut reports = Vec::new();
    let mut initial = FaultReport::new("initial-sync", "none: the first full sync");
    c.converge(&mut initial).await;
    c.after(&mut initial);
    eprintln!("{}", initial.summary_line());
    let initial_ok = initial.passed();
    reports.push(initial);

    if initial_ok {
        for name in [
            "tenant-429-storm",
            "tenant-5xx-latency-drops",
            "tenant-restart-mid-batch",
            "samba-stop-and-freeze",
            "journal-disk-full",
            "agent-clock-steps",
            "dirsync-cookie-rejected",
        ] {
            if !selected(name) {
                continue;
            }
            let done = match name {
                "tenant-429-storm" => storm_429(&mut c).await,
                "tenant-5xx-latency-drops" => errors_5xx(&mut c).await,
                "tenant-restart-mid-batch" => tenant_restart(&mut c).await,
                "samba-stop-and-freeze" => samba(&mut c).await,
                "journal-disk-full" => disk_full(&mut c).await,
                "agent-clock-steps" => clock_steps(&mut c).await,
                _ => cookie_rejected(&mut c).await,
            };
            for r in done {
                eprintln!("{}", r.summary_line());
                reports.push(r);
            }
        }
    }

    let summary = json!({
        "seed": c.seed,
        "totalSeconds": started.elapsed().as_secs_f64(),
        "faults": reports.iter().map(FaultReport::to_json).collect::<Vec<_>>(),
    });
    let path = faults::summary_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    eprintln!(
        "fault campaign: seed {seed}, {} faults in {:.0}s, summary in {}",
        reports.len(),
        started.elapsed().as_secs_f64(),
        path.display()
    );
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}:\n  {}", r.name, r.failures.join("\n  ")))
        .collect();
    assert!(
        failed.is_empty(),
        "seed {seed}: faults the agent did not come through:\n{}\n--- the agent's log ends:\n{}",
        failed.join("\n"),
        faults::last_lines(&c.agent.log(), 40)
    );
}

/// (1) A 429 storm: a write budget of 4 operations refilled at 0.25/s (so `Retry-After` and the
/// per-item `retryAfterSeconds` run to 4-16 s) while AD changes, lifted once the tenant has refused
/// or cut at least three batches. The agent must not send a batch inside a `Retry-After` it was given.
async fn storm_429(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "tenant-429-storm",
        "write budget capacity 4, refill 0.25/s (429 + Retry-After, per-item Throttled), lifted after 3 throttled answers",
    );
    let from = tenant_offset(&c.t);
    set_faults(
        &c.t,
        &json!({"writes": {"capacity": 4, "refillPerSecond": 0.25}}),
    )
    .await;
    let storm = Instant::now();
    let mut changes = c.changes(6).len();
    let throttled = |t: &TenantFixture| {
        tenant_lines(t, from)
            .iter()
            .filter(|l| {
                matches!(
                    l.batch_outcome(),
                    Some(BatchOutcome::Refused429 | BatchOutcome::Partial)
                )
            })
            .count()
    };
    // Waves of changes keep operations coming until the tenant has throttled three answers.
    let mut next_wave = Instant::now() + Duration::from_secs(3);
    while throttled(&c.t) < 3 && storm.elapsed() < SHOW_WITHIN {
        if Instant::now() >= next_wave {
            changes += c.changes(3).len();
            next_wave = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    set_faults(&c.t, &json!({})).await;
    r.changes = changes;
    let storm_secs = storm.elapsed().as_secs_f64();
    let lines = tenant_lines(&c.t, from);
    // Every batch request the tenant saw inside a Retry-After it had answered (1 s after the
    // answer, for requests already in flight, to 0.5 s before its end).
    let requests: Vec<&faults::TenantLine> = lines
        .iter()
        .filter(|l| l.batch_outcome().is_some())
        .collect();
    let mut early = Vec::new();
    let mut max_retry_after = 0;
    for answer in requests.iter().filter(|l| {
        matches!(
            l.batch_outcome(),
            Some(BatchOutcome::Refused429 | BatchOutcome::Partial)
        )
    }) {
        let Some(ra) = answer.retry_after() else {
            continue;
        };
        max_retry_after = max_retry_after.max(ra);
        let (lo, hi) = (answer.at + 1.0, answer.at + ra as f64 - 0.5);
        early.extend(requests.iter().filter(|l| l.at > lo && l.at < hi).map(|l| {
            format!(
                "{:?} {:.1}s into a Retry-After of {ra}s",
                l.batch_outcome(),
                l.at - answer.at
            )
        }));
    }
    let counts = outcome_counts(&lines);
    r.detail("stormSeconds", (storm_secs * 10.0).round() / 10.0);
    r.detail(
        "batchRequestsDuringStorm",
        requests
            .iter()
            .filter(|l| l.at - lines[0].at <= storm_secs)
            .count(),
    );
    r.detail("tenantAnswers", json!(counts));
    r.detail("maxRetryAfterSeconds", max_retry_after);
    r.check(
        "the storm was injected",
        if throttled(&c.t) >= 1 {
            Ok(())
        } else {
            Err("the tenant throttled no batch".into())
        },
    );
    r.check(
        "no batch inside a Retry-After",
        if early.is_empty() {
            Ok(())
        } else {
            Err(early.join("; "))
        },
    );
    c.converge(&mut r).await;
    c.after(&mut r);
    vec![r]
}

/// (2) Half the API calls answered 503, 300 ms of latency on each, a fifth of the answers cut
/// mid-response (the batch applied, the acknowledgement lost); cleared once each kind was seen.
async fn errors_5xx(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "tenant-5xx-latency-drops",
        "errorRate 0.5 (503 + Retry-After 1), latencyMs 300, dropRate 0.2 on /api and /v1.0; cleared after 3 503s and 1 drop",
    );
    let from = tenant_offset(&c.t);
    set_faults(
        &c.t,
        &json!({"errorRate": 0.5, "latencyMs": 300, "dropRate": 0.2}),
    )
    .await;
    let start = Instant::now();
    let mut changes = c.changes(4).len();
    let seen = |t: &TenantFixture| {
        let m = outcome_counts(&tenant_lines(t, from));
        (
            m.get("injected503").copied().unwrap_or(0),
            m.get("dropped").copied().unwrap_or(0),
        )
    };
    // At least 10 s of faults, and until each kind was seen; waves of changes keep batches coming.
    let mut next_wave = Instant::now() + Duration::from_secs(3);
    loop {
        let (e, d) = seen(&c.t);
        let long_enough = start.elapsed() >= Duration::from_secs(10);
        if (long_enough && e >= 3 && d >= 1) || start.elapsed() > SHOW_WITHIN {
            break;
        }
        if Instant::now() >= next_wave {
            changes += c.changes(2).len();
            next_wave = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    set_faults(&c.t, &json!({})).await;
    r.changes = changes;
    let (e, d) = seen(&c.t);
    r.check(
        "the faults were injected",
        if e >= 1 && d >= 1 {
            Ok(())
        } else {
            Err(format!(
                "{e} injected 503s and {d} drops in {SHOW_WITHIN:?}"
            ))
        },
    );
    r.detail(
        "faultSeconds",
        (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    c.converge(&mut r).await;
    r.detail(
        "tenantAnswers",
        json!(outcome_counts(&tenant_lines(&c.t, from))),
    );
    c.after(&mut r);
    vec![r]
}

/// (3) The tenant killed (SIGKILL) and restarted on the same address while the agent pushes a
/// change of ~240 operations (120 contacts and a group holding them, batches of 50, 400 ms of
/// latency on each call so batches are in flight), right after the first batch of it is applied.
async fn tenant_restart(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "tenant-restart-mid-batch",
        "tenant SIGKILLed and restarted on its address after the first applied batch of a 241-operation change (latency 400 ms per call)",
    );
    set_faults(&c.t, &json!({"latencyMs": 400})).await;
    let n = c.w.next();
    let base = c.w.ous[0].clone();
    let mut ldif = String::new();
    let mut members = String::new();
    for i in 0..120 {
        let cn = format!("fbulk{n}x{i:03}");
        ldif.push_str(&format!(
            "dn: CN={cn},{base}\nchangetype: add\nobjectClass: contact\ngivenName: {cn}\nsn: Bulk\nmail: {cn}@bulk.example\n\n"
        ));
        members.push_str(&format!("member: CN={cn},{base}\n"));
    }
    ldif.push_str(&format!(
        "dn: CN=fbulkgroup{n},{}\nchangetype: add\nobjectClass: group\nsAMAccountName: fbulkgroup{n}\ngroupType: -2147483646\n{members}\n",
        c.w.ous[1]
    ));
    let from = tenant_offset(&c.t);
    let mut changes = c.changes(2);
    c.dc.ldif_admin(&ldif);
    changes.push("120 contacts and a group of them".into());
    r.changes = changes.len() + 120;
    let start = Instant::now();
    let first_applied = loop {
        let applied = tenant_lines(&c.t, from)
            .iter()
            .filter(|l| l.batch_outcome() == Some(BatchOutcome::Applied))
            .filter(|l| l.fields["operations"].as_u64().unwrap_or(0) >= 20)
            .count();
        if applied >= 1 || start.elapsed() > SHOW_WITHIN {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    c.t.crash_and_restart_in_place();
    let restarted = tenant_offset(&c.t);
    r.check(
        "the restart came while the change was pushed",
        if first_applied >= 1 {
            Ok(())
        } else {
            Err(format!("no batch of it was applied within {SHOW_WITHIN:?}"))
        },
    );
    r.detail(
        "restartAfterSeconds",
        (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    c.converge(&mut r).await;
    let after = outcome_counts(&tenant_lines(&c.t, restarted));
    let all = outcome_counts(&tenant_lines(&c.t, from));
    r.check(
        "batches went on after the restart",
        if after.get("applied").copied().unwrap_or(0) >= 1 {
            Ok(())
        } else {
            Err("no batch was applied after the restart: the restart was not mid-push".into())
        },
    );
    r.detail("tenantAnswersAfterRestart", json!(after));
    r.detail("tenantAnswersAll", json!(all));
    c.after(&mut r);
    vec![r]
}

/// The Samba master's pid (its process group: `lab.sh start` runs it under setsid).
fn samba_pgid(dc: &LabDc) -> String {
    std::fs::read_to_string(dc.dir.join("samba.pid"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Lines of the agent's log since `from` that report a failed pass.
fn pass_failures(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("Pass failed"))
        .map(str::to_owned)
        .collect()
}

/// (4) Samba stopped (SIGTERM, as `lab.sh stop`) until the agent has failed a pass, then started
/// again; and Samba frozen (SIGSTOP of its process group) for longer than every timeout the agent
/// has (LDAP connect 3 s, operation 5 s, DRSR 5 s), then SIGCONT.
async fn samba(c: &mut Campaign) -> Vec<FaultReport> {
    let mut stop = FaultReport::new(
        "samba-stopped",
        "Samba stopped until the agent failed a pass, then started again",
    );
    let mut changes = c.changes(3).len();
    let from = c.agent.log().len();
    c.dc.stop();
    let down = c
        .agent
        .wait_log(
            from,
            SHOW_WITHIN,
            "a failed pass while Samba is down",
            |l| !pass_failures(l).is_empty(),
        )
        .await;
    stop.check("the agent noticed", down.map(|_| ()));
    c.dc.start_again();
    changes += c.changes(3).len();
    stop.changes = changes;
    stop.detail(
        "agentSaid",
        pass_failures(c.agent.log().get(from..).unwrap_or(""))
            .first()
            .cloned()
            .unwrap_or_default(),
    );
    let said = pass_failures(c.agent.log().get(from..).unwrap_or(""));
    stop.check(
        "the agent's error says the DC is gone",
        if said
            .iter()
            .any(|l| l.contains("was closed") || l.contains("nothing listens"))
        {
            Ok(())
        } else {
            Err(format!("its pass failures say: {said:?}"))
        },
    );
    c.converge(&mut stop).await;
    c.after(&mut stop);

    let freeze_for = Duration::from_secs(
        faults::LDAP_OPERATION_TIMEOUT_SECS
            .max(faults::LDAP_CONNECT_TIMEOUT_SECS)
            .max(faults::PHS_TIMEOUT_SECS)
            + 7,
    );
    let mut freeze = FaultReport::new(
        "samba-frozen",
        format!(
            "Samba's process group SIGSTOPped for {}s (every agent timeout is at most 5 s), then SIGCONT",
            freeze_for.as_secs()
        ),
    );
    let mut changes = c.changes(3).len();
    let pgid = samba_pgid(&c.dc);
    let from = c.agent.log().len();
    let frozen = Instant::now();
    let ok = Command::new("kill")
        .args(["-STOP", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -STOP -{pgid}");
    let noticed = c
        .agent
        .wait_log(
            from,
            freeze_for + SHOW_WITHIN,
            "a failed pass while Samba is frozen",
            |l| !pass_failures(l).is_empty(),
        )
        .await;
    while frozen.elapsed() < freeze_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ok = Command::new("kill")
        .args(["-CONT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -CONT -{pgid}");
    freeze.detail(
        "frozenSeconds",
        (frozen.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    let said = pass_failures(c.agent.log().get(from..).unwrap_or(""));
    freeze.detail("agentSaid", said.first().cloned().unwrap_or_default());
    freeze.check("the agent noticed", noticed.map(|_| ()));
    freeze.check(
        "the agent's error names the timeout",
        if said.iter().any(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("did not answer within the configured timeout")
        }) {
            Ok(())
        } else {
            Err(format!("its pass failures say: {said:?}"))
        },
    );
    changes += c.changes(3).len();
    freeze.changes = changes;
    c.converge(&mut freeze).await;
    c.after(&mut freeze);
    vec![stop, freeze]
}

/// (5) The journal's disk full: a ballast file fills the tmpfs holding the agent's state while AD
/// changes. The agent must stop writing, say why, keep running (no exit, no poisoned store), hold
/// the changes back, and once the ballast is gone resume and converge; `journal verify` passes.
async fn disk_full(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "journal-disk-full",
        "a ballast file fills the tmpfs (256 MiB) of the agent's state while AD changes; removed after the agent refused twice",
    );
    if let Some(why) = &c.state.not_mounted {
        r.skipped = Some(format!("the agent's state is not on a tmpfs: {why}"));
        return vec![r];
    }
    let mut from = c.agent.log().len();
    // The busy variant (off by default, docs/lab.md § Fault campaign): the disk taken to zero in
    // one step while the agent is writing; the delay is the fault's timing, an input.
    let busy_ms = std::env::var("CLOUDSYNC_FAULT_DISK_BUSY_MS").ok().map(|v| {
        v.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("CLOUDSYNC_FAULT_DISK_BUSY_MS must be a number, not {v:?}"))
    });
    if let Some(ms) = busy_ms {
        r.injected.push_str(&format!(
            "; busy variant: filled {ms} ms after a wave of 6 changes"
        ));
        r.changes += c.changes(6).len();
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let ballast = c.state.fill();
    r.detail("ballastMiB", ballast / (1024 * 1024));
    r.detail("freeBytesWithBallast", c.state.available());
    // One change whose arrival is checked by hand, and the driver's.
    let probe = c.some_user().expect("an in-scope user");
    let title = format!("disk full {}", c.w.next());
    let dn = c.w.slots[probe].dn();
    c.dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: title\ntitle: {title}\n-\n"
    ));
    r.changes += 1 + c.changes(3).len();
    const REFUSED: &str = "The journal cannot take the pass's events now";
    if busy_ms.is_some() {
        // A sled store that met the full disk mid-write stops the agent, saying why; the service
        // manager (Restart=on-failure) starts it again, and so does this test.
        let start = Instant::now();
        while c.agent.exited().is_none()
            && !c.agent.log().get(from..).unwrap_or("").contains(REFUSED)
            && start.elapsed() < SHOW_WITHIN
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if supervise(c, &mut r, from) {
            from = c.agent.log().len();
        }
    }
    let said = c
        .agent
        .wait_log(
            from,
            SHOW_WITHIN,
            "the agent refusing to write twice",
            |l| l.matches(REFUSED).count() >= 2,
        )
        .await;
    let log = c.agent.log();
    let tail = log.get(from..).unwrap_or("");
    r.detail(
        "agentSaid",
        tail.lines()
            .find(|l| l.contains(REFUSED))
            .unwrap_or("")
            .to_owned(),
    );
    r.check("the agent said why it stopped writing", said.map(|_| ()));
    r.check(
        "nothing was poisoned",
        if tail.contains("poisoned") {
            Err(faults::last_lines(tail, 10))
        } else {
            Ok(())
        },
    );
    r.check(
        "the daemon runs while the disk is full",
        c.agent
            .exited()
            .map_or(Ok(()), |s| Err(format!("it exited: {s}"))),
    );
    let upn = c.w.slots[probe].upn.clone();
    let held = c.cloud_title(&upn).await;
    r.check(
        "the change was held back",
        if held.as_deref() == Some(title.as_str()) {
            Err(format!(
                "{upn} has the title set during the full disk already"
            ))
        } else {
            Ok(())
        },
    );
    c.state.empty();
    if busy_ms.is_some() {
        // Converged, with the agent restarted whenever it exits (as its service manager would).
        let start = Instant::now();
        loop {
            let slice = converge(&c.dc, &c.t, &c.w, Duration::from_secs(5)).await;
            if let Ok(took) = slice {
                r.seconds_to_converge = Some(start.elapsed().as_secs_f64().max(took.as_secs_f64()));
                break;
            }
            supervise(c, &mut r, from);
            if start.elapsed() > CONVERGE_WITHIN {
                r.failures.push(slice.unwrap_err());
                break;
            }
        }
    } else {
        c.converge(&mut r).await;
    }
    c.after(&mut r);
    // The journal after the fault: stopped cleanly, verified, started again.
    let status = c.agent.stop();
    r.check(
        "a clean stop after the fault",
        match status {
            Some(s) if s.success() => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let verify = agent_run::agent(
        &[
            "journal",
            "verify",
            c.state.path.join("journal").to_str().unwrap(),
        ],
        &[],
    );
    r.detail("journalVerify", agent_run::text(&verify).trim().to_owned());
    r.check(
        "journal verify passes",
        if verify.status.success() {
            Ok(())
        } else {
            Err(agent_run::text(&verify))
        },
    );
    let clock = FakeClock(c.clock.0.clone());
    c.agent = Agent::start(
        &c.state.path.join("agent.toml"),
        &c.state.outside().join("agent.log"),
        &clock,
    );
    vec![r]
}

/// When the agent has exited: records how (it must be a failure exit, so that `Restart=on-failure`
/// restarts it, and say why) and starts it again, as its service manager would. True if it did.
fn supervise(c: &mut Campaign, r: &mut FaultReport, from: usize) -> bool {
    let Some(status) = c.agent.exited() else {
        return false;
    };
    let log = c.agent.log();
    let reason = log
        .get(from..)
        .unwrap_or("")
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
        .to_owned();
    let n = r.details["restarts"].as_u64().unwrap_or(0) + 1;
    r.detail("restarts", n);
    r.detail(&format!("exit{n}"), format!("{status}: {reason}"));
    r.check(
        "a stop on the full disk is a failure exit that says why",
        if status.success() || reason.is_empty() {
            Err(format!(
                "{status}, {reason:?}: a service manager would not restart it"
            ))
        } else {
            Ok(())
        },
    );
    let clock = FakeClock(c.clock.0.clone());
    c.agent = Agent::start(
        &c.state.path.join("agent.toml"),
        &c.state.outside().join("agent.log"),
        &clock,
    );
    true
}

/// Unix seconds of the agent's last log line (its timestamps come from the stepped clock).
fn last_agent_stamp(log: &str) -> Option<i64> {
    log.lines().rev().find_map(|l| {
        let ts = l.split_whitespace().next()?;
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    })
}

/// Unix seconds of the agent's status file's `generated_at` (its clock when it last wrote it).
fn status_stamp(path: &std::path::Path) -> Option<i64> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let ts = v["generated_at"].as_str().or(v["generatedAt"].as_str())?;
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// (6) The agent's wall clock (only the agent's: the DC and the tenant keep the real one) stepped
/// 2 h forward, then 2 h back (4 h in one step), then to the real time; AD changes at each step.
/// After each: converged, and the lease still the agent's and live.
async fn clock_steps(c: &mut Campaign) -> Vec<FaultReport> {
    let mut out = Vec::new();
    for (name, offset) in [
        ("agent-clock-forward-2h", 7200i64),
        ("agent-clock-back-2h", -7200),
    ] {
        let mut r = FaultReport::new(
            name,
            format!(
                "the agent's wall clock stepped to real time {offset:+} s (libfaketime; monotonic clock untouched)"
            ),
        );
        let lease_before = c.lease().await;
        let from = c.agent.log().len();
        c.clock.set(offset);
        // The step took before AD changes: the agent's status file is stamped with its clock.
        let status = c.state.path.join("agent-status.json");
        let start = Instant::now();
        let stepped = loop {
            let seen = status_stamp(&status).map(|s| s - unix_now());
            if seen.is_some_and(|s| (s - offset).abs() < 600) {
                break Ok(());
            }
            if start.elapsed() > SHOW_WITHIN {
                break Err(format!(
                    "the status file's clock is {seen:?} s off real time, not {offset:+}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        r.check("the agent's clock was stepped", stepped);
        r.changes = c.changes(4).len();
        c.converge(&mut r).await;
        let stamped =
            last_agent_stamp(c.agent.log().get(from..).unwrap_or("")).map(|s| s - unix_now());
        r.detail("agentLogClockOffsetSeconds", stamped);
        let lease_after = c.lease().await;
        r.detail("leaseEpochBefore", lease_before.as_ref().map(|l| l.1));
        r.detail("leaseEpochAfter", lease_after.as_ref().map(|l| l.1));
        r.check(
            "the lease is the agent's and live",
            match &lease_after {
                Some((holder, _, true)) if *holder == c.agent_id => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        let tail = c.agent.log().get(from..).unwrap_or("").to_owned();
        let worrying: Vec<&str> = tail
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        r.detail("agentWarnings", worrying.len());
        r.detail("agentFirstWarning", worrying.first().copied().unwrap_or(""));
        c.after(&mut r);
        out.push(r);
    }
    c.clock.set(0);
    out
}

/// (7) A DirSync cookie the DC rejects: the agent stopped, AD changed, a garbage cookie stored as
/// the domain's checkpoint, the agent started again. It must re-read the domain in full and
/// converge, deletes made while it was down included.
async fn cookie_rejected(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "dirsync-cookie-rejected",
        "the agent stopped, AD changed, its DirSync checkpoint replaced by a cookie the DC rejects, the agent started again",
    );
    let status = c.agent.stop();
    r.check(
        "a clean stop",
        match status {
            Some(s) if s.success() => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    r.changes = c.changes(4).len();
    {
        // As the agent does: sled's files must stay private, or the agent refuses to start.
        cloudsync_private_fs::restrict_umask();
        let journal =
            Journal::open(&c.state.path.join("journal"), JournalOptions::default()).unwrap();
        journal
            .append(
                Vec::new(),
                Some(Checkpoint {
                    domain: c.dc.dns_domain.clone(),
                    source: SourceKind::LdapDirSync,
                    // Version byte 1, flags 0, then not an MSDS blob (tests/ldap_feed.rs).
                    data: b"\x01\x00garbage-cookie".to_vec(),
                }),
            )
            .unwrap();
    }
    let from = c.agent.log().len();
    let clock = FakeClock(c.clock.0.clone());
    c.agent = Agent::start(
        &c.state.path.join("agent.toml"),
        &c.state.outside().join("agent.log"),
        &clock,
    );
    let resync = c
        .agent
        .wait_log(
            from,
            SHOW_WITHIN,
            "the rejected cookie and a full resync",
            |l| l.contains("The server rejected the DirSync cookie; starting a full resync."),
        )
        .await;
    r.check("the agent noticed the rejected cookie", resync.map(|_| ()));
    c.converge(&mut r).await;
    // The pass after the rejection read the whole domain (the template alone holds 1,000 users).
    let log = c.agent.log();
    let entries = log
        .get(from..)
        .unwrap_or("")
        .lines()
        .find(|l| l.contains("Pass appended events."))
        .and_then(|l| l.split("entries=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    r.detail("entriesReRead", entries);
    r.check(
        "the agent re-read the domain in full",
        match entries {
            Some(n) if n >= common::lab::TEMPLATE_USERS as u64 => Ok(()),
            other => Err(format!(
                "the pass after the rejection read {other:?} entries"
            )),
        },
    );
    c.after(&mut r);
    vec![r]
}
