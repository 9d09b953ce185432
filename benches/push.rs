//! End-to-end push throughput: operations per second from the outbox to the tenant, measured next
//! to the tenant's own in-process apply rate in the same run, and the achieved write rate under the
//! realistic throttle profile as a fraction of its ceiling.
//!
//! Run: `cargo bench --bench push` (prints a small table). Environment:
//! - `PUSH_BENCH_OPS` (default 20000): operations in the unthrottled pair; `PUSH_BENCH_REPEAT`
//!   (default 3): how many alternating apply/push runs (the median ratio is reported).
//! - `PUSH_BENCH_SCALE` (default 20): time scale of the realistic profile. The bucket keeps the
//!   real shape (7,000 operations) but refills SCALE times faster, so SCALE=20 checks the pacing in
//!   ~30 s instead of ~10 min; SCALE=1 is the real 7,000-per-5-minutes profile.
//! - `PUSH_BENCH_SECONDS` (default 30): intended length of the throttled run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_agent::control::tenant_client::{Credentials, TenantClient, TlsOptions};
use cloudsync_agent::push::{self, Outbox, PushConfig, PushStatus};
use cloudsync_api::ops::{Operation, OperationBatch};
use cloudsync_tenant::store::Store;
use cloudsync_tenant::throttle::BucketSettings;
use cloudsync_tenant::{ServeConfig, TenantOptions, ThrottleSettings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use zeroize::Zeroizing;

const DOMAIN: &str = "contoso.onmicrosoft.com";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The tenant's own apply rate: batches of 500 fresh user upserts applied and flushed in process,
/// exactly as the server does per request, minus HTTP, TLS, JSON and authentication.
fn in_process_apply_rate(n: u64) -> f64 {
    let store = Store::temporary().unwrap();
    let batches: Vec<OperationBatch> = (0..n)
        .step_by(500)
        .map(|start| OperationBatch {
            batch_id: Uuid::new_v4(),
            operations: (start..(start + 500).min(n))
                .map(|k| push::synthetic::user_upsert(k, 1, DOMAIN))
                .collect::<Vec<Operation>>(),
            reasons: Default::default(),
            epoch: None,
        })
        .collect();
    let mut record = cloudsync_tenant::bench::config_record();
    let (ops, elapsed) = cloudsync_tenant::bench::apply_all(&store, &mut record, batches).unwrap();
    ops as f64 / elapsed.as_secs_f64()
}

struct Tenant {
    running: cloudsync_tenant::RunningTenant,
    config: Uuid,
    creds: Credentials,
    _dir: tempfile::TempDir,
}

async fn tenant(throttle: ThrottleSettings) -> Tenant {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    cloudsync_private_fs::write_atomic(&seed, format!("domain = \"{DOMAIN}\"\n[[users]]\nuser_principal_name = \"ga@{DOMAIN}\"\npassword = \"pw\"\nroles = [\"GlobalAdministrator\"]\n").as_bytes(), 0o600).unwrap();
    let running = cloudsync_tenant::start(ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        http: false,
        state_dir: dir.path().join("state"),
        seed: Some(seed),
        address_file: None,
        ca_out: None,
        options: TenantOptions::default(),
        throttle,
    })
    .await
    .unwrap();
    let pem = running.ca_pem.clone().unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let url = running.url.clone();
    let admin: Value = http
        .post(format!("{url}/{DOMAIN}/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&client_id=cloudsync-installer&username=ga%40contoso.onmicrosoft.com&password=pw&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value| {
        let req = http
            .post(format!("{url}{path}"))
            .bearer_auth(&admin)
            .json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let reg = post("/api/v1/agents", json!({"hostName": "bench", "version": "0", "environment": "AzureCloud", "domains": ["corp.example.com"]})).await;
    let cfg = post(
        "/api/v1/configurations",
        json!({"domain": "corp.example.com", "deleteThreshold": 0}),
    )
    .await;
    let creds = Credentials {
        base_url: url,
        token_endpoint: reg["tokenEndpoint"].as_str().unwrap().to_owned(),
        client_id: reg["clientId"].as_str().unwrap().to_owned(),
        client_secret: Zeroizing::new(reg["clientSecret"].as_str().unwrap().to_owned()),
        scope: "api://cloudsync/.default".into(),
    };
    Tenant {
        config: cfg["id"].as_str().unwrap().parse().unwrap(),
        creds,
        running,
        _dir: dir,
    }
}

impl Tenant {
    /// Stops the server and closes its database BEFORE the state directory is removed. Dropping a
    /// `RunningTenant` leaves its server task (and the database) alive until the runtime is
    /// dropped, after `_dir` deleted the state; the database's drop then waited forever in
    /// sled's flush, on two runtime threads (the hang at exit).
    async fn close(self) {
        self.running.shutdown(Duration::from_secs(1)).await.unwrap();
        drop(self._dir);
    }
}

/// Fills an outbox with `n` synthetic upserts, then times `push::run` until it is drained.
async fn push_rate(t: &Tenant, n: u64, cfg: PushConfig) -> (f64, Duration, PushStatus) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    for start in (0..n).step_by(5000) {
        let ops = push::synthetic::users(t.config, start..(start + 5000).min(n), DOMAIN);
        outbox.enqueue(ops, None).await.unwrap();
    }
    let tls = TlsOptions {
        ca_pem: t.running.ca_pem.clone().map(String::into_bytes),
        insecure: false,
    };
    let client =
        Arc::new(TenantClient::new(t.creds.clone(), &tls, Duration::from_secs(30)).unwrap());
    let (tx, _rx) = tokio::sync::watch::channel(PushStatus::default());
    let t0 = Instant::now();
    let summary = push::run(outbox, client, cfg, CancellationToken::new(), tx)
        .await
        .unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(summary.checkpoint, n);
    (n as f64 / elapsed.as_secs_f64(), elapsed, summary.status)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a tiny smoke version.
    let smoke = !std::env::args().any(|a| a == "--bench");
    if smoke {
        println!(
            "(smoke run under `cargo test`: tiny sizes; use `cargo bench --bench push` for figures)"
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let n = if smoke { 1000 } else { env_u64("PUSH_BENCH_OPS", 20_000) };
        let repeat = if smoke { 1 } else { env_u64("PUSH_BENCH_REPEAT", 3) };
        println!("unthrottled, {n} ops of 500-op batches over HTTPS, {repeat} alternating runs:");
        let mut ratios = Vec::new();
        for run in 1..=repeat {
            let apply = in_process_apply_rate(n);
            let t = tenant(ThrottleSettings::default()).await;
            let cfg = PushConfig { stop_when_drained: true, ..PushConfig::default() };
            let (push, elapsed, status) = push_rate(&t, n, cfg).await;
            t.close().await;
            println!(
                "  run {run}: tenant in-process apply {apply:>7.0} ops/s | outbox -> tenant {push:>7.0} ops/s ({elapsed:.2?}, {} attempts) | ratio {:.3}",
                status.batch_attempts,
                push / apply
            );
            ratios.push(push / apply);
        }
        ratios.sort_by(f64::total_cmp);
        println!("  median ratio push / apply: {:.3}  (target >= 0.5)", ratios[ratios.len() / 2]);

        let scale = env_u64("PUSH_BENCH_SCALE", 20) as f64;
        let ceiling = 7000.0 / 300.0 * scale;
        let seconds = if smoke {
            3
        } else {
            env_u64("PUSH_BENCH_SECONDS", 30)
        };
        let n = (ceiling * seconds as f64).round() as u64;
        let throttle = ThrottleSettings {
            writes: Some(BucketSettings {
                capacity: 7000.0,
                refill_per_second: ceiling,
            }),
            ..ThrottleSettings::default()
        };
        let t = tenant(throttle).await;
        let cfg = PushConfig {
            stop_when_drained: true,
            write_rate_limit: Some(ceiling),
            ..PushConfig::default()
        };
        let (achieved, elapsed, status) = push_rate(&t, n, cfg).await;
        t.close().await;
        println!(
            "realistic profile x{scale} (7,000-op bucket, ceiling {ceiling:.2} ops/s), {n} ops:"
        );
        println!("  achieved write rate     : {achieved:>9.2} ops/s  ({elapsed:.2?})");
        println!(
            "  fraction of the ceiling : {:>9.4}  (target 0.95..=1.0)",
            achieved / ceiling
        );
        println!("  tenant 429 answers      : {:>9}", status.throttled);
    });
}
