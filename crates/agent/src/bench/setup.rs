//! A run's directory and the agent it plays: the layout under `--state-dir`, the tenant's seed (a
//! Global Administrator with a fresh random password), the agent's configuration (one domain, the
//! synthetic `contoso.com`; its LDAP settings are never dialled) and its registration through the
//! installer's flow ([`crate::control::register`]), as `agent register` does it.

use std::path::{Path, PathBuf};

use super::spec::DOMAIN;
use crate::config::Config;

/// The tenant's own domain (its token endpoint is `/{TENANT_DOMAIN}/oauth2/v2.0/token`).
pub const TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The seeded administrator.
pub const ADMIN_UPN: &str = "bench-admin@contoso.onmicrosoft.com";

/// Where a run keeps what it writes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `--state-dir`.
    pub root: PathBuf,
}

impl Layout {
    /// The agent's journal (projection and outbox sit next to it).
    pub fn journal(&self) -> PathBuf {
        self.root.join("agent").join("journal")
    }

    /// The agent's outbox.
    pub fn outbox(&self) -> PathBuf {
        self.root.join("agent").join("outbox")
    }

    /// Projection's store.
    pub fn projection(&self) -> PathBuf {
        self.root.join("agent").join("projection")
    }

    /// The agent's credentials file.
    pub fn credentials(&self) -> PathBuf {
        self.root.join("agent").join("credentials.json")
    }

    /// The tenant's directory (state, seed, CA, log).
    pub fn tenant(&self) -> PathBuf {
        self.root.join("tenant")
    }

    /// Scratch space for the limits (raw sled, the tenant's store in process); removed after use.
    pub fn limits(&self, name: &str) -> PathBuf {
        self.root.join("limits").join(name)
    }
}

/// A fresh administrator password (the seed file is 0600 and removed with the state).
pub fn admin_password() -> String {
    format!("Bench-{:016x}!", rand::random::<u64>())
}

/// The tenant's `seed.toml`: its domain and one Global Administrator.
pub fn tenant_seed(password: &str) -> String {
    format!(
        "domain = \"{TENANT_DOMAIN}\"\n[[users]]\nuser_principal_name = \"{ADMIN_UPN}\"\npassword = \"{password}\"\nroles = [\"GlobalAdministrator\"]\n"
    )
}

fn toml_path(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// The agent's configuration: the layout's stores, the synthetic domain, the tenant at `url`
/// trusted through `ca_file`. Everything else is the product's default.
/// With `write_rate_limit`, the push stage paces itself to that many operations per second (`[push]
/// write_rate_limit`, what an administrator sets to the tenant's documented write limit).
pub fn agent_config(
    layout: &Layout,
    url: &str,
    ca_file: &Path,
    write_rate_limit: Option<f64>,
) -> Result<Config, crate::config::ConfigError> {
    let push = write_rate_limit
        .map(|r| format!("\n[push]\nwrite_rate_limit = {r}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
[agent]
journal_dir = {journal}

[domains.bench]
dns_name = "{DOMAIN}"
# Never dialled: the harness's generator stands in for the directory.
url = "ldaps://127.0.0.1:636"
bind_dn = "svc-sync@{DOMAIN}"
password = "unused"
ca_file = {ca}

[tenant]
url = {url}
ca_file = {ca}
tenant_id = "{TENANT_DOMAIN}"
credentials_file = {credentials}
{push}"#,
        journal = toml_path(&layout.journal()),
        url = toml::Value::String(url.to_string()),
        ca = toml_path(ca_file),
        credentials = toml_path(&layout.credentials()),
    );
    Config::from_toml_str(&text)
}
