//! `cloudsync journal …`: diagnostics over an event journal directory.

use std::process::ExitCode;

use clap::Subcommand;

/// Journal subcommands.
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Sequence range, counts per kind and domain, cursors, checkpoints, size on disk.
    Inspect {
        /// The journal directory.
        dir: std::path::PathBuf,
    },
}

/// Runs a journal subcommand.
pub fn run(cmd: JournalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JournalCommand::Inspect { dir } => {
            anyhow::bail!("journal inspect {}: not built yet", dir.display())
        }
    }
}
