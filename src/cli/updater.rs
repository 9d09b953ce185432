//! `cloudsync updater run --config FILE`: asks the tenant's release channel for the newest agent
//! version and, with a release key pinned (`[updater] public_key`), applies it: signature, download,
//! atomic swap, restart, health check, rollback (docs/updater.md). Run daily by
//! `cloudsync-updater.timer`.
//!
//! Exit codes: `0` up to date or updated; `2` ([`EXIT_UPDATE_AVAILABLE`]) newer but not applied (no
//! key pinned, or published without a binary); `3` refused (bad signature, truncated or corrupt
//! download, older version); `4` rolled back; `5` deferred (another agent holds the upgrade slot);
//! `1` the run failed (configuration, not registered, tenant unreachable or refusing, disk).

use std::process::ExitCode;

use anyhow::Context;
use cloudsync_agent::control::credentials::AgentCredentials;
use cloudsync_agent::control::tenant_client::TenantClient;
use cloudsync_agent::control::updater::apply::{Outcome, Updater};
use cloudsync_agent::control::updater::{EXIT_UPDATE_AVAILABLE, THIS_VERSION};
use cloudsync_api::release::ReleaseSource;

use super::config_args::ConfigArgs;

/// `cloudsync updater …`.
#[derive(Debug, clap::Subcommand)]
pub enum UpdaterCommand {
    /// Check the release channel once and apply a newer signed release: exit 0 up to date or
    /// updated, 2 available but not applied, 3 refused, 4 rolled back, 5 deferred, 1 failed.
    Run(ConfigArgs),
}

/// Runs the command.
pub fn run(cmd: UpdaterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UpdaterCommand::Run(args) => run_once(&args),
    }
}

fn run_once(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load()?;
    let tenant = config.tenant.as_ref().with_context(|| {
        format!(
            "{} has no [tenant] section: the updater asks the tenant's release channel",
            args.config.display()
        )
    })?;
    let creds = AgentCredentials::load(&tenant.credentials_file).with_context(|| {
        format!(
            "while reading the agent's registration ({}); register the agent first",
            tenant.credentials_file.display()
        )
    })?;
    let client = TenantClient::agent(tenant, &creds)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    let updater = Updater {
        client: &client,
        agent_id: creds.agent_id,
        config: &config.updater,
        current: THIS_VERSION.to_owned(),
    };
    let outcome = runtime
        .block_on(updater.run())
        .context("while updating the agent")?;
    report(&outcome);
    Ok(ExitCode::from(outcome.exit_code()))
}

fn report(outcome: &Outcome) {
    match outcome {
        Outcome::UpToDate { current, latest } => {
            let source = match latest.source {
                ReleaseSource::Published => "the newest published version",
                ReleaseSource::TenantBuild => "nothing is published; the tenant's own version",
            };
            tracing::info!(current = %current, latest = %latest.version, "The agent is up to date.");
            println!(
                "cloudsync {current} is up to date (release channel: {} — {source}).",
                latest.version
            );
        }
        Outcome::NotApplied {
            current,
            offered,
            why,
        } => {
            tracing::warn!(current = %current, available = %offered, reason = %why, "A newer agent version is available but not applied.");
            println!(
                "cloudsync {offered} is available (this agent runs {current}) but not applied: {why}. Install it by hand: see docs/updater.md (exit {EXIT_UPDATE_AVAILABLE})."
            );
        }
        Outcome::Refused { offered, refusal } => {
            tracing::error!(version = %offered, reason = %refusal, "Refused the offered release; the installed binary is unchanged.");
            println!("Refused cloudsync {offered}: {refusal}. The installed binary is unchanged.");
        }
        Outcome::Deferred { offered, waited } => {
            tracing::warn!(version = %offered, waited_secs = waited.as_secs(), "Another agent holds the upgrade slot; deferred to the next run.");
            println!(
                "Deferred cloudsync {offered}: another agent of this tenant is upgrading (waited {} s for the upgrade slot); the next run tries again.",
                waited.as_secs()
            );
        }
        Outcome::Updated { from, to, binary } => {
            tracing::info!(from = %from, to = %to, binary = %binary.display(), "The agent was updated.");
            println!(
                "Updated cloudsync {from} → {to} ({}; the previous binary is kept as {}.previous); the tenant sees the agent Active on the new binary.",
                binary.display(),
                binary.display()
            );
        }
        Outcome::RolledBack {
            offered,
            why,
            previous_healthy,
        } => {
            let back = if *previous_healthy {
                "the previous binary runs again and heartbeats"
            } else {
                "the previous binary is back in place but did not heartbeat within the deadline either — check the agent (journalctl -u cloudsync-agent.service)"
            };
            println!("ROLLED BACK cloudsync {offered}: {why}; {back}.");
        }
    }
}
