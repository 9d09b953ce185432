//! Password writeback end to end: resets per second and the latency from request to answer of
//! `PATCH /v1.0/users/{id}` with a `passwordProfile` (the tenant seals the password, the running agent's
//! long poll picks it up, writes AD over LDAPS, answers; the tenant answers the caller), next to the same
//! `unicodePwd` modifies made directly by `ldapmodify` in the same run (one process, one LDAPS connection:
//! the floor). Sequential requests, as an admin or a user would make them.
//!
//! Run: `cargo bench --bench writeback_e2e` (lab prerequisites: `scripts/lab.sh install`).
//! `WRITEBACK_E2E_RESETS=N` changes the number of resets (default 100).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/agent_run.rs"]
mod agent_run;
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/common/tenant.rs"]
mod tenant_fixture;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{LabDc, TEMPLATE_USERS, unicode_pwd_base64};
use serde_json::json;
use tenant_fixture::{GA, TenantFixture};

/// The binary with a secret on stdin; it must succeed.
fn run(args: &[&str], stdin: &str) {
    let (code, out) = agent_run::agent_stdin(args, stdin, "warn");
    assert_eq!(code, Some(0), "{args:?}: {out}");
}

fn ldapmodify(dc: &LabDc, n: usize) -> f64 {
    let mut ldif = String::new();
    for i in 1..=n {
        writeln!(
            ldif,
            "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
            dc.user_dn(i),
            unicode_pwd_base64(&format!("Bench!tool{i:05}aA"))
        )
        .unwrap();
    }
    let mut pw = tempfile::NamedTempFile::new().unwrap();
    pw.write_all(dc.svc_password.as_bytes()).unwrap();
    let t = Instant::now();
    let mut child = Command::new("ldapmodify")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .args(["-x", "-H", &dc.ldaps_url, "-D", &dc.svc_upn, "-y"])
        .arg(pw.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(ldif.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("writeback_e2e: run with `cargo bench --bench writeback_e2e`.");
        return;
    }
    let n: usize = std::env::var("WRITEBACK_E2E_RESETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, TEMPLATE_USERS);
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("agent");
    let p = prefix.to_str().unwrap();
    let svc = tmp.path().join("svc.pw");
    std::fs::write(&svc, format!("{}\n", dc.svc_password)).unwrap();
    let (code, out) = agent_run::install(
        &dc,
        &t,
        &prefix,
        GA,
        &[
            "--service-account",
            &dc.svc_upn,
            "--service-account-password-file",
            svc.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let config = prefix.join("etc/cloudsync/agent.toml");
    run(
        &["agent", "sync-once", "--config", config.to_str().unwrap()],
        "",
    );
    run(
        &[
            "agent",
            "writeback",
            "enable",
            "--prefix",
            p,
            "--admin-upn",
            GA.0,
            "--admin-password-file",
            "-",
        ],
        GA.1,
    );
    let log = tmp.path().join("daemon.log");
    let _daemon = agent_run::Daemon::start(&config, &[], &log);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rate, mut latencies) = rt.block_on(async {
        let ga = t.user_token(GA).await;
        let domain = dc.dns_domain.clone();
        let patch = |i: usize, password: String| {
            let (t, ga, domain) = (&t, &ga, &domain);
            async move {
                t.client
                    .patch(t.at(&format!("/v1.0/users/user{i:05}@{domain}")))
                    .bearer_auth(ga)
                    .json(&json!({"passwordProfile": {"password": password}}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        // Until the agent has registered its key (503) the first request is retried.
        let ready = Instant::now() + Duration::from_secs(60);
        while patch(1, "Bench!warm00001aA".into()).await != 204 {
            assert!(
                Instant::now() < ready,
                "the agent never became ready for writeback"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 1..=n {
            let t0 = Instant::now();
            let status = patch(i, format!("Bench!e2e{i:05}aA")).await;
            assert_eq!(status, 204, "reset {i}");
            latencies.push(t0.elapsed());
        }
        (n as f64 / started.elapsed().as_secs_f64(), latencies)
    });
    let direct = ldapmodify(&dc, n);
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "writeback_e2e: {n} resets through the tenant and the agent: {rate:.1} resets/s, request→answer median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "writeback_e2e: ldapmodify, same modifies, one connection: {direct:.1} resets/s; end to end / direct = {:.2}",
        rate / direct
    );
}
