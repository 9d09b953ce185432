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
#[path = "common/fault_dc.rs"]
mod fault_dc;
#[path = "common/fault_host.rs"]
mod fault_host;
#[path = "common/fault_report.rs"]
mod fault_report;
#[path = "common/fault_tenant.rs"]
mod fault_tenant;
#[path = "common/faults.rs"]
mod faults;
#[path = "common/ha.rs"]
mod ha;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::time::{Duration, Instant};

use common::lab::LabDc;
use diff_changes::{Kind, World, random_change, seed_world};
use fault_report::{FaultReport, applied_twice};
use faults::{Agent, FakeClock, StateDir, converge};
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
                "tenant-429-storm" => fault_tenant::storm_429(&mut c).await,
                "tenant-5xx-latency-drops" => fault_tenant::errors_5xx(&mut c).await,
                "tenant-restart-mid-batch" => fault_tenant::tenant_restart(&mut c).await,
                "samba-stop-and-freeze" => fault_dc::samba(&mut c).await,
                "journal-disk-full" => fault_host::disk_full(&mut c).await,
                "agent-clock-steps" => fault_host::clock_steps(&mut c).await,
                _ => fault_dc::cookie_rejected(&mut c).await,
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
    let path = fault_report::summary_path();
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
