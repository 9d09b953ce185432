//! `cloudsync updater run --config FILE`: asks the tenant's release channel for the newest agent
//! version and says whether this build is up to date (docs/updater.md). Run daily by
//! `cloudsync-updater.timer`.
//!
//! Exit codes: `0` up to date; `2` ([`EXIT_UPDATE_AVAILABLE`]) a newer version is available; `1` the
//! check failed (configuration, not registered, tenant unreachable or refusing). Downloading,
//! checking the signature of and installing the new version is a later issue's work: today the
//! message says so and an admin installs it.

use std::process::ExitCode;

use anyhow::Context;
use cloudsync_agent::control::credentials::AgentCredentials;
use cloudsync_agent::control::tenant_client::TenantClient;
use cloudsync_agent::control::updater::{EXIT_UPDATE_AVAILABLE, UpdateCheck, check};
use cloudsync_api::release::ReleaseSource;

use super::config_args::ConfigArgs;

/// `cloudsync updater …`.
#[derive(Debug, clap::Subcommand)]
pub enum UpdaterCommand {
    /// Check the tenant's release channel once: exit 0 up to date, 2 a newer version is available,
    /// 1 the check failed.
    Run(ConfigArgs),
}

/// Runs the command.
pub fn run(cmd: UpdaterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UpdaterCommand::Run(args) => run_check(&args),
    }
}

fn run_check(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
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
    let result = runtime
        .block_on(check(&client))
        .context("while asking the tenant's release channel")?;
    Ok(match result {
        UpdateCheck::UpToDate { current, latest } => {
            let source = match latest.source {
                ReleaseSource::Published => "the newest published version",
                ReleaseSource::TenantBuild => "nothing is published; the tenant's own version",
            };
            tracing::info!(current = %current, latest = %latest.version, "The agent is up to date.");
            println!(
                "cloudsync {current} is up to date (release channel: {} — {source}).",
                latest.version
            );
            ExitCode::SUCCESS
        }
        UpdateCheck::Available { current, latest } => {
            tracing::warn!(current = %current, available = %latest.version, "A newer agent version is available.");
            println!(
                "cloudsync {} is available (this agent runs {current}). Automatic download, signature \
                 check and swap are not built yet (a later issue); install it by hand: see docs/updater.md.",
                latest.version
            );
            ExitCode::from(EXIT_UPDATE_AVAILABLE)
        }
    })
}
