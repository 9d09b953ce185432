//! Where an install puts things. Enters: `--prefix DIR` (or none: the system paths). Leaves: every
//! path the install writes, and what an earlier install left there (for the update in place).
//!
//! | path | mode | holds |
//! |---|---|---|
//! | `{prefix}/etc/cloudsync/` | 0750 | the configuration directory |
//! | `{prefix}/etc/cloudsync/agent.toml` | 0640 | the configuration (no secret: it names the password file) |
//! | `{prefix}/var/lib/cloudsync/` | 0700 | the state directory (journal, projection, outbox, status) |
//! | `{prefix}/var/lib/cloudsync/credentials.json` | 0600 | the agent's registration and client secret |
//! | `{prefix}/var/lib/cloudsync/service-account.pw` | 0600 | the service account's password |
//! | `{prefix}/var/lib/cloudsync/install.json` | 0600 | what the install chose (extension, environment, version) |
//! | `{prefix}/etc/systemd/system/*.service` (with a prefix) or `/etc/systemd/system/` | 0644 | the units |
//!
//! The domain administrator's credentials and the tenant administrator's password are never written.

use std::path::{Path, PathBuf};

use super::InstallError;
use crate::control::credentials::AgentCredentials;

/// The paths of one install.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The prefix (absolute), `/` for a system install.
    pub prefix: PathBuf,
}

impl Layout {
    /// The system install (`/etc/cloudsync`, `/var/lib/cloudsync`, `/etc/systemd/system`).
    pub fn system() -> Layout {
        Layout {
            prefix: PathBuf::from("/"),
        }
    }

    /// Everything under `prefix` (made absolute: the units and the configuration name these paths).
    pub fn under(prefix: &Path) -> Result<Layout, InstallError> {
        let prefix = std::path::absolute(prefix).map_err(|source| InstallError::Io {
            path: prefix.to_path_buf(),
            source,
        })?;
        Ok(Layout { prefix })
    }

    /// Whether this is the system install (no `--prefix`).
    pub fn is_system(&self) -> bool {
        self.prefix == Path::new("/")
    }

    /// `{prefix}/etc/cloudsync`.
    pub fn config_dir(&self) -> PathBuf {
        self.prefix.join("etc/cloudsync")
    }

    /// `{prefix}/etc/cloudsync/agent.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir().join("agent.toml")
    }

    /// `{prefix}/var/lib/cloudsync`.
    pub fn state_dir(&self) -> PathBuf {
        self.prefix.join("var/lib/cloudsync")
    }

    /// `{prefix}/var/lib/cloudsync/journal`.
    pub fn journal_dir(&self) -> PathBuf {
        self.state_dir().join("journal")
    }

    /// `{prefix}/var/lib/cloudsync/credentials.json`.
    pub fn credentials_file(&self) -> PathBuf {
        self.state_dir().join("credentials.json")
    }

    /// `{prefix}/var/lib/cloudsync/service-account.pw`.
    pub fn service_password_file(&self) -> PathBuf {
        self.state_dir().join("service-account.pw")
    }

    /// `{prefix}/var/lib/cloudsync/install.json`.
    pub fn record_file(&self) -> PathBuf {
        self.state_dir().join("install.json")
    }

    /// Where the units are written: `/etc/systemd/system`, or `{prefix}/etc/systemd/system`.
    pub fn unit_dir(&self) -> PathBuf {
        self.prefix.join("etc/systemd/system")
    }

    /// What an earlier install left: its configuration as a TOML table and its registration.
    pub fn existing(&self) -> Result<Existing, InstallError> {
        let path = self.config_file();
        let table = match std::fs::read_to_string(&path) {
            Ok(text) => Some(
                text.parse::<toml::Table>()
                    .map_err(|e| InstallError::Existing {
                        path: path.clone(),
                        message: e.to_string(),
                    })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(InstallError::Io { path, source }),
        };
        let creds_path = self.credentials_file();
        let creds = if creds_path.exists() {
            Some(AgentCredentials::load(&creds_path)?)
        } else {
            None
        };
        Ok(Existing { table, creds })
    }
}

/// What an earlier install left in a [`Layout`].
#[derive(Debug, Default)]
pub struct Existing {
    /// The configuration file, parsed as a table (kept keys survive an update in place).
    pub table: Option<toml::Table>,
    /// The registration: an update in place keeps the agent id and client secret.
    pub creds: Option<AgentCredentials>,
}

impl Existing {
    /// The domains already configured: (label, DNS name).
    pub fn domains(&self) -> Vec<(String, String)> {
        let Some(domains) = self
            .table
            .as_ref()
            .and_then(|t| t.get("domains"))
            .and_then(|d| d.as_table())
        else {
            return Vec::new();
        };
        domains
            .iter()
            .filter_map(|(label, d)| {
                let name = d.get("dns_name")?.as_str()?;
                Some((label.clone(), name.to_string()))
            })
            .collect()
    }
}
