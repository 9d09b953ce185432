//! Projection's configuration (`[projection]` in the agent's TOML) and its compiled form.
//!
//! ```toml
//! [projection]
//! delete_threshold = 500            # deletes per run before they are staged; 0 switches protection off
//! [projection.scope]
//! ous = ["OU=Sales,DC=corp,DC=example,DC=test"]     # or groups = ["CN=Pilot,OU=Groups,…"]
//! filters = [{ attribute = "department", operator = "NOT_EQUALS", value = "Contractors" }]
//! [[projection.mappings]]
//! object = "user"
//! target = "jobTitle"
//! expression = 'Trim(ToUpper([title]))'
//! ```

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::cloud::DomainSettings;
use super::mapping::{MappingSpec, Mappings};
use super::scope::{Scope, ScopeSpec};
use super::state::attr_table::AttrTable;

/// Microsoft's default accidental-delete threshold.
pub const DEFAULT_DELETE_THRESHOLD: u32 = 500;

fn default_threshold() -> u32 {
    DEFAULT_DELETE_THRESHOLD
}

/// The configuration as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionConfig {
    /// Which objects are synced.
    #[serde(default)]
    pub scope: ScopeSpec,
    /// Mappings that replace or add to the defaults.
    #[serde(default)]
    pub mappings: Vec<MappingSpec>,
    /// Deletes per run at which they are staged instead of sent (Microsoft: 500 means at most 499 go
    /// through); 0 switches the protection off.
    #[serde(default = "default_threshold")]
    pub delete_threshold: u32,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            scope: ScopeSpec::default(),
            mappings: Vec::new(),
            delete_threshold: DEFAULT_DELETE_THRESHOLD,
        }
    }
}

/// A configuration problem naming the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key, e.g. `projection.mappings[2].expression`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Attributes projection always keeps: identity, anchor, exclusion and fallback inputs.
const ALWAYS_KEPT: &[&str] = &[
    "cn",
    "displayname",
    "iscriticalsystemobject",
    "mail",
    "mailnickname",
    "ms-ds-consistencyguid",
    "objectsid",
    "samaccountname",
    "useraccountcontrol",
    "userprincipalname",
];

/// Table ids of the attributes projection reads itself, looked up once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedIds {
    /// `isCriticalSystemObject`.
    pub critical: Option<u16>,
    /// `sAMAccountName`.
    pub sam: Option<u16>,
    /// `objectSid`.
    pub sid: Option<u16>,
}

/// Attributes the evaluation context computes rather than reads from the kept values.
pub const COMPUTED: &[&str] = &["dn", "distinguishedName", "objectGUID"];

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Scope of the domains without a tenant override (the TOML's).
    pub scope: Scope,
    /// Mappings of the domains without a tenant override (the TOML's).
    pub mappings: Mappings,
    /// The attributes kept per object (every domain's needs, one table).
    pub table: AttrTable,
    /// Table ids of the attributes projection reads itself (all in `ALWAYS_KEPT`).
    pub ids: FixedIds,
    /// The delete threshold of domains without a tenant override (0: off).
    pub delete_threshold: u32,
    /// Per domain (lower-case DNS name): the effective settings where the tenant's configuration
    /// changes the TOML's ([`super::cloud`]).
    pub domains: BTreeMap<String, DomainCompiled>,
    /// Per domain (lower-case DNS name): a fingerprint of the effective settings, recorded with the
    /// snapshot so that a change across a restart is noticed ([`Compiled::fingerprint`]).
    fingerprints: BTreeMap<String, String>,
    /// The fingerprint of the TOML's settings (domains without a tenant override).
    base_fingerprint: String,
}

/// One domain's effective scope, mappings and threshold when the tenant's configuration overrides
/// the TOML's.
#[derive(Debug, Clone)]
pub struct DomainCompiled {
    /// The effective scope.
    pub scope: Scope,
    /// The effective mappings (TOML's, then the tenant's on top).
    pub mappings: Mappings,
    /// The effective delete threshold.
    pub delete_threshold: u32,
}

impl Compiled {
    /// The scope in force for `domain` (its DNS name, any case).
    pub fn scope_of(&self, domain: &str) -> &Scope {
        self.domain(domain).map_or(&self.scope, |d| &d.scope)
    }

    /// The mappings in force for `domain`.
    pub fn mappings_of(&self, domain: &str) -> &Mappings {
        self.domain(domain).map_or(&self.mappings, |d| &d.mappings)
    }

    /// The delete threshold in force for `domain`.
    pub fn threshold_of(&self, domain: &str) -> u32 {
        self.domain(domain)
            .map_or(self.delete_threshold, |d| d.delete_threshold)
    }

    fn domain(&self, domain: &str) -> Option<&DomainCompiled> {
        // Per object on the hot path: a few domains at most, compared without allocating.
        self.domains
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(domain))
            .map(|(_, d)| d)
    }

    /// A text that changes whenever `domain`'s effective scope or mappings change (the TOML's or the
    /// tenant's), recorded with projection's snapshot.
    pub fn fingerprint(&self, domain: &str) -> &str {
        self.fingerprints
            .get(&domain.to_ascii_lowercase())
            .map_or(&self.base_fingerprint, String::as_str)
    }
}

impl ProjectionConfig {
    /// Checks everything and reports every problem at once.
    pub fn compile(&self) -> Result<Compiled, Vec<ConfigError>> {
        self.compile_with(&BTreeMap::new())
    }

    /// [`ProjectionConfig::compile`] with the tenant's settings per domain (lower-case DNS name) on
    /// top of this TOML base: a non-empty tenant scope replaces the TOML's OUs/groups (its attribute
    /// filters stay), tenant mappings replace or add to the TOML's, the tenant's threshold replaces
    /// the TOML's. Every problem is reported at once; a tenant problem's key names the domain and
    /// the tenant's field.
    pub fn compile_with(
        &self,
        tenant: &BTreeMap<String, DomainSettings>,
    ) -> Result<Compiled, Vec<ConfigError>> {
        let mut base = self.compile_base()?;
        let mut errors = Vec::new();
        let mut domains = BTreeMap::new();
        for (domain, settings) in tenant {
            match settings.compile_over(self, domain) {
                Ok(d) => {
                    domains.insert(domain.to_ascii_lowercase(), d);
                }
                Err(es) => errors.extend(es),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // One table for every domain's needs: rebuild it when a tenant override reads more.
        let extra: Vec<String> = domains
            .values()
            .flat_map(|d: &DomainCompiled| {
                d.mappings
                    .attributes()
                    .into_iter()
                    .chain(d.scope.attributes())
            })
            .collect();
        if !extra.is_empty() {
            let names: Vec<String> = base.table.names().iter().cloned().chain(extra).collect();
            base.table = AttrTable::new(names);
            base.ids = FixedIds {
                critical: base.table.id("isCriticalSystemObject"),
                sam: base.table.id("sAMAccountName"),
                sid: base.table.id("objectSid"),
            };
        }
        let table = base.table.clone();
        let slot_of = |name: &str| {
            if COMPUTED.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                None
            } else {
                table.id(name)
            }
        };
        base.mappings.resolve(&slot_of);
        for d in domains.values_mut() {
            d.mappings.resolve(&slot_of);
        }
        base.base_fingerprint = fingerprint(self, None);
        base.fingerprints = tenant
            .iter()
            .map(|(d, s)| (d.to_ascii_lowercase(), fingerprint(self, Some(s))))
            .collect();
        base.domains = domains;
        Ok(base)
    }

    fn compile_base(&self) -> Result<Compiled, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let scope = Scope::compile(&self.scope).map_err(|es| {
            errors.extend(es.into_iter().map(|e| ConfigError {
                key: e.key,
                message: e.message,
            }));
        });
        let mappings = Mappings::compile(&self.mappings).map_err(|es| {
            errors.extend(es.into_iter().map(|e| ConfigError {
                key: e.key,
                message: e.message,
            }));
        });
        match (scope, mappings) {
            (Ok(scope), Ok(mut mappings)) if errors.is_empty() => {
                let names: Vec<String> = ALWAYS_KEPT
                    .iter()
                    .map(|s| s.to_string())
                    .chain(mappings.attributes())
                    .chain(scope.attributes())
                    .collect();
                let table = AttrTable::new(names);
                // Attributes the evaluation context computes (the DN, the objectGUID) stay lookups by name.
                mappings.resolve(&|name| {
                    if COMPUTED.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                        None
                    } else {
                        table.id(name)
                    }
                });
                let ids = FixedIds {
                    critical: table.id("isCriticalSystemObject"),
                    sam: table.id("sAMAccountName"),
                    sid: table.id("objectSid"),
                };
                Ok(Compiled {
                    ids,
                    table,
                    scope,
                    mappings,
                    delete_threshold: self.delete_threshold,
                    domains: BTreeMap::new(),
                    fingerprints: BTreeMap::new(),
                    base_fingerprint: fingerprint(self, None),
                })
            }
            _ => Err(errors),
        }
    }
}

/// The settings that decide what projection sends for a domain (its effective scope and mappings;
/// not the threshold, which changes no object), as one text.
fn fingerprint(base: &ProjectionConfig, tenant: Option<&DomainSettings>) -> String {
    let (scope, mappings) = match tenant {
        Some(t) => t.effective(base),
        None => (base.scope.clone(), base.mappings.clone()),
    };
    serde_json::to_string(&(scope, mappings)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_toml_and_reports_all_errors() {
        let text = r#"
            delete_threshold = 10
            [scope]
            ous = ["OU=Sales,DC=corp,DC=example,DC=test"]
            filters = [{ attribute = "department", operator = "NOT_EQUALS", value = "Contractors" }]
            [[mappings]]
            object = "user"
            target = "jobTitle"
            expression = 'Trim(ToUpper([title]))'
        "#;
        let cfg: ProjectionConfig = toml::from_str(text).unwrap();
        let compiled = cfg.compile().unwrap();
        assert_eq!(compiled.delete_threshold, 10);
        assert!(compiled.table.id("title").is_some());
        assert!(compiled.table.id("department").is_some());

        let bad = ProjectionConfig {
            scope: ScopeSpec {
                ous: vec!["junk".into()],
                ..ScopeSpec::default()
            },
            mappings: vec![MappingSpec {
                expression: Some("Left([a],".into()),
                ..MappingSpec::new(super::super::ops::ObjectKind::User, "x")
            }],
            ..ProjectionConfig::default()
        };
        let errs = bad.compile().unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].key, "projection.scope.ous[0]");
        assert_eq!(errs[1].key, "projection.mappings[0].expression");
    }

    #[test]
    fn default_threshold_is_microsofts() {
        let cfg: ProjectionConfig = toml::from_str("").unwrap();
        assert_eq!(cfg.delete_threshold, 500);
    }
}
