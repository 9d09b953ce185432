//! One run of `benches/lab_latency.rs`: a lab DC seeded with N users, a `tenant serve` process, the
//! agent daemon (`cloudsync agent run`) syncing `OU=LatBench` with password hash sync on, then two
//! series of timed changes made one at a time. Shared with `tests/lab_latency.rs`, which runs it small.
//!
//! Steps: seed (timed) → register → start the daemon (clock starts) → poll Graph until it lists every
//! seeded user and sample users sign in with their AD passwords → open the bench's own notification
//! search and prove it live with a change to the OU → `changes` `title` modifies, then `changes`
//! password resets, each timed from the modify's return until visible, with a pause spread over
//! `0..spread_ms` before each so that changes fall at every phase of Samba's ~5 s notification poll.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cloudsync_agent::config::Config;
use cloudsync_agent::secret::Secret;
use cloudsync_agent::source::ldap::DomainConfig;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::agent_run;
use crate::common::lab::LabDc;
use crate::lat_probes::{AdminLdap, TenantView, notification_for, visible_at, watch_notifications};
use crate::lat_report::{Report, Sample, Seeding, Series};
use crate::tenant_fixture::{GA, TenantFixture};

/// The run's parameters (`--users`, `--changes`, `--spread-ms`, `--timeout-secs`, `--sync-timeout-secs`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Users seeded into `OU=LatBench` (at least 1); changes go to users 1, 2, … in turn.
    pub users: usize,
    /// Changes of each kind.
    pub changes: usize,
    /// The pause before each change is `(k × 0.618…) mod 1 × spread_ms` (0: none).
    pub spread_ms: u64,
    /// A change not visible after this long is a failure.
    pub timeout_secs: u64,
    /// Deadline for the initial sync of the seeded directory.
    pub sync_timeout_secs: u64,
    /// ldapmodify processes seeding in parallel.
    pub seed_connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: 2000,
            changes: 200,
            spread_ms: 5000,
            timeout_secs: 60,
            sync_timeout_secs: 1200,
            seed_connections: 2,
        }
    }
}

const OU: &str = "LatBench";

fn sam(i: usize) -> String {
    format!("lat{i:05}")
}

/// The seeded password of user `i`: complex, and without the account name (Samba refuses that).
fn seed_password(i: usize) -> String {
    format!("Seed!{i:05}xQ")
}

/// The password the `k`-th reset sets.
fn reset_password(k: usize) -> String {
    format!("Reset!{k:05}zR")
}

fn upn(dc: &LabDc, i: usize) -> String {
    format!("{}@{}", sam(i), dc.dns_domain)
}

fn user_dn(dc: &LabDc, i: usize) -> String {
    format!("CN={},OU={OU},{}", sam(i), dc.base_dn)
}

/// Adds `OU=LatBench` and `users` users with passwords over `connections` parallel ldapmodify
/// processes; returns the seconds the users took.
fn seed(dc: &LabDc, users: usize, connections: usize) -> f64 {
    dc.ldif_admin(&format!(
        "dn: OU={OU},{}\nchangetype: add\nobjectClass: organizationalUnit\n",
        dc.base_dn
    ));
    let connections = connections.clamp(1, users.max(1));
    let t = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..connections {
            scope.spawn(move || {
                let mut ldif = String::new();
                for i in (1..=users).filter(|i| i % connections == c) {
                    let pw = crate::common::lab::unicode_pwd_base64(&seed_password(i));
                    writeln!(
                        ldif,
                        "dn: {dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: {sam}\n\
                         userPrincipalName: {upn}\ngivenName: Lat\nsn: User{i:05}\n\
                         displayName: Lat User {i:05}\nmail: {upn}\ntitle: Seeded\n\
                         unicodePwd:: {pw}\nuserAccountControl: 512\n",
                        dn = user_dn(dc, i),
                        sam = sam(i),
                        upn = upn(dc, i),
                    )
                    .unwrap();
                }
                // Not `ldif_admin`: its panic message would print the LDIF, passwords included.
                if let Err(e) = dc.try_ldif_admin(&ldif) {
                    let lines: Vec<&str> = e.lines().collect();
                    let last = lines[lines.len().saturating_sub(5)..].join("\n");
                    panic!("seeding over connection {c} failed:\n{last}");
                }
            });
        }
    });
    t.elapsed().as_secs_f64()
}

/// The first JSON log line of the daemon whose message is `message`: its `fields`.
fn log_fields(log: &Path, message: &str) -> Option<Value> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"].clone())
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The pause before the `k`-th change: the golden-ratio sequence over `0..spread_ms`, so successive
/// changes fall at well-spread phases of Samba's notification poll.
fn spread(k: usize, spread_ms: u64) -> Duration {
    let phase = (k as f64 * 0.618_033_988_749_895).fract();
    Duration::from_millis((phase * spread_ms as f64) as u64)
}

/// Runs the whole measurement; panics on a broken set-up (lab, tenant, agent), reports changes that
/// do not become visible as failures.
pub fn run(opts: &Options) -> Report {
    assert!(opts.users >= 1, "--users must be at least 1");
    let binary = env!("CARGO_BIN_EXE_cloudsync").to_owned();
    let profile = if binary.contains("/release/") {
        "release"
    } else {
        "debug"
    };
    let started = now_utc();
    let load_start = loadavg();
    // This process opens nothing of the agent's, but keep the binary's umask for the state it writes.
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    // Polling the sign-in check every 20 ms with the old password fails many times in a row;
    // smart lockout would lock the account after 10.
    let tenant = TenantFixture::start_with(&["--lockout-threshold", "1000000"]);
    let seed_seconds = seed(&dc, opts.users, opts.seed_connections);
    eprintln!(
        "lab_latency: seeded {} users in {seed_seconds:.1} s.",
        opts.users
    );

    let dir = tempfile::tempdir().unwrap();
    let config = agent_run::write_config(&dc, &tenant, dir.path(), &[dc.ou_dn(OU)]);
    // The agent's default: a change-notification search wakes the feed (the test helper turns it off).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("notifications = false", "notifications = true");
    std::fs::write(&config, &text).unwrap();
    let domain: DomainConfig = Config::from_toml_str(&text).unwrap().domains["corp"].clone();
    agent_run::register(&config);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = dir.path().join("agent.log");
    let (seeding, series) = rt.block_on(async {
        let view = TenantView {
            tenant: &tenant,
            token: tenant.user_token(GA).await,
        };
        let before = view.user_count().await;
        let expected = before + opts.users;
        let t_agent = Instant::now();
        // JSON lines; the notify module's debug line timestamps the agent's own notifications.
        let _daemon = agent_run::Daemon::start(
            &config,
            &[
                ("CLOUDSYNC_LOG_JSON", "true"),
                ("CLOUDSYNC_LOG", "info,cloudsync_agent::source::ldap::notify=debug"),
            ],
            &log,
        );
        let sync_timeout = Duration::from_secs(opts.sync_timeout_secs);
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        let graph_complete = loop {
            poll.tick().await;
            if view.user_count().await >= expected {
                break t_agent.elapsed().as_secs_f64();
            }
            if t_agent.elapsed() > sync_timeout {
                eprintln!("lab_latency: the initial sync did not finish in time.");
                break 0.0;
            }
        };
        let samples = [1, opts.users.div_ceil(2), opts.users];
        let signin_complete = loop {
            poll.tick().await;
            let mut all = true;
            for i in samples {
                all &= view.signs_in(&upn(&dc, i), &seed_password(i)).await;
            }
            if all {
                break t_agent.elapsed().as_secs_f64();
            }
            if t_agent.elapsed() > sync_timeout {
                eprintln!("lab_latency: seeded users could not sign in in time.");
                break 0.0;
            }
        };
        let dirsync = log_fields(&log, "Pass appended events.").unwrap_or_default();
        let phs = log_fields(&log, "Password hash sync cycle done.").unwrap_or_default();
        let seeding = Seeding {
            users: opts.users,
            connections: opts.seed_connections.clamp(1, opts.users),
            seed_seconds,
            dirsync_entries: u(&dirsync, "entries"),
            dirsync_ms: u(&dirsync, "elapsed_ms"),
            phs_objects: u(&phs, "objects"),
            phs_hashes: u(&phs, "hashes"),
            phs_replication_ms: u(&phs, "replication_ms"),
            phs_hashing_ms: u(&phs, "hashing_ms"),
            graph_complete_seconds: graph_complete,
            signin_complete_seconds: signin_complete,
            tenant_users_before: before,
            tenant_users: view.user_count().await,
        };
        eprintln!(
            "lab_latency: initial sync: Graph complete after {graph_complete:.1} s, sign-in after {signin_complete:.1} s."
        );
        if graph_complete == 0.0 || signin_complete == 0.0 {
            return (seeding, Vec::new());
        }

        // The bench's own notification search, proven live by a change no agent pushes (an OU).
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch_notifications(domain.clone(), tx));
        let admin_cfg = domain.as_account(&dc.admin_upn, Secret::new(dc.admin_password.clone()));
        let mut admin = AdminLdap::connect(&admin_cfg).await;
        let ou = dc.ou_dn(OU);
        let live = Instant::now() + Duration::from_secs(60);
        let mut probe = 0;
        loop {
            probe += 1;
            let (sent, _) = admin
                .replace(&ou, "description", format!("probe {probe}").into_bytes())
                .await;
            if notification_for(&mut rx, &ou.to_ascii_lowercase(), sent, Duration::from_secs(10))
                .await
                .is_some()
            {
                break;
            }
            assert!(Instant::now() < live, "the notification search never delivered");
        }

        let timeout = Duration::from_secs(opts.timeout_secs);
        let mut title = Series {
            kind: "title",
            visible_means: "a Graph GET of the user (Global Administrator) returns the new jobTitle",
            samples: Vec::new(),
        };
        let mut password = Series {
            kind: "password",
            visible_means: "the tenant's sign-in check accepts the new password",
            samples: Vec::new(),
        };
        // Per change: the wall clock just after the modify returned, and the time since it was sent
        // and since it returned at that moment (to compare with the agent's log timestamps).
        let mut walls: Vec<(SystemTime, Duration, Duration)> = Vec::new();
        for k in 1..=opts.changes {
            tokio::time::sleep(spread(k, opts.spread_ms)).await;
            let i = (k - 1) % opts.users + 1;
            let (dn, who) = (user_dn(&dc, i), upn(&dc, i));
            let value = format!("Lat title {k:05}");
            let (sent, t0) = admin.replace(&dn, "title", value.clone().into_bytes()).await;
            let wall = (SystemTime::now(), sent.elapsed(), t0.elapsed());
            let (view, who, value) = (&view, &who, &value);
            let seen = visible_at(t0, timeout, || async move {
                view.job_title(who).await.as_deref() == Some(value.as_str())
            })
            .await;
            title.samples.push(sample(&mut rx, &dn, sent, t0, seen).await);
            walls.push(wall);
            progress(&title, k, opts.changes);
        }
        for k in 1..=opts.changes {
            tokio::time::sleep(spread(k, opts.spread_ms)).await;
            let i = (k - 1) % opts.users + 1;
            let (dn, who) = (user_dn(&dc, i), upn(&dc, i));
            let new = reset_password(k);
            let (sent, t0) = admin.set_password(&dn, &new).await;
            let wall = (SystemTime::now(), sent.elapsed(), t0.elapsed());
            let (view, who, new) = (&view, &who, &new);
            let seen = visible_at(t0, timeout, || view.signs_in(who, new)).await;
            password.samples.push(sample(&mut rx, &dn, sent, t0, seen).await);
            walls.push(wall);
            progress(&password, k, opts.changes);
        }
        watcher.abort();
        // The agent's own notifications, from its log: for each change the first one after the
        // modify was sent, in seconds from the modify's return.
        let notes = agent_notifications(&log);
        let samples = title.samples.iter_mut().chain(password.samples.iter_mut());
        for (s, (wall, since_sent, since_t0)) in samples.zip(walls) {
            let sent = wall.checked_sub(since_sent).unwrap_or(wall);
            let t0 = wall.checked_sub(since_t0).unwrap_or(wall);
            s.agent_notified = notes
                .iter()
                .find(|n| **n >= sent)
                .map(|n| wall_secs(t0, *n));
        }
        (seeding, vec![title, password])
    });
    if series.is_empty() {
        eprintln!(
            "lab_latency: the agent's log ({}):\n{}",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Report {
        binary,
        profile,
        started,
        load: (load_start, loadavg()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        spread_ms: opts.spread_ms,
        timeout_secs: opts.timeout_secs,
        seeding,
        series,
    }
}

/// One change's sample, both times from `t0` (the modify's return): visible (if it was), and Samba's
/// notification for its entry (any that arrived after the modify was sent; one that overtook the
/// modify's answer counts negative), waiting up to 10 s more for one that has not arrived yet.
async fn sample(
    rx: &mut mpsc::UnboundedReceiver<crate::lat_probes::Notified>,
    dn: &str,
    sent: Instant,
    t0: Instant,
    seen: Option<Instant>,
) -> Sample {
    let notified =
        notification_for(rx, &dn.to_ascii_lowercase(), sent, Duration::from_secs(10)).await;
    Sample {
        visible: seen.map(|s| (s - t0).as_secs_f64()),
        notified: notified.map(|n| secs_between(t0, n)),
        agent_notified: None,
    }
}

fn progress(series: &Series, k: usize, of: usize) {
    if k.is_multiple_of(20) || k == of {
        let l = series.latency();
        eprintln!(
            "lab_latency: {} {k}/{of}: p50 {:.0} ms, max {:.0} ms, {} failed.",
            series.kind,
            l.p50 * 1000.0,
            l.max * 1000.0,
            series.failures()
        );
    }
}

/// `to - from` in seconds, negative when `to` is earlier.
fn secs_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64()
    } else {
        -(from - to).as_secs_f64()
    }
}

/// When the daemon logged "Change notification received." (its JSON lines' `timestamp`), in order.
fn agent_notifications(log: &Path) -> Vec<SystemTime> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "Change notification received.")
        .filter_map(|v| {
            let ts = v["timestamp"].as_str()?.to_owned();
            let at =
                time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            Some(SystemTime::from(at))
        })
        .collect()
}

/// `to - from` in seconds on the wall clock, negative when `to` is earlier.
fn wall_secs(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
