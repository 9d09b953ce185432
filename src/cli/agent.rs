//! `cloudsync agent …`: the AD change feed as a one-shot pass or a daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use crate::agent;
use crate::config::Config;
use crate::journal::{Journal, JournalOptions};

/// Agent commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run one initial-or-delta pass per domain and print what was appended.
    SyncOnce {
        /// The agent configuration (TOML; CLOUDSYNC_* environment variables override it).
        #[arg(long)]
        config: PathBuf,
    },
    /// Keep every domain's feed going until SIGTERM/SIGINT, then drain and exit 0.
    Run {
        /// The agent configuration (TOML; CLOUDSYNC_* environment variables override it).
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the configuration (every problem at once) and print the result, secrets redacted.
    CheckConfig {
        /// The agent configuration.
        #[arg(long)]
        config: PathBuf,
    },
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("while loading {}", path.display()))
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
        AgentCommand::CheckConfig { config } => {
            let config = load(&config)?;
            println!("{config:#?}");
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::SyncOnce { config } => {
            let config = load(&config)?;
            let journal = open_journal(&config)?;
            let outcomes = runtime.block_on(agent::sync_once(&config, &journal, true));
            let mut failed = false;
            for o in outcomes {
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
            for (label, result) in runtime.block_on(agent::phs::sync_once(&config, &journal)) {
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
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        AgentCommand::Run { config } => {
            let config = load(&config)?;
            let journal = Arc::new(open_journal(&config)?);
            runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                let signals = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!("Signal received; stopping.");
                    signals.cancel();
                });
                agent::run(config, journal, shutdown, true).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
