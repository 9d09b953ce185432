//! Layered agent configuration: defaults → TOML file → `CLOUDSYNC_*` environment (`__` nests keys).
//!
//! Enters: a TOML file path and the process environment. Leaves: a validated [`Config`], or a
//! [`ConfigError`] listing **every** problem at once, each naming the key to fix.
//!
//! ```toml
//! [agent]
//! journal_dir = "/var/lib/cloudsync/journal"
//!
//! [domains.corp]                       # the label ("corp") is local; env: CLOUDSYNC_DOMAINS__CORP__…
//! dns_name = "corp.example.test"
//! url = "ldaps://dc1.corp.example.test:636"
//! bind_dn = "svc-sync@corp.example.test"
//! password_file = "/etc/cloudsync/corp.pw"   # or `password = "…"` (e.g. CLOUDSYNC_DOMAINS__CORP__PASSWORD)
//! ca_file = "/etc/cloudsync/corp-ca.pem"
//! ```
//! Environment values override the file: `CLOUDSYNC_AGENT__JOURNAL_DIR=/tmp/j`. Only the `agent`,
//! `domains`, `tenant`, `projection` and `push` keys are taken from the environment, so
//! `CLOUDSYNC_LOG` etc. (CLI flags) do not clash. `[tenant]` is described in
//! [`crate::control::tenant_client::TenantConfig`], `[push]` in [`crate::push::PushConfig`],
//! `[projection]` in [`crate::projection::config`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

mod secret;
mod validate;

pub use secret::Secret;
pub use validate::Problem;

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent-wide settings.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The domains to read, by local label.
    #[serde(default)]
    pub domains: BTreeMap<String, DomainConfig>,
    /// The tenant to push to; without it the agent only fills the journal.
    #[serde(default)]
    pub tenant: Option<crate::control::tenant_client::TenantConfig>,
    /// Scope, attribute mappings and the delete threshold.
    #[serde(default)]
    pub projection: crate::projection::config::ProjectionConfig,
    /// Delivery knobs.
    #[serde(default)]
    pub push: crate::push::PushConfig,
    // Password hash sync (issue 7): off unless `[phs] enabled = true`; `[fips]` gates it.
    /// The FIPS policy for password hash sync (`[fips]`).
    #[serde(default)]
    pub fips: crate::phs::FipsSettings,
    /// Password hash sync (`[phs]`); off unless `enabled = true`.
    #[serde(default)]
    pub phs: crate::phs::PhsSettings,
}

/// Agent-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Where the event journal lives.
    pub journal_dir: PathBuf,
    /// Entries buffered per pass before a chunk is appended without the cookie, in KiB (approximate).
    pub memory_budget_kib: u64,
    /// How long `agent run` waits for passes to finish after SIGTERM before it gives up, in seconds.
    pub shutdown_grace_secs: u64,
    /// Projection's store (state snapshot, provisioning log); default: `projection` next to the journal.
    pub projection_dir: Option<PathBuf>,
    /// The push stage's outbox; default: `outbox` next to the journal.
    pub outbox_dir: Option<PathBuf>,
}

impl AgentConfig {
    fn beside_journal(&self, name: &str) -> PathBuf {
        self.journal_dir.with_file_name(name)
    }

    /// Where projection's store lives.
    pub fn projection_dir(&self) -> PathBuf {
        self.projection_dir
            .clone()
            .unwrap_or_else(|| self.beside_journal("projection"))
    }

    /// Where the outbox lives.
    pub fn outbox_dir(&self) -> PathBuf {
        self.outbox_dir
            .clone()
            .unwrap_or_else(|| self.beside_journal("outbox"))
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            journal_dir: PathBuf::from("/var/lib/cloudsync/journal"),
            memory_budget_kib: 64 * 1024,
            shutdown_grace_secs: 30,
            projection_dir: None,
            outbox_dir: None,
        }
    }
}

/// How changes are read from a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// The DirSync control (needs "Replicating Directory Changes", or `object_security`).
    #[default]
    Dirsync,
    /// Paged search on `uSNChanged` for accounts without the DirSync right; **cannot see deletes**
    /// unless the account can read tombstones.
    UsnPoll,
}

/// One domain: its own connection, cookie and status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The domain's DNS name (`corp.example.test`), stamped on every event.
    pub dns_name: String,
    /// `ldaps://host:636` or `ldap://host:389` (with `starttls = true`).
    pub url: String,
    /// The NC head to read; derived from `dns_name` when absent.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// The service account, as UPN (`svc@corp.example.test`) or DN.
    pub bind_dn: String,
    /// The bind password (prefer `password_file` or the environment).
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the bind password (first line; should be mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file with the CA(s) that sign the DC's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Skip certificate verification (labs only; logged as a warning at every start).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Allow `ldap://` without StartTLS (labs only; the password crosses the wire in clear).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// TCP + TLS connect timeout, seconds.
    #[serde(default = "default_timeout")]
    pub connect_timeout_secs: u64,
    /// Per-operation timeout, seconds.
    #[serde(default = "default_timeout")]
    pub operation_timeout_secs: u64,
    /// Delta poll interval, seconds (minimum 1).
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// Keep a change-notification search open to run deltas as soon as something changes.
    #[serde(default = "default_true")]
    pub notifications: bool,
    /// DirSync or the uSNChanged fallback.
    #[serde(default)]
    pub mode: SyncMode,
    /// Send `LDAP_DIRSYNC_OBJECT_SECURITY` (for accounts without "Replicating Directory Changes").
    #[serde(default)]
    pub object_security: bool,
    /// Page size of the uSNChanged fallback.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The tenant configuration this domain pushes to; default: the one `agent register` recorded.
    #[serde(default)]
    pub configuration_id: Option<uuid::Uuid>,
}

fn default_timeout() -> u64 {
    30
}
fn default_poll() -> u64 {
    120
}
fn default_true() -> bool {
    true
}
fn default_page_size() -> u32 {
    500
}

impl DomainConfig {
    /// The NC head: `base_dn`, or `DC=corp,DC=example,DC=test` from `dns_name`.
    pub fn base(&self) -> String {
        match &self.base_dn {
            Some(b) => b.clone(),
            None => self
                .dns_name
                .split('.')
                .filter(|p| !p.is_empty())
                .map(|p| format!("DC={p}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The bind password, from `password` or the first line of `password_file`.
    pub fn resolve_password(&self) -> Result<Secret, std::io::Error> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        let path = self.password_file.as_deref().unwrap_or(Path::new(""));
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
        Ok(Secret::new(
            text.lines().next().unwrap_or_default().to_string(),
        ))
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The operation timeout.
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_secs(self.operation_timeout_secs)
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval_secs.max(1))
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is unreadable or not valid TOML, or a value has the wrong type.
    #[error("cannot load configuration: {0}")]
    Load(Box<figment::Error>),
    /// The configuration parsed but is not usable; every problem is listed.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl Config {
    /// Loads `path` layered with `CLOUDSYNC_*` environment variables, then validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env_prefix(path, "CLOUDSYNC_")
    }

    /// As [`Config::load`] with another environment prefix (tests use one no environment has).
    pub fn load_with_env_prefix(path: &Path, prefix: &str) -> Result<Config, ConfigError> {
        // Keys keep the environment's case until figment lowercases them at the end.
        let env = Env::prefixed(prefix).split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            [
                "agent",
                "domains",
                "tenant",
                "projection",
                "push",
                "phs",
                "fips",
            ]
            .iter()
            .any(|section| key.starts_with(section))
        });
        let config: Config = Figment::new()
            .merge(Toml::file_exact(path))
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML string without the environment (tests, `examples/` checks).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }
}
