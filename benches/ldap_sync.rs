//! LDAP feed benchmarks against the lab Samba DC, each reporting a ratio measured in one run:
//!
//! 1. **Initial sync rate**: 10,000 users (+ the seeded groups, contacts, OUs) from the DC into the
//!    journal with `runtime::feeds::read_domains_once`, next to a plain paged LDAP read (ldap3, 1,000 per page, `*`) of
//!    the same objects. Reports objects/s of both and `ours / plain` (target ≥ 0.8). Alternating runs,
//!    medians.
//! 2. **Change latency**: an in-process `runtime::feeds::run_feeds` (poll interval 120 s, so only the notification
//!    wakes it); per LDAP modify, the time until the server's own notification arrives on a separate
//!    notification search, and until the event is durable in the journal. Reports medians of both and
//!    of the difference (target ≤ 1 s beyond the server's notification delay).
//!
//! Run: `cargo bench --bench ldap_sync` (needs the lab prerequisites, see `scripts/lab.sh`); the
//! 9,000 extra users are added without passwords in runs of 400 per `ldapmodify`.
//! `LDAP_BENCH_USERS=1000` skips seeding extra users (the template has 1,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/ldap_support/mod.rs"]
mod ldap_support;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_agent::config::Config;
use cloudsync_agent::event::Event;
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::source::ldap::dirsync::SYNC_FILTER;
use cloudsync_agent::source::ldap::{conn, control};
use common::lab::{self, LabDc};
use ldap3::Scope;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use tokio_util::sync::CancellationToken;

/// Users in the DC for the rate measurement; `LDAP_BENCH_USERS` overrides (the template has 1,000).
const USERS: usize = 10_000;
const RUNS: usize = 3;
const LATENCY_SAMPLES: usize = 10;

fn config(dc: &LabDc, journal_dir: &std::path::Path, extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "[agent]\njournal_dir = {:?}\n[domains.lab]\ndns_name = {:?}\nurl = {:?}\nca_file = {:?}\n\
         bind_dn = {:?}\npassword = {:?}\n{extra}\n",
        journal_dir.display().to_string(),
        dc.dns_domain,
        dc.ldaps_url,
        dc.ca_file.display().to_string(),
        dc.svc_upn,
        dc.svc_password
    ))
    .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn plain_paged_read(cfg: &cloudsync_agent::source::ldap::DomainConfig) -> usize {
    let mut c = conn::connect(cfg).await.unwrap();
    let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(1000)),
    ];
    let mut stream = c
        .op()
        .streaming_search_with(
            adapters,
            &cfg.base(),
            Scope::Subtree,
            SYNC_FILTER,
            vec!["*"],
        )
        .await
        .unwrap();
    let mut n = 0;
    while let Some(entry) = stream.next().await.unwrap() {
        std::hint::black_box(&entry);
        n += 1;
    }
    assert_eq!(stream.finish().await.rc, 0);
    n
}

fn initial_sync_rate(dc: &LabDc, rt: &tokio::runtime::Runtime) {
    let scratch = tempfile::tempdir().unwrap();
    let cfg = config(dc, scratch.path(), "");
    let domain = cfg.domains["lab"].clone();
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    let mut objects = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        objects = rt.block_on(plain_paged_read(&domain));
        plain.push(objects as f64 / t.elapsed().as_secs_f64());

        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        let t = Instant::now();
        let out = rt.block_on(cloudsync_agent::runtime::feeds::read_domains_once(
            &cfg, &journal, false,
        ));
        let secs = t.elapsed().as_secs_f64();
        let report = out[0].result.as_ref().unwrap();
        assert_eq!(report.entries as usize, objects);
        ours.push(report.entries as f64 / secs);
    }
    let (o, p) = (median(ours), median(plain));
    println!(
        "initial sync: {objects} objects; plain paged read {p:.0} objects/s; DirSync into journal {o:.0} objects/s; ratio {:.2} (target >= 0.8)",
        o / p
    );
}

fn change_latency(dc: &LabDc, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dc, dir.path(), "poll_interval_secs = 120\n");
    let domain = cfg.domains["lab"].clone();
    let journal = Arc::new(Journal::open(dir.path(), JournalOptions::default()).unwrap());
    let shutdown = CancellationToken::new();
    let agent = rt.spawn(cloudsync_agent::runtime::feeds::run_feeds(
        cfg.clone(),
        journal.clone(),
        shutdown.clone(),
        false,
        cloudsync_agent::control::restarts::ResyncRequests::new(),
    ));
    // Wait for the initial sync.
    let t = Instant::now();
    while !cloudsync_agent::journal::Journal::read(&journal, 0)
        .any(|r| matches!(r.map(|r| r.event), Ok(Event::ResyncCompleted { .. })))
    {
        assert!(t.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Our own notification search: the server's delay, measured independently of the agent.
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let watcher = rt.spawn(async move {
        let mut c = conn::connect(&domain).await.unwrap();
        let mut stream = c
            .ldap
            .with_controls(vec![control::notification()])
            .streaming_search(
                &domain.base(),
                Scope::Subtree,
                "(objectClass=*)",
                vec!["title"],
            )
            .await
            .unwrap();
        while let Ok(Some(_)) = stream.next().await {
            let _ = tx.send(Instant::now());
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let (mut server, mut total) = (Vec::new(), Vec::new());
    for i in 0..LATENCY_SAMPLES {
        // De-correlate from Samba's ~5 s notification poll.
        std::thread::sleep(Duration::from_millis(700 * (i as u64 % 7)));
        while rx.try_recv().is_ok() {}
        let before = journal.last_seq().unwrap_or(0);
        let t0 = Instant::now();
        dc.ldif_admin(&format!(
            "dn: {}\nchangetype: modify\nreplace: title\ntitle: lat-{i}\n",
            dc.user_dn(1 + i)
        ));
        let mut notified = None;
        let durable = loop {
            if notified.is_none() {
                notified = rx.try_recv().ok();
            }
            if journal.last_seq().unwrap_or(0) > before {
                break Instant::now();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no event within 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let notified = notified.or_else(|| rx.recv_timeout(Duration::from_secs(10)).ok());
        total.push((durable - t0).as_secs_f64());
        if let Some(n) = notified {
            server.push((n - t0).as_secs_f64());
        }
    }
    shutdown.cancel();
    rt.block_on(agent).unwrap().unwrap();
    watcher.abort();
    let mut line = String::new();
    write!(
        line,
        "change latency over {LATENCY_SAMPLES} modifies: median modify->durable {:.3} s",
        median(total.clone())
    )
    .unwrap();
    if !server.is_empty() {
        let s = median(server);
        write!(
            line,
            "; median server notification delay {s:.3} s; beyond it {:.3} s (target <= 1 s)",
            median(total) - s
        )
        .unwrap();
    }
    println!("{line}");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ldap_sync: run with `cargo bench --bench ldap_sync`.");
        return;
    }
    let dc = LabDc::start();
    let users = std::env::var("LDAP_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(USERS);
    let extra = users.saturating_sub(lab::TEMPLATE_USERS);
    let mut ldif = String::new();
    for i in 0..extra {
        writeln!(
            ldif,
            "dn: CN=bench{i:05},{}\nchangetype: add\nobjectClass: user\nsAMAccountName: bench{i:05}\ngivenName: Bench\nsn: User{i}\ndisplayName: Bench User {i}\nmail: bench{i:05}@example.test\n",
            dc.ou_dn("SyncUsers")
        )
        .unwrap();
    }
    let t = Instant::now();
    ldap_support::ldif_admin_bulk(&dc, &ldif);
    println!(
        "seeded {extra} extra users in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    initial_sync_rate(&dc, &rt);
    change_latency(&dc, &rt);
}
