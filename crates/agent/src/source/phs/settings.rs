//! The `[phs]` configuration section (embedded by the agent's config next to `[fips]`).
//!
//! ```toml
//! [phs]
//! enabled = true
//! source = "drsr"              # or "samba_priv" (agent running as root on a Samba DC)
//! interval_secs = 120          # a cycle at least this often, and on every password-change signal
//! page_objects = 1000          # GetNCChanges cMaxObjects
//! partial_attribute_set = true # replicate only userAccountControl, unicodePwd, objectSid
//! timeout_secs = 30            # per network operation
//! # drsr_port = 49153          # skip the endpoint mapper
//! # samba_priv_socket = "/var/lib/samba/private/ldap_priv/ldapi"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which reader delivers the NT hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhsSourceKind {
    /// MS-DRSR replication (any AD; needs the two replication rights).
    #[default]
    Drsr,
    /// Samba's root-only `ldap_priv` socket (only on a Samba DC).
    SambaPriv,
}

/// The `[phs]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhsSettings {
    /// Whether password hash sync runs at all.
    pub enabled: bool,
    /// The reader.
    pub source: PhsSourceKind,
    /// Longest time between two cycles, in seconds.
    pub interval_secs: u64,
    /// Objects per GetNCChanges page.
    pub page_objects: u32,
    /// Replicate only the attributes PHS needs.
    pub partial_attribute_set: bool,
    /// Per-operation network deadline, in seconds.
    pub timeout_secs: u64,
    /// The DRSUAPI TCP port; unset asks the endpoint mapper on port 135.
    pub drsr_port: Option<u16>,
    /// Path of Samba's `private/ldap_priv/ldapi` (required for `source = "samba_priv"`).
    pub samba_priv_socket: Option<PathBuf>,
}

impl Default for PhsSettings {
    fn default() -> Self {
        PhsSettings {
            enabled: false,
            source: PhsSourceKind::Drsr,
            interval_secs: 120,
            page_objects: 1000,
            partial_attribute_set: true,
            timeout_secs: 30,
            drsr_port: None,
            samba_priv_socket: None,
        }
    }
}

impl PhsSettings {
    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// The network deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Every problem, each naming the key to fix (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(10..=86_400).contains(&self.interval_secs) {
            out.push("phs.interval_secs must be between 10 and 86400".to_owned());
        }
        if !(1..=10_000).contains(&self.page_objects) {
            out.push("phs.page_objects must be between 1 and 10000".to_owned());
        }
        if !(1..=600).contains(&self.timeout_secs) {
            out.push("phs.timeout_secs must be between 1 and 600".to_owned());
        }
        if self.drsr_port == Some(0) {
            out.push("phs.drsr_port must not be 0".to_owned());
        }
        if self.source == PhsSourceKind::SambaPriv && self.samba_priv_socket.is_none() {
            out.push(
                "phs.samba_priv_socket is required when phs.source = \"samba_priv\"".to_owned(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_toml_round_trips() {
        assert!(PhsSettings::default().problems().is_empty());
        let s: PhsSettings = toml::from_str(
            "enabled = true\nsource = \"samba_priv\"\nsamba_priv_socket = \"/x/ldapi\"\ninterval_secs = 60",
        )
        .unwrap();
        assert_eq!(s.source, PhsSourceKind::SambaPriv);
        assert_eq!(s.interval(), Duration::from_secs(60));
        assert!(s.problems().is_empty());
        assert!(toml::from_str::<PhsSettings>("intervall_secs = 60").is_err());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let s = PhsSettings {
            interval_secs: 1,
            page_objects: 0,
            timeout_secs: 0,
            drsr_port: Some(0),
            source: PhsSourceKind::SambaPriv,
            ..PhsSettings::default()
        };
        let p = s.problems();
        assert_eq!(p.len(), 5, "{p:?}");
        for key in [
            "phs.interval_secs",
            "phs.page_objects",
            "phs.timeout_secs",
            "phs.drsr_port",
            "phs.samba_priv_socket",
        ] {
            assert!(p.iter().any(|m| m.starts_with(key)), "{key}: {p:?}");
        }
    }
}
