//! Command-line interface. Enters: argv. Leaves: an exit code; output on stdout, logs on stderr.
//!
//! One file per top-level command; `anyhow` with context is used here (and only here) for error reports.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod agent;
pub mod agent_status;
pub mod agent_units;
pub mod bench;
pub mod config_args;
pub mod install;
pub mod install_cmdlets;
pub mod journal;
pub mod permissions;
pub mod phs;
pub mod push;
pub mod release;
pub mod tenant;
pub mod updater;
pub mod wizard;

/// The version line: crate version and the journal's on-disk format version.
pub fn version_line() -> String {
    format!(
        "{} (journal format v{})",
        env!("CARGO_PKG_VERSION"),
        cloudsync_agent::journal::FORMAT_VERSION
    )
}

/// cloudsync — keep an Active Directory in sync with a cloud directory.
#[derive(Debug, Parser)]
#[command(name = "cloudsync", version = &*Box::leak(version_line().into_boxed_str()), propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `cloudsync=debug`.
    #[arg(long, global = true, env = "CLOUDSYNC_LOG", default_value = "info")]
    pub log: String,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "CLOUDSYNC_LOG_JSON")]
    pub log_json: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect, replay, verify and export an event journal.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// The AD change feed: one pass (`sync-once`) or the daemon (`run`).
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Run the local tenant (the emulated cloud directory).
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Drive the push stage with synthetic operations (tests and diagnostics).
    #[command(subcommand, hide = true)]
    Push(push::PushCommand),
    /// Password hash sync diagnostics (OrgId hash of a password).
    #[command(subcommand)]
    Phs(phs::PhsCommand),
    /// The agent updater: `run` checks the tenant's release channel and applies a signed
    /// upgrade (docs/updater.md).
    #[command(subcommand)]
    Updater(updater::UpdaterCommand),
    /// Agent releases: a signing key pair, a signature, publishing to a tenant (docs/updater.md).
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// The throughput harness: a synthetic directory through journal, password hash sync,
    /// projection and push to a local tenant process, each stage next to its limit (docs/bench.md).
    Bench(Box<bench::BenchArgs>),
}

/// The log filter for `filter` (EnvFilter syntax; `info` when it does not parse). Unless `filter`
/// names `ldap3`, the LDAP library logs errors only: its connection driver warns "socket receive
/// error: Connection reset by peer" when a DC resets a connection the agent is done with (seen from
/// `agent doctor` on Samba), and every failure that matters reaches the agent as an error it reports
/// with its own context. `CLOUDSYNC_LOG=info,ldap3=warn` shows them again.
pub fn log_filter(filter: &str) -> tracing_subscriber::EnvFilter {
    let parsed = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if filter.contains("ldap3") {
        return parsed;
    }
    match "ldap3=error".parse() {
        Ok(directive) => parsed.add_directive(directive),
        Err(_) => parsed,
    }
}

/// Initialises tracing to stderr.
pub fn init_tracing(filter: &str, json: bool) {
    let filter = log_filter(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The exit code of every command that finds the journal damaged (sled's own files): rebuild it
/// with `cloudsync journal rebuild` (docs/journal.md).
pub const EXIT_JOURNAL_DAMAGED: u8 = 3;

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    // Before anything is created: every file 0600, every directory 0700 (`private_fs`).
    cloudsync_private_fs::restrict_umask();
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let result = match cli.command {
        Command::Journal(cmd) => journal::run(cmd),
        Command::Agent(cmd) => agent::run(cmd),
        Command::Tenant(cmd) => tenant::run(cmd),
        Command::Push(cmd) => push::run(cmd),
        Command::Phs(cmd) => phs::run(cmd),
        Command::Updater(cmd) => updater::run(cmd),
        Command::Release(cmd) => release::run(cmd),
        Command::Bench(args) => bench::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // A damaged journal is said once, with what to do, and has its own exit code.
            if let Some(damaged) = err
                .chain()
                .find_map(|e| e.downcast_ref::<cloudsync_agent::journal::JournalError>())
                .filter(|e| e.is_damaged())
            {
                eprintln!("error: {damaged}");
                return ExitCode::from(EXIT_JOURNAL_DAMAGED);
            }
            eprintln!("error: {}", render_chain(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, `: `-separated, leaving out a cause whose text the line
/// already holds: many errors embed their source in their own message (`#[error("…: {0}")]` with
/// `#[from]`), and `{:#}` would print that source twice.
fn render_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{log_filter, render_chain};

    #[test]
    fn the_ldap_library_logs_errors_only_unless_the_filter_names_it() {
        let quiet = log_filter("warn").to_string();
        assert!(quiet.contains("ldap3=error"), "{quiet}");
        let asked = log_filter("info,ldap3=debug").to_string();
        assert!(
            asked.contains("ldap3=debug") && !asked.contains("ldap3=error"),
            "{asked}"
        );
        let bad = log_filter("no such=filter=").to_string();
        assert!(bad.contains("ldap3=error"), "{bad}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("refusing to start: {0}")]
    struct Outer(#[from] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("/state/db has mode 644")]
    struct Inner;

    #[test]
    fn a_cause_embedded_in_its_parent_is_said_once() {
        let err = anyhow::Error::from(Outer(Inner)).context("while starting the local tenant");
        assert_eq!(
            render_chain(&err),
            "while starting the local tenant: refusing to start: /state/db has mode 644"
        );
        // `{:#}` is what the binary printed before: the mode twice.
        assert_eq!(format!("{err:#}").matches("mode 644").count(), 2);
    }

    #[test]
    fn distinct_causes_are_all_said() {
        let err = anyhow::anyhow!("disk full")
            .context("while appending")
            .context("sync-once");
        assert_eq!(render_chain(&err), "sync-once: while appending: disk full");
    }
}
