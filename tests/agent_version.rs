//! Verify, as the seed's section of that name, against the real tenant and the real binary:
//! - the agent's `--version`, the version its heartbeat reports (the tenant's record, registered
//!   with another version first so only the heartbeat can have changed it) and the portal's agent
//!   row agree;
//! - `agent status` adds what the tenant says (Active, host, version, environment, each
//!   configuration's health and last sync), in text and JSON; a tenant that cannot be reached is
//!   said plainly, the local part is still printed and exit bit 16 is set;
//! - `GET /api/v1/agents/{id}` answers the agent itself and admins; another agent gets 404.
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

use agent_run::{agent, text};
use serde_json::{Value, json};
use tenant_fixture::{HIA, TENANT_ID, TenantFixture};
use tenant_only::{binary_version, tenant_only_config};

const DOMAIN: &str = "corp.example.test";

/// Writes a credentials file (0600) for an agent registered over HTTP.
fn write_credentials(dir: &Path, a: &tenant_fixture::Agent) {
    use std::os::unix::fs::OpenOptionsExt;
    let body = json!({
        "agentId": a.id,
        "tenantId": TENANT_ID,
        "clientId": a.client_id,
        "clientSecret": a.client_secret,
        "tokenEndpoint": format!("/{TENANT_ID}/oauth2/v2.0/token"),
        "configurations": {},
    });
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("credentials.json"))
        .unwrap();
    std::io::Write::write_all(&mut f, body.to_string().as_bytes()).unwrap();
}

/// The Version cell of the portal's row for `host`.
fn portal_version(page: &str, host: &str) -> String {
    let start = format!("<tr class=\"agent\"><td>{host}</td><td>");
    let at = page
        .find(&start)
        .unwrap_or_else(|| panic!("no agent row for {host} in the portal:\n{page}"))
        + start.len();
    page[at..].split("</td>").next().unwrap().to_owned()
}

fn status(config: &Path, json: bool) -> (i32, String, String) {
    let mut args = vec!["agent", "status", "--config", config.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let o = agent(&args, &[]);
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        text(&o),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn version_heartbeat_and_portal_agree_and_status_shows_the_tenants_view() {
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = tenant_only_config(&t, dir.path());
    let admin = t.user_token(HIA).await;
    // Registered over HTTP as "1.2.3": only a heartbeat of the binary can change the record.
    let me = t.register_agent(&admin, "vhost", &[DOMAIN]).await;
    write_credentials(dir.path(), &me);
    let path = format!("/api/v1/agents/{}", me.id);
    assert_eq!(t.get_json(&admin, &path).await["version"], "1.2.3");
    let created = t
        .client
        .post(t.at("/api/v1/configurations"))
        .bearer_auth(&admin)
        .json(&json!({"domain": DOMAIN}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let configuration: Value = created.json().await.unwrap();

    // A heartbeat from the real binary (doctor sends one; its domain checks fail, no DC here).
    let o = agent(
        &["agent", "doctor", "--config", config.to_str().unwrap()],
        &[],
    );
    let out = text(&o);
    assert!(
        out.lines().any(|l| l.starts_with("ok   tenant: heartbeat")),
        "{out}"
    );

    let cli = binary_version();
    let record = t.get_json(&admin, &path).await;
    let portal = portal_version(&t.portal_page(HIA, "/").await, "vhost");
    assert_ne!(cli, "1.2.3");
    assert_eq!(record["version"], cli.as_str(), "{record}");
    assert_eq!(portal, cli);

    // agent status: the tenant's view next to the local one.
    let (code, stdout, all) = status(&config, true);
    assert_eq!(code & 16, 0, "{all}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let view = &report["tenant"];
    assert_eq!(view["reachable"], true, "{report:#}");
    assert_eq!(view["agent"]["status"], "Active", "{report:#}");
    assert_eq!(view["agent"]["hostName"], "vhost");
    assert_eq!(view["agent"]["version"], cli.as_str());
    assert_eq!(view["agent"]["environment"], "AzureCloud");
    assert_eq!(view["configurations"][0]["id"], configuration["id"]);
    assert_eq!(view["configurations"][0]["health"], "Healthy");
    assert_eq!(view["configurations"][0]["lastSync"], Value::Null);
    assert!(report["journal"].is_object(), "the local part: {report:#}");
    let (_, stdout, all) = status(&config, false);
    assert!(
        stdout.contains(&format!(
            "Tenant says: agent Active on host vhost, version {cli}, environment AzureCloud"
        )),
        "{all}"
    );
    assert!(
        stdout.contains(&format!(
            "configuration {} ({DOMAIN}): Healthy; last sync never",
            configuration["id"].as_str().unwrap()
        )),
        "{all}"
    );

    // No tenant at the URL: said plainly, the local part still printed, bit 16.
    let text_cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&t.url, "https://127.0.0.1:1");
    let away = dir.path().join("away.toml");
    std::fs::write(&away, text_cfg).unwrap();
    let (code, stdout, all) = status(&away, false);
    assert_ne!(code & 16, 0, "{all}");
    assert!(
        stdout.contains("Tenant says: nothing — it cannot be reached"),
        "{all}"
    );
    assert!(
        stdout.contains("Journal:") && stdout.contains("Registration: agent"),
        "{all}"
    );
    assert!(stdout.contains("The tenant cannot be reached"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_reads_its_own_record_and_no_other() {
    let t = TenantFixture::start();
    let admin = t.user_token(HIA).await;
    let a = t
        .register_agent(&admin, "host-a", &["a.example.test"])
        .await;
    let b = t
        .register_agent(&admin, "host-b", &["b.example.test"])
        .await;
    let get = |token: Option<String>, id: String| {
        let t = &t;
        async move {
            let mut r = t.client.get(t.at(&format!("/api/v1/agents/{id}")));
            if let Some(token) = token {
                r = r.bearer_auth(token);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, own) = get(Some(a.token.clone()), a.id.clone()).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["hostName"], "host-a");
    assert_eq!(own["status"], "Active");
    // Another agent's id: 404, the same answer as an id that does not exist.
    let (status, other) = get(Some(a.token.clone()), b.id.clone()).await;
    assert_eq!(status, 404, "{other}");
    assert!(!other.to_string().contains("host-b"), "{other}");
    let (status, _) = get(Some(a.token.clone()), uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404);
    // Admins read any; nobody without a token; a malformed id is a 400.
    let (status, any) = get(Some(admin.clone()), b.id.clone()).await;
    assert_eq!((status, any["hostName"].clone()), (200, json!("host-b")));
    assert_eq!(get(None, a.id.clone()).await.0, 401);
    assert_eq!(get(Some(admin), "not-a-guid".into()).await.0, 400);
}
