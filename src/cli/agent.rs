//! `cloudsync agent …`: registration, the sync as a one-shot pass or a daemon, on-demand
//! provisioning and the release of staged deletes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use cloudsync_agent::config::Config;

use super::config_args::ConfigArgs;
use cloudsync_agent::control::credentials::AgentCredentials;
use cloudsync_agent::control::doctor;
use cloudsync_agent::control::register::{RegisterError, register};
use cloudsync_agent::control::state_check::check_state;
use cloudsync_agent::control::tenant_client::TenantError;
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::runtime::cloud_stages::CloudStages;
use cloudsync_agent::runtime::daemon::run_all;
use cloudsync_agent::runtime::{CloudReport, SyncOnceOptions, SyncOnceReport, sync_once};

/// Agent commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run one initial-or-delta pass per domain and print what was appended.
    SyncOnce {
        #[command(flatten)]
        config: ConfigArgs,
        /// Stop pushing after this many seconds even if the outbox is not drained (operations
        /// waiting for a retry stay in the outbox for the next run).
        #[arg(long, default_value_t = 300)]
        push_timeout_secs: u64,
    },
    /// Keep every domain's feed going until SIGTERM/SIGINT, then drain and exit 0.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Validate the configuration (every problem at once) and print the result, secrets redacted.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Register this agent with the tenant (admin password from stdin or CLOUDSYNC_ADMIN_PASSWORD),
    /// create or reuse one configuration per domain, and write the credentials file (0600).
    Register {
        #[command(flatten)]
        config: ConfigArgs,
        /// A Global Administrator or Hybrid Identity Administrator of the tenant.
        #[arg(long)]
        admin_upn: String,
    },
    /// Provision one object on demand: import, scope, match, action, printed step by step, then pushed.
    Provision {
        /// The object's distinguished name.
        #[arg(long)]
        dn: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the agent's local state: journal, projection, staged deletes, outbox, registration.
    /// While `agent run` holds the databases, its status file is shown instead. Exit code: 0 all
    /// well, 1 error, else a bit set: 2 deletes staged, 4 quarantine, 8 other attention.
    Status {
        /// The agent configuration.
        #[arg(
            long,
            env = "CLOUDSYNC_CONFIG",
            default_value = "/etc/cloudsync/agent.toml"
        )]
        config: PathBuf,
        /// Print JSON (the status report) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the agent's hardened systemd unit (`cloudsync-agent.service`) for this configuration and
    /// print the commands that create its account and state directories, install and start it.
    Units(super::agent_units::UnitsArgs),
    /// Check the installed agent: configuration, state modes, every domain (DNS, TCP, TLS, bind,
    /// read, clock), the tenant (TLS, credentials, token, heartbeat, clock) and disk space; one
    /// line per check, each failure with its fix. Exit code: 0 all ok (warnings allowed), 1 a
    /// check failed, 2 the configuration cannot be loaded.
    Doctor {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON (the report) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Install the agent: the wizard on a terminal, or every answer from flags with `--unattended`;
    /// run again on an installed agent to update it in place (its registration is kept). Exit code:
    /// 0 verified, 1 error, 2 bad input, 3 admin sign-in or role refused, 4 a domain check failed, 5
    /// installed but not verified, 6 not available yet.
    Install(Box<super::install::InstallArgs>),
    /// Remove the services (or print the commands), the tenant registration and the private files.
    Uninstall(super::install_cmdlets::InstalledArgs),
    /// Sign in as a tenant administrator and check the role (the cmdlet `Connect-…`).
    Connect(super::install_cmdlets::InstalledArgs),
    /// Domains of the installed agent.
    #[command(subcommand)]
    Domain(super::install_cmdlets::DomainCommand),
    /// The service account of the installed agent.
    #[command(subcommand)]
    ServiceAccount(super::install_cmdlets::ServiceAccountCommand),
    /// The service account's AD permissions per feature: set (as a domain admin) or check.
    #[command(subcommand)]
    Permissions(super::install_cmdlets::PermissionsCommand),
    /// Password hash sync on or off in the tenant's configurations of the installed agent.
    #[command(subcommand)]
    Phs(super::install_cmdlets::PhsCommand),
    /// Password writeback in the tenant: `enable [--allow-unlock]` or `disable` (the
    /// `Set-AADCloudSyncPasswordWritebackConfiguration` analogue).
    #[command(subcommand)]
    Writeback(super::install_cmdlets::WritebackCommand),
    /// Release the deletes the delete threshold staged (all domains, or one) and push them.
    AllowDeletes {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only this domain (DNS name).
        #[arg(long)]
        domain: Option<String>,
    },
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    args.load()
}

/// [`load`], then the state check: every command that opens the agent's state refuses to start on
/// group- or world-accessible state (`private_fs`).
fn load_checked(args: &ConfigArgs) -> anyhow::Result<Config> {
    let config = load(args)?;
    check_state(&config)?;
    Ok(config)
}

fn open_journal(config: &Config) -> anyhow::Result<Journal> {
    let dir = &config.agent.journal_dir;
    Journal::open(dir, JournalOptions::default())
        .with_context(|| format!("while opening the journal in {}", dir.display()))
}

/// Runs an agent command.
pub fn run(cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    match cmd {
        AgentCommand::Status { config, json } => super::agent_status::run(&config, json),
        AgentCommand::Units(args) => super::agent_units::run(args),
        AgentCommand::Install(args) => {
            let args = *args;
            if args.unattended {
                runtime.block_on(super::install::unattended(args))
            } else {
                super::wizard::run(&runtime, args)
            }
        }
        AgentCommand::Uninstall(args) => runtime.block_on(super::install_cmdlets::uninstall(args)),
        AgentCommand::Connect(args) => runtime.block_on(super::install_cmdlets::connect(args)),
        AgentCommand::Domain(cmd) => runtime.block_on(super::install_cmdlets::domain_add(cmd)),
        AgentCommand::ServiceAccount(cmd) => {
            runtime.block_on(super::install_cmdlets::service_account_set(cmd))
        }
        AgentCommand::Permissions(cmd) => runtime.block_on(super::permissions::run(cmd)),
        AgentCommand::Phs(cmd) => runtime.block_on(super::install_cmdlets::phs(cmd)),
        AgentCommand::Writeback(cmd) => runtime.block_on(super::install_cmdlets::writeback(cmd)),
        AgentCommand::Doctor { config, json } => doctor(&runtime, &config, json),
        AgentCommand::CheckConfig { config } => {
            let config = load(&config)?;
            println!("{config:#?}");
            // The same refusals as `sync-once`: open state, and an unreadable or open credentials file.
            check_state(&config)?;
            if let Some(t) = &config.tenant
                && t.credentials_file.exists()
            {
                AgentCredentials::load(&t.credentials_file)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::SyncOnce {
            config,
            push_timeout_secs,
        } => {
            let config = load_checked(&config)?;
            let journal = open_journal(&config)?;
            let report = runtime.block_on(async {
                let options = SyncOnceOptions {
                    interactive: true,
                    push_timeout: std::time::Duration::from_secs(push_timeout_secs),
                    cancel: ctrl_c_token(),
                };
                sync_once(&config, journal, options).await
            });
            print_sync_once(report)
        }
        AgentCommand::Register { config, admin_upn } => {
            let config = load_checked(&config)?;
            let password = admin_password()?;
            let done = runtime
                .block_on(register(&config, &admin_upn, &password))
                .map_err(explain_register)?;
            println!(
                "registered agent {} (client id {})",
                done.creds.agent_id, done.creds.client_id
            );
            for (domain, id, created) in &done.configurations {
                println!(
                    "  {domain}: configuration {id} ({})",
                    if *created { "created" } else { "reused" }
                );
            }
            if let Some(t) = &config.tenant {
                println!(
                    "credentials written to {} (mode 0600)",
                    t.credentials_file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Provision { dn, config } => {
            let config = load_checked(&config)?;
            let journal = open_journal(&config)?;
            let mut stages = CloudStages::open(&config, journal)?;
            runtime.block_on(provision(&mut stages, &dn))?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::AllowDeletes { config, domain } => {
            let config = load_checked(&config)?;
            let journal = open_journal(&config)?;
            let mut stages = CloudStages::open(&config, journal)?;
            runtime.block_on(async {
                let n = stages.runner.allow_deletes(domain.as_deref()).await?;
                println!("released {n} staged deletes");
                let (summary, status) = stages.push_until_drained(ctrl_c_token()).await?;
                println!(
                    "pushed: {} operations acknowledged, checkpoint {}",
                    status.ops_acknowledged, summary.checkpoint
                );
                // Tell the tenant at once, so "Delete threshold exceeded" clears without waiting.
                if let Err(e) = stages.heartbeat().await {
                    tracing::warn!(error = %e, "Heartbeat failed; the tenant shows the staged deletes until the next one.");
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Run { config } => {
            let config = load_checked(&config)?;
            let journal = open_journal(&config)?;
            let stages = match config.tenant {
                Some(_) => Some(CloudStages::open(&config, journal.clone())?),
                None => None,
            };
            runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                let signals = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!("Signal received; stopping.");
                    signals.cancel();
                });
                run_all(config, journal, stages, shutdown, true).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `agent doctor`: prints the report only (the checks are the library's).
fn doctor(
    runtime: &tokio::runtime::Runtime,
    args: &ConfigArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => {
            let fix = "correct the configuration (`cloudsync agent check-config --config FILE` lists every problem)";
            if json {
                println!(
                    "{}",
                    serde_json::json!({"checks": [{"status": "fail", "what": "configuration", "detail": format!("{e:#}"), "fix": fix}]})
                );
            } else {
                println!("FAIL configuration: {e:#} — fix: {fix}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let mut report = doctor::Report::default();
    report.checks.push(doctor::Check::ok(
        "configuration",
        format!("{} loaded", args.config.display()),
    ));
    let checks = runtime.block_on(doctor::run(&config, std::time::SystemTime::now()));
    report.checks.extend(checks.checks);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for check in &report.checks {
            println!("{check}");
        }
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// The admin password: CLOUDSYNC_ADMIN_PASSWORD, else the first line of stdin (never a flag).
fn admin_password() -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Ok(p) = std::env::var("CLOUDSYNC_ADMIN_PASSWORD") {
        return Ok(zeroize::Zeroizing::new(p));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Admin password (input is echoed; prefer CLOUDSYNC_ADMIN_PASSWORD): ");
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .context("while reading the admin password from stdin")?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    anyhow::ensure!(
        !password.is_empty(),
        "no admin password: pipe it on stdin or set CLOUDSYNC_ADMIN_PASSWORD"
    );
    Ok(password)
}

/// Turns a registration failure into advice.
fn explain_register(e: RegisterError) -> anyhow::Error {
    let hint = match &e {
        RegisterError::Tenant(TenantError::SignIn { .. }) => {
            "the tenant refused the admin sign-in: check the UPN and password"
        }
        RegisterError::Tenant(TenantError::Forbidden { .. }) => {
            "registration needs a Global Administrator or Hybrid Identity Administrator"
        }
        RegisterError::Tenant(TenantError::Unreachable { .. }) => {
            "check [tenant] url, that the tenant is running, and [tenant] ca_file"
        }
        _ => "registration failed",
    };
    anyhow::Error::new(e).context(hint)
}

/// On-demand provisioning: prints each step, then pushes the result.
async fn provision(stages: &mut CloudStages, dn: &str) -> anyhow::Result<()> {
    stages.project_all().await.context("while projecting")?;
    let (log, ops) = stages.runner.provision(dn).await?;
    for entry in &log {
        println!("{:?} {}: {}", entry.step, entry.outcome, entry.detail);
    }
    println!("{} operations enqueued", ops.len());
    let (summary, status) = stages.push_until_drained(ctrl_c_token()).await?;
    println!(
        "pushed: {} operations acknowledged, {} objects quarantined, checkpoint {}",
        status.ops_acknowledged, status.objects_quarantined, summary.checkpoint
    );
    Ok(())
}

/// A token cancelled by Ctrl-C or SIGTERM.
fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let on_signal = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        on_signal.cancel();
    });
    token
}

/// Prints what `agent sync-once` did; exit code 1 when a domain's pass or cycle failed, an error
/// when the cloud stages stopped.
fn print_sync_once(report: SyncOnceReport) -> anyhow::Result<ExitCode> {
    let appended = report.appended();
    let mut failed = false;
    for o in report.domains {
        match o.result {
            Ok(r) => {
                let kinds: Vec<String> =
                    r.by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{} ({}): {} entries, {} events appended{}{}, last seq {}, {} ms{}",
                    o.label,
                    r.domain,
                    r.entries,
                    r.events,
                    if kinds.is_empty() { "" } else { ": " },
                    kinds.join(" "),
                    r.last_seq.map_or("-".into(), |s| s.to_string()),
                    r.elapsed.as_millis(),
                    r.resync
                        .map(|reason| format!(" (full read: {reason:?})"))
                        .unwrap_or_default(),
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", o.label);
            }
        }
    }
    // Password hash sync (issue 7): one cycle per domain after the feed, when enabled.
    for (label, result) in report.phs {
        match result {
            Ok(r) => println!(
                "{label}: password hash sync: {} objects, {} hashes appended, {} skipped",
                r.objects, r.hashes, r.skipped
            ),
            Err(e) => {
                failed = true;
                eprintln!("{label}: password hash sync: {e}");
            }
        }
    }
    if let Some(cloud) = report.cloud {
        print_cloud(&cloud?, appended);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The cloud stages' part of `agent sync-once`.
fn print_cloud(c: &CloudReport, appended: u64) {
    if !c.projected.exceeded.is_empty() {
        eprintln!(
            "Delete threshold exceeded for {}: {} deletes staged; release them with `cloudsync agent allow-deletes`",
            c.projected.exceeded.join(", "),
            c.projected.staged
        );
    }
    if c.push.checkpoint < c.outbox_last {
        eprintln!(
            "the outbox is not drained: {} operations wait for a retry (see the tenant's provisioning logs); the next run sends them",
            c.outbox_last - c.push.checkpoint
        );
    }
    println!(
        "summary: {appended} events appended, {} events projected, {} ops enqueued, {} ops acknowledged, {} staged deletes, {} objects quarantined, push checkpoint {}",
        c.projected.events,
        c.projected.enqueued,
        c.status.ops_acknowledged,
        c.projected.staged,
        c.status.objects_quarantined,
        c.push.checkpoint,
    );
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
