//! Password hash sync throughput against a real DC: users/s from MS-DRSR replication through the
//! OrgId hash, with the time split between replication (network, NDR, NTLM unsealing, secret
//! decryption) and hashing (PBKDF2 on the pool, all cores).
//!
//! Needs a running lab DC; point it at one with the variables `scripts/lab.sh env DIR` prints:
//! ```text
//! LAB_IP=127.0.0.1 scripts/lab.sh provision /tmp/dc10k && scripts/lab.sh start /tmp/dc10k
//! scripts/lab.sh seed /tmp/dc10k 10000            # ~4 min: Samba derives keys per password
//! eval "$(scripts/lab.sh env /tmp/dc10k)" && cargo bench --bench phs_replication
//! ```
//! Without `AD_IP` it prints how to run and exits 0 (so `cargo bench` alone stays green).
//! Rounds: `PHS_BENCH_ROUNDS` (default 3); the best round is reported, and every round is printed.
//! Two variants per round: "sequential" (replicate everything, then hash: the time split) and
//! "pipelined" (each page is hashed on the pool while the next is fetched, as `PhsCycle` does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_agent::phs::HashPool;
use cloudsync_agent::source::drsr::ntlm::Credentials;
use cloudsync_agent::source::drsr::{DrsrClient, DrsrSettings};

fn main() {
    let Ok(ip) = std::env::var("AD_IP") else {
        eprintln!("phs_replication: set AD_IP etc. (eval \"$(scripts/lab.sh env DIR)\"); skipped.");
        return;
    };
    let svc_upn = std::env::var("AD_SVC_BIND_DN").unwrap();
    let settings = DrsrSettings {
        dc: ip,
        port: None,
        nc_dn: std::env::var("AD_BASE_DN").unwrap(),
        credentials: Credentials {
            user: svc_upn.split('@').next().unwrap().to_owned(),
            domain: std::env::var("AD_DOMAIN").unwrap(),
            nt_hash: cloudsync_agent::nt_hash::NtHash::from_password(
                &std::env::var("AD_SVC_PASSWORD").unwrap(),
            ),
        },
        timeout: Duration::from_secs(120),
        page_objects: 1000,
        partial_attribute_set: true,
    };
    let rounds: usize = std::env::var("PHS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = Arc::new(HashPool::with_all_cores().unwrap());
    let mut best: Option<(f64, Duration, Duration, usize, usize)> = None;
    let mut best_pipelined = 0.0f64;
    for round in 1..=rounds {
        let (replication, hashing, users, objects) = rt.block_on(async {
            let start = Instant::now();
            let run = DrsrClient::replicate(&settings, None).await.unwrap();
            let replication = start.elapsed();
            let users = run.hashes.len();
            let nts = run.hashes.into_iter().map(|h| h.nt_hash).collect();
            let start = Instant::now();
            let out = pool.hash_all(nts).await.unwrap();
            assert_eq!(out.len(), users);
            (replication, start.elapsed(), users, run.objects)
        });
        let total = replication + hashing;
        let rate = users as f64 / total.as_secs_f64();
        println!(
            "round {round}: {users} users ({objects} objects) in {:.2}s = {rate:.0} users/s; replication \
             {:.2}s ({:.0}%, {:.0} users/s), hashing {:.2}s ({:.0}%, {:.0} users/s on {} threads)",
            total.as_secs_f64(),
            replication.as_secs_f64(),
            100.0 * replication.as_secs_f64() / total.as_secs_f64(),
            users as f64 / replication.as_secs_f64(),
            hashing.as_secs_f64(),
            100.0 * hashing.as_secs_f64() / total.as_secs_f64(),
            users as f64 / hashing.as_secs_f64(),
            pool.threads(),
        );
        if best.is_none_or(|b| rate > b.0) {
            best = Some((rate, replication, hashing, users, objects));
        }
        let (elapsed, users) = rt.block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::new();
            DrsrClient::replicate_pages(&settings, None, |page| {
                let pool = Arc::clone(&pool);
                let nts = page.into_iter().map(|h| h.nt_hash).collect();
                tasks.push(tokio::spawn(async move { pool.hash_all(nts).await }));
            })
            .await
            .unwrap();
            let mut users = 0;
            for t in tasks {
                users += t.await.unwrap().unwrap().len();
            }
            (start.elapsed(), users)
        });
        let rate = users as f64 / elapsed.as_secs_f64();
        println!(
            "round {round} pipelined: {users} users in {:.2}s = {rate:.0} users/s",
            elapsed.as_secs_f64()
        );
        best_pipelined = best_pipelined.max(rate);
    }
    println!("best pipelined: {best_pipelined:.0} users/s end to end");
    if let Some((rate, replication, hashing, users, _)) = best {
        println!(
            "best: {users} users, {rate:.0} users/s end to end (replication {:.2}s, hashing {:.2}s)",
            replication.as_secs_f64(),
            hashing.as_secs_f64()
        );
    }
}
