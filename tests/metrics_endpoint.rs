//! The daemon's Prometheus endpoint (`[metrics] listen`, `GET /metrics`): `cloudsync agent run`
//! against a lab DC and the real tenant, scraped over HTTP and parsed with a Prometheus text-format
//! parser (`prometheus-parse`). Oracles: the journal itself (`cloudsync journal replay --json` once
//! the daemon stopped), the test's wall clock, and the process's listening sockets (`ss`) for the
//! switched-off endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_run::{register, text, write_config};
use common::lab::LabDc;
use prometheus_parse::{Scrape, Value};
use tenant_fixture::TenantFixture;

/// Stops the daemon on drop (SIGTERM, as a service manager does, then a kill after 10 s).
struct Daemon(Child);

impl Daemon {
    fn start(config: &Path, sets: &[&str], log: &Path) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
        cmd.args(["agent", "run", "--config", config.to_str().unwrap()]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let log = std::fs::File::create(log).unwrap();
        Daemon(
            cmd.env("CLOUDSYNC_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// The TCP ports this process listens on (`ss -ltnp`).
    fn listening_ports(&self) -> Vec<String> {
        let o = Command::new("ss").args(["-H", "-ltnp"]).output().unwrap();
        let pid = format!("pid={},", self.0.id());
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains(&pid))
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free right now (bound and released), for `metrics.listen`.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn scrape(url: &str) -> Option<Scrape> {
    let body = reqwest::get(url).await.ok()?.text().await.ok()?;
    Some(Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap())
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("not a number: {other:?}"),
    }
}

/// The samples of `name`, keyed by the values of `labels` (in order).
fn samples(s: &Scrape, name: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .map(|x| {
            let key = labels
                .iter()
                .map(|l| x.labels.get(l).unwrap_or_default().to_owned())
                .collect();
            (key, number(&x.value))
        })
        .collect()
}

fn one(s: &Scrape, name: &str) -> Option<f64> {
    samples(s, name, &[]).into_values().next()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_counts_what_the_journal_holds_and_what_was_pushed() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let ous = vec![format!("OU=Staff,{}", dc.base_dn)];
    let config = write_config(&dc, &t, dir.path(), &ous);
    register(&config);

    let port = free_port();
    let listen = format!("metrics.listen=127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let log = dir.path().join("agent.log");
    let started = unix_now();
    let mut daemon = Daemon::start(&config, &[&listen], &log);

    // Poll until the initial read was appended, projected and pushed: the outbox is empty and the
    // tenant acknowledged operations.
    let deadline = Instant::now() + Duration::from_secs(120);
    let last = loop {
        if let Some(s) = scrape(&url).await {
            let ok = samples(&s, "cloudsync_push_operations_total", &["result"])
                .get(&vec!["ok".to_owned()])
                .copied()
                .unwrap_or(0.0);
            let depth = one(&s, "cloudsync_outbox_depth_operations");
            let lag = samples(&s, "cloudsync_journal_consumer_lag_events", &["consumer"]);
            let appended: f64 = samples(
                &s,
                "cloudsync_journal_events_appended_total",
                &["domain", "kind"],
            )
            .values()
            .sum();
            let projected = lag.get(&vec!["projection".to_owned()]) == Some(&0.0);
            // PHS appends its hashes in its own cycle, beside the feed's initial read.
            let phs_done: f64 = samples(&s, "cloudsync_phs_cycles_total", &["domain"])
                .values()
                .sum();
            if ok > 0.0 && depth == Some(0.0) && appended > 0.0 && projected && phs_done >= 1.0 {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed a drained agent; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let scraped_at = unix_now();
    let appended = samples(
        &last,
        "cloudsync_journal_events_appended_total",
        &["domain", "kind"],
    );
    let sync = samples(
        &last,
        "cloudsync_domain_last_sync_timestamp_seconds",
        &["domain"],
    );
    let hashes = samples(&last, "cloudsync_phs_hashes_appended_total", &["domain"]);
    assert!(
        daemon
            .listening_ports()
            .contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        daemon.listening_ports()
    );
    daemon.stop();

    // The oracle: the journal's own records, read after the daemon let go of it. The lab domain is
    // quiet (no writes after the start), so nothing was appended between the scrape and the stop.
    let o = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["journal", "replay", "--json"])
        .arg(dir.path().join("journal"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut in_journal: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = vec![
            r["domain"].as_str().unwrap().to_owned(),
            r["kind"].as_str().unwrap().to_owned(),
        ];
        *in_journal.entry(key).or_default() += 1.0;
    }
    assert!(!in_journal.is_empty());
    assert_eq!(appended, in_journal, "events appended per domain and kind");
    let hash_events = in_journal
        .iter()
        .filter(|(k, _)| k[1] == "password-hash-changed")
        .map(|(_, n)| n)
        .sum::<f64>();
    assert_eq!(hashes.values().sum::<f64>(), hash_events, "PHS hashes");

    let domain = dc.dns_domain.to_ascii_lowercase();
    let at = sync
        .iter()
        .find(|(k, _)| k[0].eq_ignore_ascii_case(&domain))
        .map(|(_, v)| *v as i64)
        .unwrap_or_else(|| panic!("no last-sync gauge for {domain}: {sync:?}"));
    assert!(
        (started..=scraped_at).contains(&at),
        "last sync {at} outside [{started}, {scraped_at}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_is_off_with_an_empty_listen() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    // An unreachable DC: the daemon runs, its feed fails and retries; no tenant is needed.
    std::fs::write(
        &config,
        format!(
            "[agent]\njournal_dir = \"{}\"\n[domains.corp]\ndns_name = \"corp.example.test\"\nurl = \"ldaps://127.0.0.1:1\"\nbind_dn = \"svc@corp.example.test\"\npassword = \"x\"\ninsecure_skip_verify = true\nnotifications = false\n",
            dir.path().join("journal").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let daemon = Daemon::start(&config, &["metrics.listen=\"\""], &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Pass failed") {
            break;
        }
        assert!(Instant::now() < deadline, "daemon did not run:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(daemon.listening_ports(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bind_is_counted_with_its_ad_sub_code() {
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    // The sync account with a wrong password: the lab DC answers 49 with AD's sub-code 52e.
    std::fs::write(
        &config,
        format!(
            "[agent]\njournal_dir = \"{}\"\n[domains.corp]\ndns_name = \"{}\"\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{}\"\npassword = \"not-the-password\"\nnotifications = false\n",
            dir.path().join("journal").display(),
            dc.dns_domain,
            dc.ldaps_url,
            dc.ca_file.display(),
            dc.svc_upn,
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("agent.log");
    let _daemon = Daemon::start(
        &config,
        &[&format!("metrics.listen=127.0.0.1:{port}")],
        &log,
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = scrape(&url).await {
            let refused = samples(
                &s,
                "cloudsync_ldap_bind_failures_total",
                &["domain", "reason"],
            );
            let key = vec![dc.dns_domain.clone(), "BadCredentials".to_owned()];
            if refused.get(&key).is_some_and(|&n| n >= 1.0) {
                assert!(
                    samples(
                        &s,
                        "cloudsync_domain_last_sync_timestamp_seconds",
                        &["domain"]
                    )
                    .is_empty(),
                    "no pass succeeded"
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no bind failure counted; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
