//! Latency on the lab DC with the real agent daemon (`cloudsync agent run`) syncing to a real
//! `cloudsync tenant serve` (issue 17's lab half; `docs/bench.md` § Lab latency):
//!
//! 1. **AD change → Graph**: per `title` modify (as the domain administrator, over LDAPS), the time
//!    from the modify's return until a Graph GET of the user shows the new `jobTitle`.
//! 2. **Password reset → sign-in**: per `unicodePwd` reset, the time until the tenant's sign-in check
//!    accepts the new password (password hash sync over MS-DRSR).
//! 3. **Samba's own notification delay**, in the same run: a change-notification search on a
//!    connection of the bench's own timestamps each change's notification.
//! 4. **Seeding**: N users with passwords added to `OU=LatBench`, then the agent's initial sync of
//!    them: its DirSync read and PHS cycle (from its log) and the time until Graph lists every user.
//!
//! Run: `cargo bench --bench lab_latency -- [--users N] [--changes C] [--spread-ms M]
//! [--timeout-secs T] [--sync-timeout-secs S] [--seed-connections K] [--json]` (lab prerequisites:
//! `scripts/lab.sh install`). With `--json` the JSON goes to stdout and the table to stderr. The agent and tenant are `CARGO_BIN_EXE_cloudsync`, which Cargo builds
//! in the bench's profile (release under `cargo bench`); the report names the file. Exit code 1 when a
//! change did not become visible within its deadline or the initial sync did not complete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/agent_run.rs"]
mod agent_run;
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "lab_latency/harness.rs"]
mod lat_harness;
#[path = "lab_latency/probes.rs"]
mod lat_probes;
#[path = "lab_latency/report.rs"]
mod lat_report;
#[path = "../tests/common/tenant.rs"]
mod tenant_fixture;

use lat_harness::Options;

const USAGE: &str = "usage: cargo bench --bench lab_latency -- [--users N] [--changes C] [--spread-ms M] \
[--timeout-secs T] [--sync-timeout-secs S] [--seed-connections K] [--json]";

fn parse(args: &[String]) -> Result<(Options, bool), String> {
    let mut opts = Options::default();
    let mut json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--users" => opts.users = number(arg)?.max(1) as usize,
            "--changes" => opts.changes = number(arg)? as usize,
            "--spread-ms" => opts.spread_ms = number(arg)?,
            "--timeout-secs" => opts.timeout_secs = number(arg)?.max(1),
            "--sync-timeout-secs" => opts.sync_timeout_secs = number(arg)?.max(1),
            "--seed-connections" => opts.seed_connections = number(arg)?.max(1) as usize,
            "--json" => json = true,
            // Cargo passes `--bench`; filters are not used here.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((opts, json))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs this without `--bench`: keep that quick.
    if !args.iter().any(|a| a == "--bench") {
        println!("lab_latency: run with `cargo bench --bench lab_latency`.");
        return;
    }
    let (opts, json) = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lab_latency: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let report = lat_harness::run(&opts);
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json()).unwrap());
        eprint!("{}", report.table());
    } else {
        print!("{}", report.table());
    }
    if !report.ok() {
        std::process::exit(1);
    }
}
