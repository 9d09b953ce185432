//! Password writeback's LDAP side against the lab Samba DC: resets per second of
//! `cloudsync_agent::writeback::reset` (as the service account over LDAPS: find by anchor, read the
//! state, one modify) next to the same `unicodePwd` modify made by `ldapmodify` (one process, one
//! LDAPS connection, the DNs known, so one round trip per reset) in the same run. Alternating runs,
//! medians; reports both rates, `ours / ldapmodify`, and our per-reset latency (median, p99).
//!
//! Measured (2-core lab machine, Samba 4.22, 200 users x 3 runs): ours 19.3 resets/s (median 49.5 ms,
//! p99 78.1 ms), ldapmodify 29.6 resets/s, ratio 0.65. The gap is the lookup: the anchor filter's
//! `mS-DS-ConsistencyGuid` term is not indexed on Samba, so the OR scans the domain (about 18 ms
//! more per search than `objectGUID` alone, measured with ldapsearch); the state read merged into
//! that search changed nothing measurable (0.67 before, 0.65 after).
//!
//! Run: `cargo bench --bench writeback_ldap` (needs the lab prerequisites, see `scripts/lab.sh`).
//! `WRITEBACK_BENCH_RESETS=N` changes the resets per run (default 200, at most the 1,000 seeded
//! users). The passwords go to `ldapmodify` on stdin and the bind password from a 0600 file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloudsync_agent::secret::Secret;
use cloudsync_agent::source::ldap::DomainConfig;
use cloudsync_agent::source::ldap::conn;
use cloudsync_agent::writeback::{Domain, ResetRequest, UserRef, WritebackCode, answer, reset};
use common::lab::{LabDc, TEMPLATE_USERS, unicode_pwd_base64};

const RUNS: usize = 3;

fn sam(i: usize) -> String {
    format!("user{i:05}")
}

fn password(run: usize, tool: &str, i: usize) -> String {
    format!("Bench!{tool}{run}x{i:05}")
}

/// `n` resets through the writeback code, one connection; the rate and every reset's latency.
fn ours(
    dc: &LabDc,
    rt: &tokio::runtime::Runtime,
    anchors: &HashMap<String, String>,
    run: usize,
    n: usize,
) -> (f64, Vec<Duration>) {
    let cfg: DomainConfig = toml::from_str(&format!(
        "dns_name = {:?}\nurl = {:?}\nbind_dn = {:?}\npassword = {:?}\nca_file = {:?}\n",
        dc.dns_domain,
        dc.ldaps_url,
        dc.svc_upn,
        dc.svc_password,
        dc.ca_file.display().to_string()
    ))
    .unwrap();
    let domain = Domain::of(&cfg);
    rt.block_on(async {
        let mut c = conn::connect(&cfg).await.unwrap();
        let mut latencies = Vec::with_capacity(n);
        let t = Instant::now();
        for i in 1..=n {
            let request = ResetRequest {
                user: UserRef::by_anchor(anchors[&sam(i)].clone(), format!("{}@x", sam(i))),
                password: Secret::new(password(run, "ours", i)),
                force_change: false,
                unlock: false,
                apply_history: false,
            };
            let t1 = Instant::now();
            let r = reset(&mut c, &domain, &request).await;
            latencies.push(t1.elapsed());
            let a = answer(&r);
            assert_eq!(a.code, WritebackCode::Success, "{}", a.message);
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        c.close().await;
        (rate, latencies)
    })
}

/// The same `n` `unicodePwd` replaces by one `ldapmodify` as the service account.
fn ldapmodify(dc: &LabDc, run: usize, n: usize) -> f64 {
    let mut ldif = String::new();
    for i in 1..=n {
        writeln!(
            ldif,
            "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
            dc.user_dn(i),
            unicode_pwd_base64(&password(run, "tool", i))
        )
        .unwrap();
    }
    let mut pw = tempfile::NamedTempFile::new().unwrap(); // 0600
    pw.write_all(dc.svc_password.as_bytes()).unwrap();
    let t = Instant::now();
    let mut child = Command::new("ldapmodify")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .env_remove("LDAPCONF")
        .env_remove("LDAPRC")
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
        "ldapmodify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    n as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("writeback_ldap: run with `cargo bench --bench writeback_ldap`.");
        return;
    }
    let n: usize = std::env::var("WRITEBACK_BENCH_RESETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .clamp(1, TEMPLATE_USERS);
    let dc = LabDc::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let anchors: HashMap<String, String> = rt
        .block_on(dc.sam_by_guid())
        .into_iter()
        .map(|(guid, sam)| (sam, STANDARD.encode(guid)))
        .collect();
    let (mut ours_rates, mut tool_rates, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (rate, lat) = ours(&dc, &rt, &anchors, run, n);
        ours_rates.push(rate);
        latencies.extend(lat);
        tool_rates.push(ldapmodify(&dc, run, n));
        println!(
            "run {run}: ours {:.1} resets/s, ldapmodify {:.1} resets/s",
            ours_rates[run], tool_rates[run]
        );
    }
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let (ours, tool) = (median(ours_rates), median(tool_rates));
    println!(
        "writeback reset, {n} users x {RUNS} runs: ours {ours:.1} resets/s (median {:.1} ms, p99 {:.1} ms per reset), \
         ldapmodify {tool:.1} resets/s, ours / ldapmodify = {:.2}",
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        ours / tool
    );
}
