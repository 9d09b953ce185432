//! The files an install writes. Enters: the answers of the steps (tenant, service account, checked
//! domains, extra `--set` keys) and what an earlier install left. Leaves: the configuration's TOML
//! (validated by the same loader the agent uses before anything is written) and the private files,
//! each written to a temporary file with its final mode and renamed, so no reader ever sees a
//! half-written file or a secret with a wider mode. The modes are in [`super::layout`].

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::InstallError;
use super::domain::{DomainTarget, domain_table};
use super::layout::Layout;
use crate::config::Config;
use cloudsync_api::Environment;

/// Where the tenant is (`[tenant]`).
#[derive(Debug, Clone)]
pub struct TenantTarget {
    /// Its base URL: `--tenant-url`, else the environment's sign-in host.
    pub url: String,
    /// The CA to trust for it (else the system roots).
    pub ca_file: Option<PathBuf>,
    /// The tenant id or initial domain (names the token endpoint).
    pub tenant_id: String,
}

impl TenantTarget {
    /// The target for `environment` when no tenant URL is given: its sign-in host from the one
    /// environment table ([`cloudsync_api::environment`]).
    pub fn for_environment(environment: Environment, tenant_id: &str) -> TenantTarget {
        TenantTarget {
            url: format!("https://{}", environment.endpoints().login_host),
            ca_file: None,
            tenant_id: tenant_id.to_string(),
        }
    }

    /// The `[tenant]` table.
    pub fn table(&self, environment: Environment, layout: &Layout) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), self.url.clone().into());
        if let Some(ca) = &self.ca_file {
            t.insert("ca_file".into(), ca.display().to_string().into());
        }
        t.insert("tenant_id".into(), self.tenant_id.clone().into());
        t.insert(
            "credentials_file".into(),
            layout.credentials_file().display().to_string().into(),
        );
        t.insert("environment".into(), environment.as_str().into());
        t
    }
}

/// One `--set section.key=value`: the dotted key and its TOML value (text when not TOML).
pub fn parse_setting(text: &str) -> Result<(Vec<String>, toml::Value), String> {
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected section.key=value"))?;
    let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
    if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "{text:?}: expected a dotted key such as push.batch_size"
        ));
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    Ok((path, value))
}

/// A label for `[domains.<label>]`: the first DNS label, made a bare key, unique among `taken`.
pub fn label_for(dns_name: &str, taken: &[String]) -> String {
    let first: String = dns_name
        .split('.')
        .next()
        .unwrap_or("domain")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut label = first.clone();
    let mut n = 2;
    while taken.contains(&label) {
        label = format!("{first}{n}");
        n += 1;
    }
    label
}

/// What the configuration is built from.
#[derive(Debug)]
pub struct ConfigInput<'a> {
    /// The paths.
    pub layout: &'a Layout,
    /// The cloud.
    pub environment: Environment,
    /// The tenant.
    pub tenant: &'a TenantTarget,
    /// An existing account every domain binds as (with the shared password file); `None` when the
    /// install made the accounts (then `accounts` names one per configured domain).
    pub service_account: Option<&'a str>,
    /// The accounts made per domain (their `[domains.*]` keys).
    pub accounts: &'a [super::account::DomainAccount],
    /// The domains added now.
    pub domains: &'a [DomainTarget],
    /// `--set` keys, applied last.
    pub settings: &'a [(Vec<String>, toml::Value)],
    /// The earlier configuration: its domains and other keys stay.
    pub existing: Option<&'a toml::Table>,
}

/// The configuration's text, validated with [`Config::from_toml_str`] (the service password file
/// must exist by then: validation reads nothing, but the agent will).
pub fn render_config(input: &ConfigInput<'_>) -> Result<String, InstallError> {
    let mut root = input.existing.cloned().unwrap_or_default();
    let agent = table_at(&mut root, "agent");
    agent
        .entry("journal_dir")
        .or_insert_with(|| input.layout.journal_dir().display().to_string().into());
    root.insert(
        "tenant".into(),
        input.tenant.table(input.environment, input.layout).into(),
    );
    let domains = table_at(&mut root, "domains");
    for target in input.domains {
        let existing_label = domains.iter().find_map(|(label, d)| {
            let name = d.get("dns_name")?.as_str()?;
            name.eq_ignore_ascii_case(&target.dns_name)
                .then(|| label.clone())
        });
        let taken: Vec<String> = domains.keys().cloned().collect();
        let label = existing_label.unwrap_or_else(|| label_for(&target.dns_name, &taken));
        domains.insert(label, domain_table(target, "").into());
    }
    // Every domain, kept or new, binds as the service account given now.
    for (label, d) in domains.iter_mut() {
        if let Some(t) = d.as_table_mut() {
            set_account(label, t, input)?;
        }
    }
    for (path, value) in input.settings {
        let (last, parents) = path
            .split_last()
            .ok_or_else(|| InstallError::Setting("empty key".into()))?;
        let mut t = &mut root;
        for p in parents {
            t = table_at(t, p);
        }
        t.insert(last.clone(), value.clone());
    }
    let text = format!(
        "# Written by `cloudsync agent install`; re-run it (or the `agent domain|service-account` commands) to change it.\n\
         # No secret is stored here: the service account's password is in the password_file named below (0600).\n{}",
        toml::to_string(&root).map_err(|e| InstallError::Setting(e.to_string()))?
    );
    Config::from_toml_str(&text)?;
    Ok(text)
}

/// The keys that say how a domain binds: replaced as a whole when the account changes.
const ACCOUNT_KEYS: [&str; 8] = [
    "account",
    "bind_dn",
    "password",
    "password_file",
    "bind_method",
    "gmsa_dn",
    "host_dn",
    "host_password_file",
];

/// Writes the account of one `[domains.*]` table: the one made for it, or the existing account.
fn set_account(
    label: &str,
    t: &mut toml::Table,
    input: &ConfigInput<'_>,
) -> Result<(), InstallError> {
    let dns = t
        .get("dns_name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if let Some(made) = input
        .accounts
        .iter()
        .find(|a| a.dns_name.eq_ignore_ascii_case(&dns))
    {
        for k in ACCOUNT_KEYS {
            t.remove(k);
        }
        t.extend(made.keys.clone());
        return Ok(());
    }
    let Some(account) = input.service_account else {
        return Err(InstallError::Setting(format!(
            "domains.{label} ({dns}) has no service account: give it again with --domain so the account can be made there"
        )));
    };
    for k in [
        "account",
        "password",
        "gmsa_dn",
        "host_dn",
        "host_password_file",
    ] {
        t.remove(k);
    }
    t.insert("bind_dn".into(), account.into());
    t.insert(
        "password_file".into(),
        input
            .layout
            .service_password_file()
            .display()
            .to_string()
            .into(),
    );
    Ok(())
}

/// `root[key]` as a table, created when absent (a non-table value is replaced).
fn table_at<'t>(root: &'t mut toml::Table, key: &str) -> &'t mut toml::Table {
    let slot = root
        .entry(key.to_string())
        .or_insert_with(|| toml::Table::new().into());
    if !slot.is_table() {
        *slot = toml::Table::new().into();
    }
    match slot {
        toml::Value::Table(t) => t,
        _ => unreachable!("just made a table"),
    }
}

/// Creates `dir` (and its parents) and sets its mode.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), InstallError> {
    let io = |source| InstallError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io)
}

/// Writes `bytes` to `path` with `mode`, atomically ([`cloudsync_private_fs::write_atomic`]).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    cloudsync_private_fs::write_atomic(path, bytes, mode).map_err(|source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_as_toml_or_text() {
        let (k, v) = parse_setting("projection.scope.ous=[\"OU=A,DC=x\"]").unwrap();
        assert_eq!(k, ["projection", "scope", "ous"]);
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(
            parse_setting("metrics.listen=127.0.0.1:0")
                .unwrap()
                .1
                .as_str(),
            Some("127.0.0.1:0")
        );
        assert!(parse_setting("nosection=1").is_err());
        assert_eq!(label_for("corp.example.test", &["corp".into()]), "corp2");
    }

    #[test]
    fn the_configuration_names_the_password_file_and_keeps_earlier_domains() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::under(dir.path()).unwrap();
        ensure_dir(&layout.state_dir(), 0o700).unwrap();
        write_file(&layout.service_password_file(), b"pw\n", 0o600).unwrap();
        let tenant = TenantTarget {
            url: "https://127.0.0.1:8443".into(),
            ca_file: None,
            tenant_id: "contoso.onmicrosoft.com".into(),
        };
        let old: toml::Table = "[domains.old]\ndns_name = \"old.test\"\nurl = \"ldaps://old.test\"\nbind_dn = \"x\"\npassword = \"secret\"\ninsecure_skip_verify = true\n".parse().unwrap();
        let domains = [DomainTarget {
            dns_name: "corp.example.test".into(),
            url: "ldaps://127.0.0.9".into(),
            ca_file: Some(layout.service_password_file()),
        }];
        let text = render_config(&ConfigInput {
            layout: &layout,
            environment: Environment::AzureUSGovernment,
            tenant: &tenant,
            service_account: Some("svc@corp.example.test"),
            accounts: &[],
            domains: &domains,
            settings: &[],
            existing: Some(&old),
        })
        .unwrap();
        assert!(!text.contains("\"secret\""), "{text}");
        let config = Config::from_toml_str(&text).unwrap();
        assert_eq!(config.domains.len(), 2);
        assert_eq!(config.domains["old"].bind_dn, "svc@corp.example.test");
        assert_eq!(
            config.domains["corp"].password_file.as_deref(),
            Some(layout.service_password_file().as_path())
        );
        let t = config.tenant.unwrap();
        assert_eq!(t.environment, Environment::AzureUSGovernment);
        assert!(
            t.credentials_file
                .ends_with("var/lib/cloudsync/credentials.json")
        );
        assert!(t.credentials_file.starts_with(dir.path()));
    }
}
