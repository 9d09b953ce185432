//! `--config FILE [--set section.key=value]…`: the arguments of every command that reads the agent's
//! configuration, and the one place they are loaded (defaults → file → `CLOUDSYNC_*` → `--set`).

use std::path::PathBuf;

use anyhow::Context;
use cloudsync_agent::config::{Config, ConfigError, Override};

/// Where the configuration is and what the command line overrides in it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// The agent configuration (TOML; `CLOUDSYNC_SECTION__KEY` environment variables override it).
    #[arg(long)]
    pub config: PathBuf,
    /// Override one key after the file and the environment, e.g. `--set domains.corp.poll_interval_secs=30`
    /// (repeatable; the value is TOML, or else taken as text).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// Loads and validates the configuration with every layer.
    pub fn load(&self) -> anyhow::Result<Config> {
        let overrides = self
            .set
            .iter()
            .map(|s| s.parse::<Override>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|p| ConfigError::Invalid(vec![p]))
            .context("in --set")?;
        Config::load_layered(&self.config, "CLOUDSYNC_", &overrides)
            .with_context(|| format!("while loading {}", self.config.display()))
    }
}
