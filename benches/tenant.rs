//! Applied operations per second of the local tenant, in process and over HTTP and HTTPS, side by side.
//!
//! All three variants apply the same batches of 500 user upserts (fresh anchors, so every operation
//! creates an object) and flush the store after each batch, as the server does before answering.
//! "in_process" calls the apply function directly; "http" / "https" go through the real server
//! (`tenant::start` on 127.0.0.1:0): JSON, authentication, throttle checks, idempotency lookup.
//! Run: `cargo bench --bench tenant`; criterion prints elements/s for each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cloudsync_api::ops::{ObjectKind, OnPremisesIdentity, Operation, OperationBatch, Upsert};
use cloudsync_tenant::apply::apply_batch;
use cloudsync_tenant::store::Store;
use cloudsync_tenant::{ServeConfig, TenantOptions, ThrottleSettings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use uuid::Uuid;

const OPS: usize = 500;
static NEXT: AtomicU64 = AtomicU64::new(0);

fn make_batch() -> OperationBatch {
    let operations = (0..OPS)
        .map(|_| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Operation::Upsert(Upsert {
                kind: ObjectKind::User,
                source_anchor: format!("anchor-{n}"),
                version: 1,
                on_premises: OnPremisesIdentity {
                    sam_account_name: Some(format!("user{n}")),
                    distinguished_name: Some(format!(
                        "CN=User {n},OU=Staff,DC=corp,DC=example,DC=com"
                    )),
                    security_identifier: Some(format!("S-1-5-21-1-2-3-{n}")),
                    domain_name: Some("corp.example.com".into()),
                },
                attributes: [
                    ("displayName".into(), json!(format!("User {n}"))),
                    (
                        "userPrincipalName".into(),
                        json!(format!("user{n}@contoso.onmicrosoft.com")),
                    ),
                    ("accountEnabled".into(), json!(true)),
                    ("givenName".into(), json!("User")),
                    ("surname".into(), json!(n.to_string())),
                ]
                .into_iter()
                .collect(),
            })
        })
        .collect();
    OperationBatch {
        batch_id: Uuid::new_v4(),
        operations,
        reasons: Default::default(),
        epoch: None,
    }
}

struct Remote {
    client: reqwest::Client,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
    _running: cloudsync_tenant::RunningTenant,
}

async fn remote(http: bool) -> Remote {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    cloudsync_private_fs::write_atomic(&seed, "domain = \"contoso.onmicrosoft.com\"\n[[users]]\nuser_principal_name = \"ga@contoso.onmicrosoft.com\"\npassword = \"pw\"\nroles = [\"GlobalAdministrator\"]\n".as_bytes(), 0o600).unwrap();
    let running = cloudsync_tenant::start(ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        http,
        state_dir: dir.path().join("state"),
        seed: Some(seed),
        address_file: None,
        ca_out: None,
        options: TenantOptions::default(),
        throttle: ThrottleSettings::default(),
    })
    .await
    .unwrap();
    let client = match &running.ca_pem {
        Some(pem) => reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
            .build()
            .unwrap(),
        None => reqwest::Client::new(),
    };
    let url = running.url.clone();
    let token = |body: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let v: Value = client
                .post(format!("{url}/contoso.onmicrosoft.com/oauth2/v2.0/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        }
    };
    let admin = token(
        "grant_type=password&client_id=cloudsync-installer&username=ga%40contoso.onmicrosoft.com&password=pw&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
            .into(),
    )
    .await;
    let reg: Value = client
        .post(format!("{url}/api/v1/agents"))
        .bearer_auth(&admin)
        .json(&json!({"hostName": "bench", "version": "0", "environment": "AzureCloud", "domains": ["corp.example.com"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cfg: Value = client
        .post(format!("{url}/api/v1/configurations"))
        .bearer_auth(&admin)
        .json(&json!({"domain": "corp.example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = token(format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=api%3A%2F%2Fcloudsync%2F.default",
        reg["clientId"].as_str().unwrap(),
        reg["clientSecret"].as_str().unwrap()
    ))
    .await;
    Remote {
        url: format!(
            "{url}/api/v1/configurations/{}/batches",
            cfg["id"].as_str().unwrap()
        ),
        client,
        token: agent,
        _dir: dir,
        _running: running,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("tenant_applied_ops");
    group.throughput(Throughput::Elements(OPS as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));

    let store = Store::temporary().unwrap();
    let mut record = cloudsync_tenant::bench::config_record();
    group.bench_function("in_process", |b| {
        b.iter(|| {
            let batch = make_batch();
            let ctx = cloudsync_tenant::bench::batch_context();
            let r = apply_batch(&store, &mut record, &batch, &ctx).unwrap();
            rt.block_on(store.flush()).unwrap();
            assert_eq!(r.results.len(), OPS);
        })
    });

    for (name, http) in [("http", true), ("https", false)] {
        let remote = rt.block_on(remote(http));
        group.bench_function(name, |b| {
            b.iter(|| {
                let batch = make_batch();
                let status = rt.block_on(async {
                    remote
                        .client
                        .post(&remote.url)
                        .bearer_auth(&remote.token)
                        .json(&batch)
                        .send()
                        .await
                        .unwrap()
                        .status()
                });
                assert_eq!(status, 200);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
