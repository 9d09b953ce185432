//! The agent's Prometheus metrics. Enters: counts from the stages' choke points (the journal sink,
//! the domain feeds, the LDAP bind, password hash sync's cycles) and, at each scrape, the journal's
//! cursors, the outbox and the push stage's published status. Leaves: the Prometheus text format on
//! `GET /metrics` of `[metrics] listen` ([`crate::runtime::metrics_task::MetricsTask`], one of the daemon's
//! tasks). A leaf: it imports no other module of the crate, so the sources may count through it.
//!
//! The crate is `prometheus-client`, the Prometheus organisation's own Rust client (OpenMetrics
//! text, typed counters and gauges, label families, no global default registry).
//!
//! One registry per process, in a `OnceLock` ([`metrics`]): the counting sites sit deep in the
//! sources (the journal as an `EventSink` implemented on `Journal` itself, the LDAP bind, the PHS
//! cycle) and passing a handle down to each would change every signature on the way. The registry
//! is only written through its typed families, never replaced; what is derived from state (outbox
//! depth, journal lag, push totals) is read at scrape time instead of being counted twice.
//!
//! `[metrics] listen` (default `127.0.0.1:9464`; `""` switches the endpoint off) is validated by
//! the config loader ([`MetricsConfig::problem`]). Names and units: `docs/metrics.md`.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// The default listen address: localhost only, on the OpenTelemetry Prometheus exporter's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to serve `/metrics` on; `""` switches the endpoint off.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: DEFAULT_LISTEN.to_owned(),
        }
    }
}

impl MetricsConfig {
    /// The address to bind, or `None` when switched off (or unparsable, which validation refuses).
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        if self.listen.trim().is_empty() {
            None
        } else {
            self.listen.trim().parse().ok()
        }
    }

    /// Why `listen` is unusable, for the config loader's problem list (`metrics.listen`).
    pub fn problem(&self) -> Option<String> {
        let l = self.listen.trim();
        if l.is_empty() || l.parse::<std::net::SocketAddr>().is_ok() {
            None
        } else {
            Some(format!(
                "`{l}` is not an IP address and port such as {DEFAULT_LISTEN} (\"\" switches metrics off)"
            ))
        }
    }
}

/// Labels of a family: name → value pairs.
pub type Labels = Vec<(&'static str, String)>;

/// The families the counting sites write, and the scrape-time ones [`server`] sets.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `cloudsync_journal_events_appended_total{domain, kind}`.
    pub events_appended: Family<Labels, Counter>,
    /// `cloudsync_ldap_bind_failures_total{domain, reason}`.
    pub bind_failures: Family<Labels, Counter>,
    /// `cloudsync_domain_last_sync_timestamp_seconds{domain}`.
    pub last_sync: Family<Labels, Gauge>,
    /// `cloudsync_phs_cycles_total{domain}`.
    pub phs_cycles: Family<Labels, Counter>,
    /// `cloudsync_phs_hashes_appended_total{domain}`.
    pub phs_hashes: Family<Labels, Counter>,
    /// `cloudsync_journal_last_seq` (scrape time).
    pub journal_last_seq: Gauge,
    /// `cloudsync_journal_consumer_lag_events{consumer}` (scrape time).
    pub journal_lag: Family<Labels, Gauge>,
    /// `cloudsync_outbox_depth_operations` (scrape time).
    pub outbox_depth: Gauge,
    /// `cloudsync_push_batches_total{result}` (scrape time, from the push stage's status).
    pub push_batches: Family<Labels, Counter>,
    /// `cloudsync_push_operations_total{result}` (scrape time).
    pub push_operations: Family<Labels, Counter>,
    /// `cloudsync_push_throttled_total` (scrape time): 429s and per-operation Throttled answers.
    pub push_throttled: Counter,
    /// `cloudsync_push_retries_total` (scrape time): operations re-sent and batch calls retried.
    pub push_retries: Counter,
    /// `cloudsync_lease_epoch{configuration, state="held"|"standby"}`: the lease epoch this agent holds
    /// a configuration under (held), or the holder's (standby); the other state's series is removed.
    pub lease_epoch: Family<Labels, Gauge>,
}

/// The process's metrics and the registry that exposes them.
pub struct Global {
    /// The families.
    pub m: Metrics,
    registry: Registry,
}

impl Global {
    fn new() -> Global {
        let m = Metrics::default();
        let mut r = Registry::with_prefix("cloudsync");
        r.register(
            "journal_events_appended",
            "Events appended to the journal, by domain and event kind",
            m.events_appended.clone(),
        );
        r.register(
            "journal_last_seq",
            "The journal's last sequence number",
            m.journal_last_seq.clone(),
        );
        r.register(
            "journal_consumer_lag_events",
            "Journal events after a consumer's cursor (last seq minus cursor)",
            m.journal_lag.clone(),
        );
        r.register(
            "outbox_depth_operations",
            "Operations in the outbox not yet acknowledged by the tenant",
            m.outbox_depth.clone(),
        );
        r.register(
            "push_batches",
            "Batch calls to the tenant by result (answered, failed)",
            m.push_batches.clone(),
        );
        r.register(
            "push_operations",
            "Operations answered by the tenant by result (ok, retried, refused)",
            m.push_operations.clone(),
        );
        r.register(
            "push_throttled",
            "Throttled answers from the tenant (HTTP 429 or per-operation Throttled)",
            m.push_throttled.clone(),
        );
        r.register(
            "push_retries",
            "Operations re-sent plus batch calls retried after a failure",
            m.push_retries.clone(),
        );
        r.register(
            "phs_cycles",
            "Password hash sync cycles that appended their results, by domain",
            m.phs_cycles.clone(),
        );
        r.register(
            "phs_hashes_appended",
            "Password hashes appended to the journal, by domain",
            m.phs_hashes.clone(),
        );
        r.register(
            "ldap_bind_failures",
            "LDAP binds refused by a domain controller (invalid credentials), by domain and AD sub-code",
            m.bind_failures.clone(),
        );
        r.register(
            "lease_epoch",
            "Per configuration: the lease epoch this agent holds it under (state=held) or the holder's (state=standby)",
            m.lease_epoch.clone(),
        );
        r.register(
            "domain_last_sync_timestamp_seconds",
            "Unix time of the last successful feed pass, by domain",
            m.last_sync.clone(),
        );
        Global { m, registry: r }
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The process's metrics (created on first use).
pub fn metrics() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(Global::new)
}

/// The lease of `configuration` as this agent sees it: held under `epoch`, or standing by while
/// another agent holds it under `epoch` (0: never leased).
pub fn lease(configuration: &str, held: bool, epoch: u64) {
    let family = &metrics().m.lease_epoch;
    let (now, other) = if held {
        ("held", "standby")
    } else {
        ("standby", "held")
    };
    family.remove(&vec![
        ("configuration", configuration.to_owned()),
        ("state", other.to_owned()),
    ]);
    family
        .get_or_create(&vec![
            ("configuration", configuration.to_owned()),
            ("state", now.to_owned()),
        ])
        .set(i64::try_from(epoch).unwrap_or(i64::MAX));
}

/// One label pair.
pub fn label(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_owned())]
}

/// Counts events appended to the journal (the journal sink, after the append succeeded): `(domain,
/// kind, count)`.
pub fn events_appended(counted: &[(String, &'static str, u64)]) {
    for (domain, kind, n) in counted {
        metrics()
            .m
            .events_appended
            .get_or_create(&vec![
                ("domain", domain.clone()),
                ("kind", (*kind).to_owned()),
            ])
            .inc_by(*n);
    }
}

/// A domain's feed pass succeeded now.
pub fn synced(domain: &str) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    metrics()
        .m
        .last_sync
        .get_or_create(&label("domain", domain))
        .set(now);
}

/// A bind refused with invalid credentials (AD's sub-code, e.g. `52e`, or `unknown`).
pub fn bind_failed(domain: &str, reason: &str) {
    metrics()
        .m
        .bind_failures
        .get_or_create(&vec![
            ("domain", domain.to_owned()),
            ("reason", reason.to_owned()),
        ])
        .inc();
}

/// A password hash sync cycle appended `hashes` hashes for `domain`.
pub fn phs_cycle(domain: &str, hashes: u64) {
    let m = &metrics().m;
    m.phs_cycles.get_or_create(&label("domain", domain)).inc();
    m.phs_hashes
        .get_or_create(&label("domain", domain))
        .inc_by(hashes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_defaults_to_localhost_is_off_when_empty_and_refuses_a_non_address() {
        assert_eq!(
            MetricsConfig::default().address(),
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        let off = MetricsConfig {
            listen: String::new(),
        };
        assert_eq!((off.address(), off.problem()), (None, None));
        let bad = MetricsConfig {
            listen: "localhost:9464".into(),
        };
        assert!(bad.problem().is_some_and(|p| p.contains("localhost:9464")));
    }

    #[test]
    fn the_config_loader_names_metrics_listen() {
        let toml = "[domains.corp]\ndns_name = \"corp.example.test\"\nurl = \"ldaps://dc:636\"\nbind_dn = \"svc@corp.example.test\"\npassword = \"x\"\ninsecure_skip_verify = true\n[metrics]\nlisten = \"9464\"\n";
        let err = crate::config::Config::from_toml_str(toml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("metrics.listen"), "{err}");
        let ok = toml.replace("listen = \"9464\"", "listen = \"\"");
        let config = crate::config::Config::from_toml_str(&ok).map_err(|e| e.to_string());
        assert_eq!(config.map(|c| c.metrics.address()), Ok(None));
    }
}
