//! Configuration from the cloud at run time. Enters: the tenant's configurations of the served
//! domains (fetched with the agent's token at start, and again when a heartbeat reports a new
//! revision), the TOML's `[projection]` base and the settings accepted before (kept in projection's
//! store). Leaves: projection's compiled configuration with the tenant's per-domain settings on top
//! ([`crate::projection::cloud`]), the domains to re-read with the provisioning log's reason, the
//! per-domain password hash sync switch ([`CloudSettings::phs_allowed`]) and the writeback switch,
//! and what `agent status` shows ([`CloudSettings::status`]).
//!
//! A tenant spec that does not compile (a bad expression, an OU outside the domain) is refused with
//! an ERROR line naming the domain, revision and field; the domain keeps its previous settings and
//! the refusal stays visible in the status file until a later revision is accepted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::tenant_client::TenantClient;
use crate::projection::cloud::DomainSettings;
use crate::projection::config::{Compiled, ConfigError, ProjectionConfig};
use crate::projection::store::ProjectionStore;
use cloudsync_api::config::Configuration;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A tenant revision that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// The refused revision.
    pub revision: u64,
    /// Every problem, each naming the field.
    pub errors: Vec<String>,
}

/// One domain's cloud settings as `agent status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainCloudStatus {
    /// The tenant configuration.
    pub configuration_id: Uuid,
    /// The revision in force.
    pub revision: u64,
    /// Whether the tenant's scope replaces the TOML's.
    pub scope_from_tenant: bool,
    /// How many tenant mappings are in force.
    pub tenant_mappings: usize,
    /// The delete threshold in force.
    pub delete_threshold: u32,
    /// The tenant's password hash sync switch (PHS runs when `[phs] enabled` too).
    pub password_hash_sync: bool,
    /// The tenant's password writeback switch.
    pub password_writeback: bool,
    /// The last revision refused, if it is newer than the one in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

impl DomainCloudStatus {
    /// The status of accepted settings (no refusal known).
    pub fn from_settings(s: &DomainSettings) -> DomainCloudStatus {
        DomainCloudStatus {
            configuration_id: s.configuration_id,
            revision: s.revision,
            scope_from_tenant: !(s.ous.is_empty() && s.groups.is_empty()),
            tenant_mappings: s.mappings.len(),
            delete_threshold: s.delete_threshold,
            password_hash_sync: s.password_hash_sync,
            password_writeback: s.password_writeback,
            refused: None,
        }
    }
}

/// What [`CloudSettings::offer`] decided.
#[derive(Debug, Default)]
pub struct Applied {
    /// The new compiled configuration, when anything projection uses changed.
    pub compiled: Option<Compiled>,
    /// Domains whose objects must be evaluated again (re-read), with the provisioning log's reason
    /// (`scope, revision 7`).
    pub rereads: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Inner {
    accepted: BTreeMap<String, DomainSettings>,
    refused: BTreeMap<String, Refusal>,
}

/// The tenant's settings in force, shared by the projection task (which applies them), the PHS
/// cycles (which ask whether they may run) and the status file.
#[derive(Debug)]
pub struct CloudSettings {
    base: ProjectionConfig,
    store: ProjectionStore,
    inner: Mutex<Inner>,
}

impl CloudSettings {
    /// The settings accepted before (from projection's store) over the TOML `base`.
    pub fn load(base: ProjectionConfig, store: ProjectionStore) -> Arc<CloudSettings> {
        let accepted = store.cloud_settings().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "The stored tenant settings do not read; using the TOML's until the tenant answers.");
            BTreeMap::new()
        });
        Arc::new(CloudSettings {
            base,
            store,
            inner: Mutex::new(Inner {
                accepted,
                refused: BTreeMap::new(),
            }),
        })
    }

    /// Projection's configuration: the TOML base with the accepted tenant settings on top.
    pub fn compiled(&self) -> Result<Compiled, Vec<ConfigError>> {
        let accepted = lock(&self.inner).accepted.clone();
        match self.base.compile_with(&accepted) {
            Ok(c) => Ok(c),
            Err(errors) => {
                // Settings stored by another build that this one refuses: fall back to the TOML's.
                tracing::error!(errors = %join(&errors), "The stored tenant settings do not compile; using the TOML's until the tenant sends new ones.");
                lock(&self.inner).accepted.clear();
                self.base.compile()
            }
        }
    }

    /// Whether password hash sync may run for `domain` under the tenant's switch: the tenant's
    /// `passwordHashSync` once its configuration was read; before that (or for a domain the tenant
    /// does not configure) the local `[phs] enabled` alone decides.
    pub fn phs_allowed(&self, domain: &str) -> bool {
        lock(&self.inner)
            .accepted
            .get(&domain.to_ascii_lowercase())
            .is_none_or(|s| s.password_hash_sync)
    }

    /// The tenant's writeback switch for `domain`, once known (the writeback stage consumes it).
    pub fn writeback(&self, domain: &str) -> Option<bool> {
        lock(&self.inner)
            .accepted
            .get(&domain.to_ascii_lowercase())
            .map(|s| s.password_writeback)
    }

    /// The revision in force per configuration id (what a heartbeat's revisions are compared to).
    pub fn revisions(&self) -> BTreeMap<Uuid, u64> {
        lock(&self.inner)
            .accepted
            .values()
            .map(|s| (s.configuration_id, s.revision))
            .collect()
    }

    /// What `agent status` shows, per domain.
    pub fn status(&self) -> BTreeMap<String, DomainCloudStatus> {
        let inner = lock(&self.inner);
        inner
            .accepted
            .iter()
            .map(|(d, s)| {
                let mut status = DomainCloudStatus::from_settings(s);
                status.refused = inner.refused.get(d).cloned();
                (d.clone(), status)
            })
            .collect()
    }

    /// Offers the tenant's configurations (domain → configuration): each domain whose settings
    /// changed and compile is accepted (and stored); one that does not compile is refused (ERROR
    /// line, kept for the status) and keeps its previous settings. `current` is projection's
    /// configuration in force, to tell which domains' objects change.
    pub fn offer(&self, configs: &BTreeMap<String, Configuration>, current: &Compiled) -> Applied {
        let mut inner = lock(&self.inner);
        let mut changed_any = false;
        let mut reasons: BTreeMap<String, String> = BTreeMap::new();
        for (domain, c) in configs {
            let domain = domain.to_ascii_lowercase();
            let new = DomainSettings::from_configuration(c);
            let old = inner.accepted.get(&domain);
            if old == Some(&new) {
                continue;
            }
            // Before the first revision, compare with what the TOML alone gave.
            let toml = DomainSettings {
                configuration_id: c.id,
                revision: 0,
                ous: Vec::new(),
                groups: Vec::new(),
                mappings: Vec::new(),
                delete_threshold: self.base.delete_threshold,
                password_hash_sync: true,
                password_writeback: false,
            };
            let changes = new.changes_since(Some(old.unwrap_or(&toml)));
            if !changes.any() {
                // Only the revision moved (a health change, a restart): nothing to apply.
                inner.accepted.insert(domain.clone(), new);
                changed_any = true;
                continue;
            }
            let single = BTreeMap::from([(domain.clone(), new.clone())]);
            if let Err(errors) = self.base.compile_with(&single) {
                tracing::error!(
                    domain = %domain,
                    configuration = %c.id,
                    revision = c.revision,
                    errors = %join(&errors),
                    "The tenant's configuration was refused; the previous settings stay in force. Fix it in the tenant."
                );
                inner.refused.insert(
                    domain,
                    Refusal {
                        revision: c.revision,
                        errors: errors.iter().map(ToString::to_string).collect(),
                    },
                );
                continue;
            }
            tracing::info!(
                domain = %domain,
                configuration = %c.id,
                revision = c.revision,
                changed = %changes.describe(),
                password_hash_sync = new.password_hash_sync,
                password_writeback = new.password_writeback,
                "The tenant's configuration is in force."
            );
            reasons.insert(
                domain.clone(),
                format!("{}, revision {}", changes.describe(), c.revision),
            );
            inner.refused.remove(&domain);
            inner.accepted.insert(domain, new);
            changed_any = true;
        }
        if !changed_any {
            return Applied::default();
        }
        if let Err(e) = self.store.save_cloud_settings(&inner.accepted) {
            tracing::warn!(error = %e, "The tenant's settings were not stored; a restart without the tenant uses the previous ones.");
        }
        let compiled = match self.base.compile_with(&inner.accepted) {
            Ok(c) => c,
            Err(errors) => {
                // Each domain compiled alone; together they cannot fail, but say so if they do.
                tracing::error!(errors = %join(&errors), "The tenant's settings do not compile together; the previous ones stay.");
                return Applied::default();
            }
        };
        let rereads = reasons
            .into_iter()
            .filter(|(d, _)| compiled.fingerprint(d) != current.fingerprint(d))
            .collect();
        Applied {
            compiled: Some(compiled),
            rereads,
        }
    }
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `agent sync-once` needs from the tenant's settings before its feed pass.
pub struct PreparedOnce {
    /// Domains to read in full (their scope or mappings changed since the snapshot).
    pub full_reads: Vec<String>,
    /// The tenant's PHS switch per domain.
    pub phs_gate: super::phs::PhsGate,
}

/// For `agent sync-once`, before the feeds: reads the tenant's configurations, puts what changed
/// in force (stored in projection's store, where the projection step then finds it), and returns
/// the domains whose effective scope or mappings differ from the snapshot's (their pass is a full
/// read) and the PHS switch. Anything failing here (no tenant, no credentials, the tenant
/// unreachable) leaves the settings in force and is logged; the cloud step reports its own errors.
pub async fn prepare_once(config: &crate::config::Config) -> PreparedOnce {
    let mut prepared = PreparedOnce {
        full_reads: Vec::new(),
        phs_gate: Arc::new(|_: &str| true),
    };
    let Some(tenant) = &config.tenant else {
        return prepared;
    };
    let opened = (|| {
        let creds = crate::control::credentials::AgentCredentials::load(&tenant.credentials_file)
            .map_err(|e| e.to_string())?;
        let by_domain = super::cloud_stages::configurations_by_domain(config, &creds)
            .map_err(|e| e.to_string())?;
        let client = TenantClient::agent(tenant, &creds).map_err(|e| e.to_string())?;
        let store =
            ProjectionStore::open(&config.agent.projection_dir()).map_err(|e| e.to_string())?;
        Ok::<_, String>((by_domain, client, store))
    })();
    let (by_domain, client, store) = match opened {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(error = %e, "The tenant's settings are not read before the feeds.");
            return prepared;
        }
    };
    let cloud = CloudSettings::load(config.projection.clone(), store.clone());
    let Ok(current) = cloud.compiled() else {
        return prepared;
    };
    let domains: BTreeMap<Uuid, String> =
        by_domain.iter().map(|(d, id)| (*id, d.clone())).collect();
    let configs = fetch(&client, &domains).await;
    let applied = cloud.offer(&configs, &current);
    let compiled = applied.compiled.unwrap_or(current);
    if let Ok(Some(meta)) = store.snapshot_meta()
        && !meta.table.is_empty()
    {
        let widened = compiled
            .table
            .names()
            .iter()
            .any(|n| !meta.table.contains(n));
        prepared.full_reads = meta
            .settings
            .iter()
            .filter(|(d, print)| widened || compiled.fingerprint(d) != print.as_str())
            .map(|(d, _)| d.clone())
            .collect();
    }
    for d in &prepared.full_reads {
        tracing::info!(domain = %d, "The configuration changed: this pass reads the domain in full so every object is evaluated again.");
    }
    // The switches as values: projection's store must be closed before the cloud step opens it.
    let switches: BTreeMap<String, bool> = cloud
        .status()
        .into_iter()
        .map(|(d, s)| (d, s.password_hash_sync))
        .collect();
    drop(cloud);
    drop(store);
    prepared.phs_gate = Arc::new(move |d: &str| {
        switches
            .get(&d.to_ascii_lowercase())
            .copied()
            .unwrap_or(true)
    });
    prepared
}

/// Reads the tenant's configuration of every served domain (configuration id → domain); a
/// configuration that cannot be read is logged and left out (its domain keeps its settings).
pub async fn fetch(
    client: &TenantClient,
    domains: &BTreeMap<Uuid, String>,
) -> BTreeMap<String, Configuration> {
    let mut out = BTreeMap::new();
    for (id, domain) in domains {
        match client.get_configuration(*id).await {
            Ok(c) => {
                out.insert(domain.to_ascii_lowercase(), c);
            }
            Err(e) => {
                tracing::warn!(configuration = %id, domain = %domain, error = %e, "The tenant's configuration could not be read; the settings in force stay.");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::config::{ConfigurationSpec, Health, Scope};

    fn configuration(revision: u64, ous: &[&str], phs: bool) -> Configuration {
        Configuration {
            id: Uuid::from_u128(5),
            revision,
            spec: ConfigurationSpec {
                domain: "a.test".into(),
                scope: Scope {
                    organizational_units: ous.iter().map(|s| s.to_string()).collect(),
                    groups: Vec::new(),
                },
                mappings: Vec::new(),
                password_hash_sync: phs,
                password_writeback: false,
                allow_unlock: false,
                delete_threshold: 500,
            },
            health: Health::Healthy,
            last_sync: None,
            lease: None,
        }
    }

    #[test]
    fn a_refused_revision_keeps_the_previous_settings_and_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let cloud = CloudSettings::load(ProjectionConfig::default(), store.clone());
        assert!(cloud.phs_allowed("a.test"), "before the tenant answers");
        let current = cloud.compiled().unwrap();
        let good = BTreeMap::from([(
            "a.test".to_string(),
            configuration(3, &["OU=Sales,DC=a,DC=test"], false),
        )]);
        let applied = cloud.offer(&good, &current);
        let current = applied.compiled.unwrap();
        assert_eq!(
            applied.rereads,
            vec![(
                "a.test".to_string(),
                "scope, password hash sync, revision 3".to_string()
            )]
        );
        assert!(!cloud.phs_allowed("A.test"));
        assert!(cloud.phs_allowed("b.test"));

        let bad = BTreeMap::from([("a.test".to_string(), configuration(4, &["junk"], true))]);
        let applied = cloud.offer(&bad, &current);
        assert!(applied.compiled.is_none() && applied.rereads.is_empty());
        assert!(!cloud.phs_allowed("a.test"), "the previous settings stay");
        let status = cloud.status();
        let a = &status["a.test"];
        assert_eq!(a.revision, 3);
        let refused = a.refused.as_ref().unwrap();
        assert_eq!(refused.revision, 4);
        assert!(
            refused.errors[0].contains("scope.organizationalUnits[0]"),
            "{refused:?}"
        );

        // A restart reads the accepted settings back from the store.
        let again = CloudSettings::load(ProjectionConfig::default(), store);
        assert_eq!(again.revisions(), BTreeMap::from([(Uuid::from_u128(5), 3)]));
        assert!(!again.phs_allowed("a.test"));
    }

    #[test]
    fn a_revision_that_changes_nothing_projection_uses_needs_no_reread() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let cloud = CloudSettings::load(ProjectionConfig::default(), store);
        let current = cloud.compiled().unwrap();
        // The tenant's defaults equal the TOML's: nothing to re-read.
        let same = BTreeMap::from([("a.test".to_string(), configuration(1, &[], true))]);
        let applied = cloud.offer(&same, &current);
        assert!(applied.rereads.is_empty(), "{:?}", applied.rereads);
        let current = applied.compiled.unwrap();
        // PHS switched off: applied, still no re-read.
        let off = BTreeMap::from([("a.test".to_string(), configuration(2, &[], false))]);
        let applied = cloud.offer(&off, &current);
        assert!(applied.rereads.is_empty());
        assert!(!cloud.phs_allowed("a.test"));
    }
}
