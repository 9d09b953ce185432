//! `cloudsync bench`: the end-to-end throughput harness (docs/bench.md). The agent library runs it
//! (`cloudsync_agent::bench`); this file parses the flags, hands in the tenant crate's in-process
//! apply (the push stage's limit, which the agent crate may not import) and prints the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use cloudsync_agent::bench::{BenchOptions, InProcessApply, Stages, WriteBudget};
use cloudsync_api::ops::OperationBatch;
use cloudsync_tenant::store::Store;

/// Flags of `cloudsync bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Synced objects of the synthetic directory: users, groups (1 in 20) and contacts (1 in 20).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=50_000_000))]
    pub objects: u64,
    /// Stages to run, comma-separated, in this order: journal,phs,projection,push,tenant.
    #[arg(long, default_value = "journal,phs,projection,push,tenant")]
    pub stages: String,
    /// Percent of the objects the delta round changes after the initial sync (0: no delta round).
    #[arg(long, default_value_t = 1.0)]
    pub churn: f64,
    /// The generator's seed: the same seed and N give the same directory.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON (the schema of docs/bench.md) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep the run's stores here (must be empty or absent); default: a temporary directory,
    /// removed at the end.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Give the tenant a write budget: the bucket's capacity (burst) in operations, as `tenant serve
    /// --write-capacity` (the realistic profile: 7,000); the agent paces itself to the refill rate
    /// (`[push] write_rate_limit`). The report then compares the push with the budget.
    #[arg(long, requires = "write_refill_per_second")]
    pub write_capacity: Option<f64>,
    /// With `--write-capacity`: operations refilled per second, the sustained ceiling (the realistic
    /// profile: 23.33, i.e. 7,000 per 5 minutes).
    #[arg(long, requires = "write_capacity")]
    pub write_refill_per_second: Option<f64>,
}

/// The tenant crate's in-process apply, into a store opened the way `tenant serve` opens its own.
struct TenantApply;

impl InProcessApply for TenantApply {
    fn apply(
        &self,
        dir: &Path,
        batches: &mut dyn Iterator<Item = OperationBatch>,
    ) -> Result<Duration, String> {
        let store = Store::open(dir).map_err(|e| e.to_string())?;
        let mut record = cloudsync_tenant::bench::config_record();
        let (_, elapsed) = cloudsync_tenant::bench::apply_all(&store, &mut record, batches)
            .map_err(|e| e.to_string())?;
        Ok(elapsed)
    }
}

/// Runs `cloudsync bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..=100.0).contains(&args.churn),
        "--churn is a percentage: 0 to 100"
    );
    let stages = Stages::parse(&args.stages)?;
    let write_budget = match (args.write_capacity, args.write_refill_per_second) {
        (Some(capacity), Some(refill_per_second)) => {
            anyhow::ensure!(
                (1.0..=1e9).contains(&capacity),
                "--write-capacity is a number of operations: 1 to 1,000,000,000"
            );
            anyhow::ensure!(
                refill_per_second.is_finite()
                    && refill_per_second > 0.0
                    && refill_per_second <= 1e9,
                "--write-refill-per-second is operations per second: above 0, at most 1,000,000,000"
            );
            anyhow::ensure!(
                stages.push,
                "--write-capacity needs the push stage (the budget is the tenant's)"
            );
            Some(WriteBudget {
                capacity,
                refill_per_second,
            })
        }
        _ => None,
    };
    let (state_dir, temporary) = match &args.state_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "cloudsync-bench-{}-{}",
                std::process::id(),
                time::OffsetDateTime::now_utc().unix_timestamp_nanos()
            )),
            true,
        ),
    };
    let options = BenchOptions {
        objects: args.objects,
        seed: args.seed,
        stages,
        churn_percent: args.churn,
        state_dir: state_dir.clone(),
        tenant_exe: std::env::current_exe().context("while locating the cloudsync executable")?,
        interactive: true,
        write_budget,
    };
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    let result = runtime.block_on(cloudsync_agent::bench::run(&options, &TenantApply));
    if temporary {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    let report = result.context("while running the benchmark")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    // A tenant that does not hold what was sent, or a delta that did not arrive, is a failed run.
    let held = report.tenant.as_ref().is_none_or(|t| t.matches_directory);
    let arrived = report
        .delta
        .as_ref()
        .is_none_or(|d| d.verified != Some(false));
    Ok(if held && arrived {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
