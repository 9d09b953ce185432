//! Configuration from the cloud: the tenant's configuration of a domain (`ConfigurationSpec`,
//! `GET /api/v1/configurations/{id}`) as projection's per-domain settings on top of the TOML's
//! `[projection]` (docs/projection.md, "Configuration from the cloud").
//!
//! Enters: a tenant `Configuration` (spec and revision) per served domain. Leaves: a
//! [`DomainSettings`] per domain that [`super::config::ProjectionConfig::compile_with`] compiles
//! over the TOML base — or, for a spec that does not compile, errors naming the domain, the revision
//! and the tenant's field — and [`Changes`], what differs between two revisions (the provisioning
//! log's "ConfigurationChanged" detail, and whether the domain needs a re-read).
//!
//! The rules:
//! - scope: non-empty `organizationalUnits` or `groups` replace the TOML's OUs/groups (the TOML's
//!   attribute filters stay); both empty keep the TOML's scope. Every OU/group DN must lie inside
//!   the domain (`…,DC=corp,DC=example,DC=test`), so a typo does not silently empty the cloud;
//! - mappings: each `target ← source` replaces the TOML's or the default mapping of `target` for
//!   users; a source that is a bare attribute name (`department`) is a direct mapping, anything else
//!   (`Join(" ", [givenName], [sn])`) an expression;
//! - `deleteThreshold` replaces `[projection] delete_threshold`;
//! - `passwordHashSync`: password hash sync runs for the domain when `[phs] enabled` (the local master
//!   switch, which also says how to reach the DC) **and** the tenant's switch are on;
//! - `passwordWriteback` is recorded (and shown by `agent status`) for the writeback stage.

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, DomainCompiled, ProjectionConfig};
use super::mapping::{MappingSpec, Mappings};
use super::ops::ObjectKind;
use super::scope::{Scope, ScopeSpec};
use cloudsync_api::config::Configuration;

/// One domain's settings as the tenant's configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainSettings {
    /// The tenant configuration's id.
    pub configuration_id: uuid::Uuid,
    /// The revision these settings come from.
    pub revision: u64,
    /// The tenant's OU DNs (empty: the TOML's scope).
    pub ous: Vec<String>,
    /// The tenant's group DNs (empty: the TOML's scope).
    pub groups: Vec<String>,
    /// The tenant's mappings (target, source).
    pub mappings: Vec<(String, String)>,
    /// The tenant's delete threshold.
    pub delete_threshold: u32,
    /// The tenant's password hash sync switch.
    pub password_hash_sync: bool,
    /// The tenant's password writeback switch (recorded for the writeback stage).
    pub password_writeback: bool,
}

/// What differs between two revisions of a domain's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// OUs or groups.
    pub scope: bool,
    /// Mappings.
    pub mappings: bool,
    /// The delete threshold.
    pub threshold: bool,
    /// The password hash sync switch.
    pub phs: bool,
    /// The writeback switch.
    pub writeback: bool,
}

impl Changes {
    /// Whether objects must be re-evaluated (scope or mappings changed): the domain is re-read.
    pub fn needs_reread(&self) -> bool {
        self.scope || self.mappings
    }

    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.scope || self.mappings || self.threshold || self.phs || self.writeback
    }

    /// The changed parts, for the provisioning log: `scope, mappings`.
    pub fn describe(&self) -> String {
        let parts = [
            (self.scope, "scope"),
            (self.mappings, "mappings"),
            (self.threshold, "delete threshold"),
            (self.phs, "password hash sync"),
            (self.writeback, "password writeback"),
        ];
        parts
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A direct mapping's source is one attribute name (letters, digits, `-`, starting with a letter).
fn is_attribute_name(source: &str) -> bool {
    let mut chars = source.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `corp.example.test` → `dc=corp,dc=example,dc=test` (canonical, for the inside-the-domain check).
fn naming_context(domain: &str) -> String {
    domain
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| format!("dc={}", l.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

impl DomainSettings {
    /// The settings of a tenant configuration.
    pub fn from_configuration(c: &Configuration) -> DomainSettings {
        DomainSettings {
            configuration_id: c.id,
            revision: c.revision,
            ous: c.spec.scope.organizational_units.clone(),
            groups: c.spec.scope.groups.clone(),
            mappings: c
                .spec
                .mappings
                .iter()
                .map(|m| (m.target.clone(), m.source.clone()))
                .collect(),
            delete_threshold: c.spec.delete_threshold,
            password_hash_sync: c.spec.password_hash_sync,
            password_writeback: c.spec.password_writeback,
        }
    }

    /// What differs from `old` (everything when there was none).
    pub fn changes_since(&self, old: Option<&DomainSettings>) -> Changes {
        let Some(old) = old else {
            return Changes {
                scope: true,
                mappings: true,
                threshold: true,
                phs: true,
                writeback: true,
            };
        };
        Changes {
            scope: self.ous != old.ous || self.groups != old.groups,
            mappings: self.mappings != old.mappings,
            threshold: self.delete_threshold != old.delete_threshold,
            phs: self.password_hash_sync != old.password_hash_sync,
            writeback: self.password_writeback != old.password_writeback,
        }
    }

    /// The effective scope and mapping specs over the TOML `base`.
    pub(super) fn effective(&self, base: &ProjectionConfig) -> (ScopeSpec, Vec<MappingSpec>) {
        let scope = if self.ous.is_empty() && self.groups.is_empty() {
            base.scope.clone()
        } else {
            ScopeSpec {
                ous: self.ous.clone(),
                groups: self.groups.clone(),
                filters: base.scope.filters.clone(),
            }
        };
        let mappings = base
            .mappings
            .iter()
            .cloned()
            .chain(self.mapping_specs())
            .collect();
        (scope, mappings)
    }

    /// The mapping specs of the tenant's mappings (users).
    fn mapping_specs(&self) -> Vec<MappingSpec> {
        self.mappings
            .iter()
            .map(|(target, source)| {
                let source = source.trim();
                let mut spec = MappingSpec::new(ObjectKind::User, target);
                if is_attribute_name(source) {
                    spec.source = Some(source.to_string());
                } else {
                    spec.expression = Some(source.to_string());
                }
                spec
            })
            .collect()
    }

    /// Compiles these settings over the TOML `base` for `domain`; errors name the domain, the
    /// revision and the tenant's field.
    pub(super) fn compile_over(
        &self,
        base: &ProjectionConfig,
        domain: &str,
    ) -> Result<DomainCompiled, Vec<ConfigError>> {
        let at = |field: &str| {
            format!(
                "tenant configuration {} ({domain}, revision {}) {field}",
                self.configuration_id, self.revision
            )
        };
        let mut errors = Vec::new();
        let (scope_spec, specs) = self.effective(base);
        let nc = naming_context(domain);
        for (field, dns) in [
            ("scope.organizationalUnits", &self.ous),
            ("scope.groups", &self.groups),
        ] {
            for (i, d) in dns.iter().enumerate() {
                let canonical = super::dn::canonical(d);
                let inside = canonical == nc || canonical.ends_with(&format!(",{nc}"));
                if super::dn::split(d).is_some_and(|r| !r.is_empty()) && !inside {
                    errors.push(ConfigError {
                        key: at(&format!("{field}[{i}]")),
                        message: format!("`{d}` is not inside the domain {domain} ({nc})"),
                    });
                }
            }
        }
        let scope = Scope::compile(&scope_spec).map_err(|es| {
            errors.extend(es.into_iter().map(|e| {
                ConfigError {
                    key: at(&e
                        .key
                        .replace("projection.scope.ous", "scope.organizationalUnits")
                        .replace("projection.scope.groups", "scope.groups")
                        .replace("projection.scope", "scope")),
                    message: e.message,
                }
            }));
        });
        let n_base = base.mappings.len();
        let mappings = Mappings::compile(&specs).map_err(|es| {
            errors.extend(es.into_iter().map(|e| {
                // Keys of the tenant's mappings are renumbered from the tenant's list.
                let key = tenant_mapping_key(&e.key, n_base)
                    .map(|k| at(&k))
                    .unwrap_or(e.key);
                ConfigError {
                    key,
                    message: e.message,
                }
            }));
        });
        match (scope, mappings) {
            (Ok(scope), Ok(mappings)) if errors.is_empty() => Ok(DomainCompiled {
                scope,
                mappings,
                delete_threshold: self.delete_threshold,
            }),
            _ => Err(errors),
        }
    }
}

/// `projection.mappings[7].expression` with 5 TOML mappings → `mappings[2] (target ← source)`.
fn tenant_mapping_key(key: &str, n_base: usize) -> Option<String> {
    let rest = key.strip_prefix("projection.mappings[")?;
    let (index, tail) = rest.split_once(']')?;
    let i: usize = index.parse().ok()?;
    let i = i.checked_sub(n_base)?;
    let tail = tail.replace(".expression", ".source");
    Some(format!("mappings[{i}]{tail}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::projection::scope::Mode;

    fn settings() -> DomainSettings {
        DomainSettings {
            configuration_id: uuid::Uuid::from_u128(1),
            revision: 7,
            ous: Vec::new(),
            groups: Vec::new(),
            mappings: Vec::new(),
            delete_threshold: 500,
            password_hash_sync: true,
            password_writeback: false,
        }
    }

    /// An OU scope for domain A leaves domain B on the TOML's scope (all of it).
    #[test]
    fn a_tenant_scope_is_per_domain() {
        let mut a = settings();
        a.ous = vec!["OU=Sales,DC=a,DC=test".into()];
        let tenant = BTreeMap::from([("a.test".to_string(), a)]);
        let c = ProjectionConfig::default().compile_with(&tenant).unwrap();
        assert_eq!(
            c.scope_of("A.test").mode,
            Mode::Ous(vec!["ou=sales,dc=a,dc=test".into()])
        );
        assert_eq!(c.scope_of("b.test").mode, Mode::All);
        assert!(
            c.scope_of("A.TEST")
                .ou_selects("cn=x,ou=sales,dc=a,dc=test")
        );
        assert!(!c.scope_of("a.test").ou_selects("cn=y,ou=it,dc=a,dc=test"));
    }

    /// The tenant's mapping reads an attribute the TOML does not: it is kept (in the one table), and
    /// it applies to its domain only.
    #[test]
    fn tenant_mappings_override_per_domain_and_widen_the_table() {
        let mut a = settings();
        a.mappings = vec![
            ("jobTitle".into(), "Join(\"-\", [department], \"x\")".into()),
            ("companyName".into(), "carLicense".into()),
        ];
        a.delete_threshold = 3;
        let tenant = BTreeMap::from([("a.test".to_string(), a)]);
        let base = ProjectionConfig::default().compile().unwrap();
        let c = ProjectionConfig::default().compile_with(&tenant).unwrap();
        assert!(base.table.id("carlicense").is_none());
        assert!(c.table.id("carlicense").is_some());
        let job = |c: &crate::projection::config::Compiled, d: &str| {
            c.mappings_of(d)
                .of(ObjectKind::User)
                .iter()
                .find(|m| m.target.eq_ignore_ascii_case("jobTitle"))
                .map(|m| format!("{:?}", m.expr))
        };
        assert!(job(&c, "a.test").is_some_and(|e| e.contains("department")));
        assert!(!job(&c, "b.test").is_some_and(|e| e.contains("department")));
        assert_eq!(
            (c.threshold_of("a.test"), c.threshold_of("b.test")),
            (3, 500)
        );
        assert_ne!(c.fingerprint("a.test"), c.fingerprint("b.test"));
        // A tenant configuration that changes nothing projection sends keeps the TOML's fingerprint.
        let same = BTreeMap::from([("c.test".to_string(), settings())]);
        let c = ProjectionConfig::default().compile_with(&same).unwrap();
        assert_eq!(c.fingerprint("c.test"), c.fingerprint("b.test"));
    }

    #[test]
    fn a_bad_tenant_spec_is_refused_naming_domain_revision_and_field() {
        let mut a = settings();
        a.ous = vec!["junk".into(), "OU=Sales,DC=other,DC=test".into()];
        a.mappings = vec![("jobTitle".into(), "Left([title],".into())];
        let tenant = BTreeMap::from([("a.test".to_string(), a)]);
        let errs = ProjectionConfig::default()
            .compile_with(&tenant)
            .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert!(
            keys.iter()
                .any(|k| k.contains("a.test, revision 7") && k.ends_with("mappings[0].source")),
            "{errs:?}"
        );
        assert!(
            keys.iter()
                .any(|k| k.ends_with("scope.organizationalUnits[0]")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.key.ends_with("scope.organizationalUnits[1]")
                    && e.message.contains("not inside the domain a.test")),
            "{errs:?}"
        );
    }

    #[test]
    fn changes_name_what_differs() {
        let a = settings();
        let mut b = a.clone();
        b.revision = 8;
        assert!(!b.changes_since(Some(&a)).any());
        b.ous = vec!["OU=X,DC=a,DC=test".into()];
        b.password_writeback = true;
        let ch = b.changes_since(Some(&a));
        assert!(ch.needs_reread());
        assert_eq!(ch.describe(), "scope, password writeback");
    }
}
