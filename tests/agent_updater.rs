//! `cloudsync updater run` against the real tenant, the agent registered by the real binary: with
//! nothing published the tenant answers its own build version and the agent (the same build) is up
//! to date, exit 0; a Global Administrator publishes a newer version → "X is available", exit 2,
//! and the message says why it is not applied (a version without a binary); an older one published later does not
//! roll the channel back; a Hybrid Identity Administrator may not publish, a non-SemVer version is
//! refused naming the example; no tenant at the URL → exit 1 naming the tenant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;
#[path = "common/tenant_only.rs"]
mod tenant_only;

use std::path::Path;

use agent_run::{agent, register, text};
use serde_json::{Value, json};
use tenant_fixture::{GA, HIA, TenantFixture};
use tenant_only::{binary_version, tenant_only_config};

fn updater(config: &Path) -> (Option<i32>, String) {
    let o = agent(
        &["updater", "run", "--config", config.to_str().unwrap()],
        &[],
    );
    (o.status.code(), text(&o))
}

async fn publish(t: &TenantFixture, token: &str, version: &str) -> (u16, Value) {
    let r = t
        .client
        .put(t.at("/api/v1/releases/latest"))
        .bearer_auth(token)
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_updater_reports_up_to_date_then_a_published_newer_version() {
    let mut t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = tenant_only_config(&t, dir.path());
    register(&config);
    let mine = binary_version();

    // Nothing published: the tenant's own build, which is this build.
    let ga = t.user_token(GA).await;
    let latest = t.get_json(&ga, "/api/v1/releases/latest").await;
    assert_eq!(latest, json!({"version": mine, "source": "tenantBuild"}));
    let (code, out) = updater(&config);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("cloudsync {mine} is up to date")),
        "{out}"
    );

    // A newer version published: exit 2, named, with why it is not applied.
    let (status, body) = publish(&t, &ga, "99.1.0").await;
    assert_eq!(status, 200, "{body}");
    let (code, out) = updater(&config);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "cloudsync 99.1.0 is available (this agent runs {mine})"
        )),
        "{out}"
    );
    // Published as a version only (no binary), and no key pinned: reported, not applied.
    assert!(out.contains("published without a binary"), "{out}");

    // An older version published later does not roll the channel back.
    let (status, body) = publish(&t, &ga, "99.0.5").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "99.1.0", "{body}");
    assert_eq!(updater(&config).0, Some(2));

    // Only Global Administrators publish; versions are SemVer.
    let hia = t.user_token(HIA).await;
    assert_eq!(publish(&t, &hia, "100.0.0").await.0, 403);
    let (status, body) = publish(&t, &ga, "latest").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a semantic version (e.g. 1.4.2)"),
        "{body}"
    );

    // The published version survives a tenant restart (it is in the store).
    t.restart();
    let latest = t.get_json(&ga, "/api/v1/releases/latest").await;
    assert_eq!(latest, json!({"version": "99.1.0", "source": "published"}));

    // No tenant at the URL: exit 1, naming it.
    let o = agent(
        &[
            "updater",
            "run",
            "--config",
            config.to_str().unwrap(),
            "--set",
            "tenant.url=\"https://127.0.0.1:1\"",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cannot reach the tenant"), "{}", text(&o));
}
