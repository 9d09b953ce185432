//! Password hash sync in the agent: one [`PhsCycle`] per domain, scheduled by the LDAP feed.
//!
//! Enters: the validated [`Config`] (`[phs]`, `[fips]`, each domain's connection and sync account)
//! and the journal. Leaves: `Event::PasswordHashChanged` events (salted OrgId strings only) appended
//! by the cycles, and for the feed a [`PasswordSignalSink`] that wakes a domain's cycle after every
//! durable append that carried an `Event::PasswordChanged`.
//!
//! The MS-DRSR credentials are the domain's own: `bind_dn` as a UPN (`svc@corp.example.test`, NTLM
//! user `svc` in domain `corp.example.test`) or `DOMAIN\user`, with the bind password; the DC is
//! the host of the domain's `url`. When FIPS policy refuses MD4/MD5/RC4 no cycle starts: the agent
//! logs the policy's message at WARN and everything else keeps running.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::nt_hash::NtHash;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, SourceKind};
use crate::journal::Journal;
use crate::phs::fips::HOST_FIPS_FILE;
use crate::phs::{HashPool, PhsError};
use crate::source::drsr::DrsrSettings;
use crate::source::drsr::ntlm::Credentials;
use crate::source::ldap::{AccountForm, DomainConfig};
use crate::source::phs::cycle::{CycleReport, PhsCycle, PhsSource};
use crate::source::phs::{CycleError, PhsSettings, PhsSourceKind};
use crate::source::{EventSink, SinkError, SourceCheckpoint};

/// Why a domain's password hash sync stage could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum PhsWireError {
    /// The hashing library refused to start (FIPS refusal, no hashing thread).
    #[error(transparent)]
    Phs(#[from] PhsError),
    /// A cycle failed (replication, hashing, the journal).
    #[error(transparent)]
    Cycle(#[from] CycleError),
    /// `bind_dn` is neither a UPN nor `DOMAIN\user`, so there is no NTLM identity for MS-DRSR.
    #[error(
        "domains.{0}.bind_dn must be a UPN (svc@corp.example.test) or DOMAIN\\user for password hash sync over MS-DRSR"
    )]
    Identity(String),
    /// The domain's `url` names no host.
    #[error("domains.{0}.url names no host for MS-DRSR")]
    NoHost(String),
    /// The bind password could not be read.
    #[error("cannot read the password of domains.{0}: {1}")]
    Password(String, #[source] std::io::Error),
}

impl PhsWireError {
    /// Whether retrying later may succeed without a configuration change.
    pub fn is_retriable(&self) -> bool {
        match self {
            PhsWireError::Phs(e) => e.is_retriable(),
            PhsWireError::Cycle(e) => e.is_retriable(),
            PhsWireError::Identity(_) | PhsWireError::NoHost(_) | PhsWireError::Password(..) => {
                false
            }
        }
    }

    /// Whether FIPS policy refused password hash sync (the same for every domain).
    pub fn is_fips_refusal(&self) -> bool {
        matches!(
            self,
            PhsWireError::Phs(PhsError::Fips(_))
                | PhsWireError::Cycle(CycleError::Phs(PhsError::Fips(_)))
        )
    }
}

/// The NTLM user and domain for a `bind_dn`: `user@dns.domain` or `DOMAIN\user`; a DN has none.
pub fn ntlm_identity(bind_dn: &str) -> Option<(String, String)> {
    let (user, domain) = if let Some((d, u)) = bind_dn.split_once('\\') {
        (u, d)
    } else {
        bind_dn.split_once('@')?
    };
    (!user.is_empty() && !domain.is_empty() && !user.contains('='))
        .then(|| (user.to_owned(), domain.to_owned()))
}

/// The host of `ldaps://host:636/…` (an IPv6 literal without its brackets).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

fn source_for(label: &str, d: &DomainConfig, s: &PhsSettings) -> Result<PhsSource, PhsWireError> {
    match s.source {
        PhsSourceKind::SambaPriv => Ok(PhsSource::SambaPriv {
            socket: s.samba_priv_socket.clone().unwrap_or_default(),
            base_dn: d.base(),
        }),
        PhsSourceKind::Drsr => {
            let (user, domain) =
                ntlm_identity(&d.bind_dn).ok_or_else(|| PhsWireError::Identity(label.into()))?;
            let dc = url_host(&d.url).ok_or_else(|| PhsWireError::NoHost(label.into()))?;
            let gmsa = d.account == AccountForm::Gmsa;
            // A gMSA's hash is read from the DC before each cycle; until then the settings carry
            // the hash of nothing, never used.
            let nt_hash = if gmsa {
                NtHash::from_utf16le(&[])
            } else {
                let password = d
                    .resolve_password()
                    .map_err(|e| PhsWireError::Password(label.into(), e))?;
                NtHash::from_password(password.expose())
            };
            let settings = DrsrSettings {
                dc,
                port: s.drsr_port,
                nc_dn: d.base(),
                credentials: Credentials {
                    user,
                    domain,
                    nt_hash,
                },
                timeout: s.timeout(),
                page_objects: s.page_objects,
                partial_attribute_set: s.partial_attribute_set,
            };
            Ok(if gmsa {
                PhsSource::DrsrAsGmsa(settings, Box::new(d.clone()))
            } else {
                PhsSource::Drsr(settings)
            })
        }
    }
}

/// Builds one domain's stage (checks the FIPS policy against the host first).
pub fn build_cycle(
    config: &Config,
    label: &str,
    journal: &Journal,
) -> Result<PhsCycle<Journal>, PhsWireError> {
    let d = config
        .domains
        .get(label)
        .ok_or_else(|| PhsWireError::Identity(label.into()))?;
    // The policy check comes first, so a refusal is reported even when credentials are missing.
    crate::phs::fips::check_password_hash_sync_on_host(&config.fips).map_err(PhsError::from)?;
    let source = source_for(label, d, &config.phs)?;
    Ok(PhsCycle::new(
        journal.clone(),
        HashPool::with_all_cores()?,
        d.dns_name.clone(),
        source,
        &config.fips,
        std::path::Path::new(HOST_FIPS_FILE),
    )?)
}

fn warn_fips(err: &PhsWireError) {
    tracing::warn!(error = %err, "Password hash sync does not start; everything else keeps running.");
}

/// One PHS cycle per domain (for `agent sync-once`), after the feed. Empty when `[phs]` is off;
/// empty after a WARN when FIPS policy refuses.
pub async fn replicate_hashes_once(
    config: &Config,
    journal: &Journal,
) -> Vec<(String, Result<CycleReport, PhsWireError>)> {
    replicate_hashes_once_gated(config, journal, &(Arc::new(|_: &str| true) as PhsGate)).await
}

/// [`replicate_hashes_once`] for the domains `gate` allows (the tenant's switch); the others are
/// left out of the report, with an INFO line.
pub async fn replicate_hashes_once_gated(
    config: &Config,
    journal: &Journal,
    gate: &PhsGate,
) -> Vec<(String, Result<CycleReport, PhsWireError>)> {
    let mut out = Vec::new();
    if !config.phs.enabled {
        return out;
    }
    for (label, d) in &config.domains {
        if !gate(&d.dns_name) {
            tracing::info!(domain = %d.dns_name, "Password hash sync is switched off in the tenant for this domain; cycle skipped.");
            continue;
        }
        let result = match build_cycle(config, label, journal) {
            Ok(cycle) => cycle.run_once().await.map_err(PhsWireError::from),
            Err(e) if e.is_fips_refusal() => {
                warn_fips(&e);
                return Vec::new();
            }
            Err(e) => Err(e),
        };
        out.push((label.clone(), result));
    }
    out
}

/// One wake-up signal per domain (keyed by lowercase DNS name) for the PHS cycles.
#[derive(Debug, Clone, Default)]
pub struct PhsSignals(Arc<BTreeMap<String, Arc<Notify>>>);

impl PhsSignals {
    /// A signal for every configured domain when `[phs]` is on; none otherwise.
    pub fn for_config(config: &Config) -> PhsSignals {
        if !config.phs.enabled {
            return PhsSignals::default();
        }
        let map = config
            .domains
            .values()
            .map(|d| (d.dns_name.to_ascii_lowercase(), Arc::new(Notify::new())))
            .collect();
        PhsSignals(Arc::new(map))
    }

    /// The signal of `domain`, if PHS runs for it.
    pub fn get(&self, domain: &str) -> Option<Arc<Notify>> {
        self.0.get(&domain.to_ascii_lowercase()).cloned()
    }

    /// The signals of the domains that have a password change among `events` (each once).
    fn to_wake(&self, events: &[Event]) -> Vec<Arc<Notify>> {
        let mut out: Vec<Arc<Notify>> = Vec::new();
        for e in events {
            if let Event::PasswordChanged { domain, .. } = e
                && let Some(n) = self.get(domain)
                && !out.iter().any(|o| Arc::ptr_eq(o, &n))
            {
                out.push(n);
            }
        }
        out
    }
}

/// The feed's sink: appends to `inner`, then wakes PHS for domains whose passwords changed.
pub struct PasswordSignalSink<S> {
    inner: Arc<S>,
    signals: PhsSignals,
}

impl<S> PasswordSignalSink<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>, signals: PhsSignals) -> Self {
        PasswordSignalSink { inner, signals }
    }
}

impl<S: EventSink> EventSink for PasswordSignalSink<S> {
    fn checkpoint(&self, domain: &str, source: SourceKind) -> Result<Option<Vec<u8>>, SinkError> {
        self.inner.checkpoint(domain, source)
    }

    async fn append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<SourceCheckpoint>,
    ) -> Result<Option<u64>, SinkError> {
        let wake = self.signals.to_wake(&events);
        let seq = self.inner.append(events, checkpoint).await?;
        // Only after the append is durable, so a woken cycle follows what the feed wrote. Several
        // signals before the cycle wakes coalesce into one more cycle.
        for n in wake {
            n.notify_one();
        }
        Ok(seq)
    }
}

/// Whether password hash sync may run for a domain (its DNS name) besides `[phs] enabled`: the
/// tenant's switch ([`super::cloud_config::CloudSettings::phs_allowed`]), asked before each cycle.
pub type PhsGate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// One domain's password hash sync in the daemon: a cycle on every interval, and one more whenever the
/// feed's sink signals a password change ([`PasswordSignalSink`]).
pub struct PhsTask {
    domain: String,
    cycle: PhsCycle<Journal>,
    signal: Arc<Notify>,
    interval: std::time::Duration,
    gate: PhsGate,
}

impl PhsTask {
    /// Cycles until `cancel` fires; a cycle in flight at cancellation finishes its journal write or
    /// leaves nothing (the cookie is written with the hashes, so the next start re-reads the rest).
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(domain = %self.domain, interval_secs = self.interval.as_secs(), "Password hash sync started.");
        let (gate, domain) = (self.gate, self.domain);
        self.cycle
            .run_gated(self.signal, self.interval, cancel, move || gate(&domain))
            .await
    }
}

/// The PHS tasks to run beside the feeds, one per domain, when `[phs] enabled = true`. A FIPS refusal
/// gives none (logged at WARN); a domain whose stage cannot be built is logged at ERROR and skipped,
/// the others run.
pub fn phs_tasks(
    config: &Config,
    journal: &Journal,
    signals: &PhsSignals,
    gate: &PhsGate,
) -> Vec<PhsTask> {
    if !config.phs.enabled {
        return Vec::new();
    }
    let mut tasks = Vec::new();
    for (label, d) in &config.domains {
        match build_cycle(config, label, journal) {
            Ok(cycle) => tasks.push(PhsTask {
                domain: d.dns_name.clone(),
                cycle,
                signal: signals.get(&d.dns_name).unwrap_or_default(),
                interval: config.phs.interval(),
                gate: gate.clone(),
            }),
            Err(e) if e.is_fips_refusal() => {
                warn_fips(&e);
                return Vec::new();
            }
            Err(e) => {
                tracing::error!(domain = %d.dns_name, error = %e, "Password hash sync cannot start for this domain.");
            }
        }
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntlm_identity_from_upn_and_down_level_names() {
        assert_eq!(
            ntlm_identity("svc-sync@corp.example.test"),
            Some(("svc-sync".into(), "corp.example.test".into()))
        );
        assert_eq!(
            ntlm_identity("CORP\\svc-sync"),
            Some(("svc-sync".into(), "CORP".into()))
        );
        assert_eq!(ntlm_identity("CN=svc,CN=Users,DC=corp,DC=test"), None);
        assert_eq!(ntlm_identity("@corp"), None);
        assert_eq!(ntlm_identity("svc@"), None);
    }

    #[test]
    fn url_host_strips_scheme_port_and_path() {
        assert_eq!(
            url_host("ldaps://127.0.0.5:636").as_deref(),
            Some("127.0.0.5")
        );
        assert_eq!(
            url_host("ldap://dc1.corp.test/").as_deref(),
            Some("dc1.corp.test")
        );
        assert_eq!(url_host("ldaps://[::1]:636").as_deref(), Some("::1"));
        assert_eq!(url_host("ldaps://:636"), None);
    }

    fn password_changed(domain: &str) -> Event {
        Event::PasswordChanged {
            domain: domain.into(),
            guid: crate::event::Guid([7; 16]),
            usn: 1,
            pwd_last_set: None,
        }
    }

    #[tokio::test]
    async fn an_append_with_a_password_change_wakes_only_that_domain() {
        let a = Arc::new(Notify::new());
        let b = Arc::new(Notify::new());
        let signals = PhsSignals(Arc::new(BTreeMap::from([
            ("a.test".to_owned(), a.clone()),
            ("b.test".to_owned(), b.clone()),
        ])));
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), crate::journal::JournalOptions::default()).unwrap();
        let sink = PasswordSignalSink::new(Arc::new(journal.clone()), signals);
        sink.append(vec![password_changed("A.test")], None)
            .await
            .unwrap();
        // The event is durable before the signal, and only `a.test` was woken.
        assert_eq!(journal.read(0).count(), 1);
        let woke = |n: Arc<Notify>| async move {
            tokio::time::timeout(std::time::Duration::from_millis(50), n.notified())
                .await
                .is_ok()
        };
        assert!(woke(a.clone()).await);
        assert!(!woke(b).await);
        // No password change: no signal.
        sink.append(Vec::new(), None).await.unwrap();
        assert!(!woke(a).await);
    }
}
