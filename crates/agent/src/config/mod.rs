//! Loading the configuration. Enters: a TOML file, `CLOUDSYNC_*` variables, `--set`. Leaves: a validated [`Config`].
//!
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
//! Environment values override the file: `CLOUDSYNC_AGENT__JOURNAL_DIR=/tmp/j`. A variable with `__` names a
//! section and key; its section must be one of [`SECTIONS`] (`agent`, `domains`, `tenant`, `projection`,
//! `push`, `phs`, `fips`, `metrics`, `updater`) or loading fails naming the variable. Variables without `__` (`CLOUDSYNC_LOG`,
//! the CLI flags' own) are not configuration keys. `--set section.key=value` on the command line is the
//! last layer ([`Override`]).
//!
//! Each stage owns its section's type and this module only loads, layers and validates them; imports run
//! from here to the stages, never back: `[domains.*]` is [`crate::source::ldap::DomainConfig`],
//! `[tenant]` [`crate::control::tenant_client::TenantConfig`], `[push]` [`crate::push::PushConfig`],
//! `[projection]` [`crate::projection::config::ProjectionConfig`], `[phs]`
//! [`crate::source::phs::PhsSettings`], `[fips]` [`crate::phs::FipsSettings`], `[metrics]`
//! [`crate::metrics::MetricsConfig`] and `[updater]`
//! [`crate::control::updater::settings::UpdaterConfig`].

use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::source::ldap::DomainConfig;

mod validate;

pub use validate::Problem;

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent-wide settings.
    #[serde(default)]
    pub agent: crate::runtime::AgentConfig,
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
    pub phs: crate::source::phs::PhsSettings,
    /// The Prometheus endpoint (`[metrics]`); on `127.0.0.1:9464` unless `listen = ""`.
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
    /// The updater (`[updater]`): the pinned release key, the restart command, deadlines.
    #[serde(default)]
    pub updater: crate::control::updater::settings::UpdaterConfig,
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
        Config::load_layered(path, "CLOUDSYNC_", &[])
    }

    /// As [`Config::load`] with another environment prefix (tests use one no environment has).
    pub fn load_with_env_prefix(path: &Path, prefix: &str) -> Result<Config, ConfigError> {
        Config::load_layered(path, prefix, &[])
    }

    /// Every layer: defaults → the TOML file → `<prefix>SECTION__KEY` environment variables → `overrides`
    /// (the command line's `--set section.key=value`, last wins), then validation.
    pub fn load_layered(
        path: &Path,
        prefix: &str,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
        let unknown = unknown_env_sections(prefix, names);
        if !unknown.is_empty() {
            return Err(ConfigError::Invalid(unknown));
        }
        // Keys keep the environment's case until figment lowercases them at the end; `split` has turned
        // `__` into `.` before the filter sees them.
        let env = Env::prefixed(prefix).split("__").filter(|key| {
            let section = key.as_str().split('.').next().unwrap_or_default();
            SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
        });
        // The file is read once; `contains` looks at the file and the environment together.
        let file = Figment::new().merge(Toml::file_exact(path));
        let has_tenant = file.clone().merge(env.clone()).contains("tenant");
        let mut figment = file;
        // The real installer's `ENVIRONMENTNAME=AzureUSGovernment`: the `[tenant] environment` of an agent
        // that has a tenant, under the `CLOUDSYNC_*` variables and `--set`.
        if has_tenant {
            figment = figment.merge(
                Env::raw()
                    .only(&[ENVIRONMENT_NAME])
                    .map(|_| "tenant.environment".into()),
            );
        }
        figment = figment.merge(env);
        for o in overrides {
            figment = figment.merge(Serialized::default(&o.key, &o.value));
        }
        let config: Config = figment
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

/// One `--set section.key=value` from the command line: the last layer, over the file and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key, e.g. `domains.corp.poll_interval_secs`.
    pub key: String,
    /// The value: a TOML value (`5`, `true`, `"text"`, `["a", "b"]`), or else the text as a string.
    pub value: figment::value::Value,
}

impl std::str::FromStr for Override {
    type Err = Problem;

    /// Parses `section.key=value`; the section must be one of [`SECTIONS`] and every key segment a bare
    /// TOML key (letters, digits, `_`, `-`).
    fn from_str(text: &str) -> Result<Override, Problem> {
        let problem = |message: String| Problem {
            key: text.split('=').next().unwrap_or_default().to_string(),
            message,
        };
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| problem("expected section.key=value".into()))?;
        let key = key.trim();
        let bare = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !key.contains('.') || !key.split('.').all(bare) {
            return Err(problem(
                "expected a dotted key such as push.batch_size".into(),
            ));
        }
        let section = key.split('.').next().unwrap_or_default();
        if !SECTIONS.contains(&section) {
            return Err(problem(format!(
                "no configuration section `{section}` (sections: {})",
                SECTIONS.join(", ")
            )));
        }
        let parsed = Figment::from(Toml::string(&format!("v = {raw}")))
            .extract_inner::<figment::value::Value>("v")
            .ok();
        let value = parsed.unwrap_or_else(|| figment::value::Value::from(raw.to_string()));
        Ok(Override {
            key: key.to_string(),
            value,
        })
    }
}

/// The real installer's environment variable naming the cloud (`AzureUSGovernment`); sets
/// `[tenant] environment` when the configuration has a tenant.
pub const ENVIRONMENT_NAME: &str = "ENVIRONMENTNAME";

/// The file's top-level sections, the only ones the environment may set.
pub const SECTIONS: [&str; 9] = [
    "agent",
    "domains",
    "tenant",
    "projection",
    "push",
    "phs",
    "fips",
    "metrics",
    "updater",
];

/// The section a nested environment key (`DOMAINS__CORP__URL`, prefix removed) names, lowercased; `None`
/// for a key without `__` (a CLI flag's variable such as `CLOUDSYNC_LOG`, not a configuration key).
fn section_of(key: &str) -> Option<String> {
    key.split_once("__")
        .map(|(section, _)| section.to_ascii_lowercase())
}

/// Every `<prefix>SECTION__…` variable whose SECTION is not one of [`SECTIONS`], as a problem naming the
/// variable: a typo such as `CLOUDSYNC_DOMAIN__CORP__URL` would otherwise be ignored without a word.
fn unknown_env_sections(prefix: &str, names: impl Iterator<Item = String>) -> Vec<Problem> {
    let mut unknown: Vec<Problem> = names
        .filter_map(|name| {
            let rest = name
                .get(prefix.len()..)
                .filter(|_| name.starts_with(prefix))?;
            let section = section_of(rest)?;
            (!SECTIONS.contains(&section.as_str())).then(|| Problem {
                key: name.clone(),
                message: format!(
                    "the environment names no configuration section `{section}` (sections: {})",
                    SECTIONS.join(", ")
                ),
            })
        })
        .collect();
    unknown.sort_by(|a, b| a.key.cmp(&b.key));
    unknown
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn names(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn an_unknown_section_in_the_environment_is_named() {
        let found = unknown_env_sections(
            "CLOUDSYNC_",
            names(&[
                "CLOUDSYNC_DOMAIN__CORP__URL",
                "CLOUDSYNC_DOMAINS__CORP__URL",
                "CLOUDSYNC_AGENTS__JOURNAL_DIR",
                "CLOUDSYNC_LOG",
                "CLOUDSYNC_PHS__INTERVAL_SECS",
                "OTHER_X__Y",
            ]),
        );
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "CLOUDSYNC_AGENTS__JOURNAL_DIR",
                "CLOUDSYNC_DOMAIN__CORP__URL"
            ]
        );
        assert!(
            found[1].message.contains("`domain`"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn a_set_flag_is_the_last_layer_and_takes_toml_or_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "[agent]\njournal_dir = \"/file\"\n[domains.corp]\ndns_name = \"corp.example.test\"\n\
             url = \"ldap://127.0.0.1\"\nallow_plaintext = true\nbind_dn = \"svc@corp.example.test\"\npassword = \"p\"\n",
        )
        .unwrap();
        let sets: Vec<Override> = [
            "agent.journal_dir=/from/the/flag",
            "domains.corp.poll_interval_secs=7",
            "domains.corp.notifications=false",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let c = Config::load_layered(&path, "CLOUDSYNC_TEST_NO_SUCH_PREFIX_", &sets).unwrap();
        assert_eq!(c.agent.journal_dir, PathBuf::from("/from/the/flag"));
        assert_eq!(c.domains["corp"].poll_interval_secs, 7);
        assert!(!c.domains["corp"].notifications);
        // Without the flags the file's values stand.
        let c = Config::load_layered(&path, "CLOUDSYNC_TEST_NO_SUCH_PREFIX_", &[]).unwrap();
        assert_eq!(c.agent.journal_dir, PathBuf::from("/file"));
        assert_eq!(c.domains["corp"].poll_interval_secs, 120);
    }

    #[test]
    fn a_bad_set_flag_names_the_key_and_the_fix() {
        let e = "domain.corp.url=x".parse::<Override>().unwrap_err();
        assert!(
            e.message.contains("no configuration section `domain`"),
            "{e}"
        );
        let e = "push".parse::<Override>().unwrap_err();
        assert!(e.message.contains("section.key=value"), "{e}");
        let e = "push=3".parse::<Override>().unwrap_err();
        assert!(e.message.contains("dotted key"), "{e}");
        let e = "domains.a b.url=x".parse::<Override>().unwrap_err();
        assert!(e.message.contains("dotted key"), "{e}");
    }

    #[test]
    fn sections_match_whole_names_not_prefixes() {
        // `agents` once passed as "starts with agent".
        assert_eq!(section_of("AGENTS__X").as_deref(), Some("agents"));
        assert!(!SECTIONS.contains(&"agents"));
        assert_eq!(section_of("LOG_JSON"), None);
    }
}
