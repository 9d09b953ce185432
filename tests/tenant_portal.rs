//! The admin portal at `/`, loaded in headless Chromium (Debian's `chromium` package).
//!
//! The test fails with a clear message when `chromium` is missing (it never skips silently). A
//! screenshot is kept at `$CLOUDSYNC_ARTIFACTS/portal.png` (default `target/artifacts/portal.png`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tenant_fixture::*;

fn chromium() -> PathBuf {
    for candidate in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(candidate).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        }
    }
    panic!(
        "headless Chromium is required for the portal test: install Debian's package with `apt-get install -y chromium`"
    );
}

fn run_chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CLOUDSYNC_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the element with `id="…"` (the DOM Chromium dumped).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in the page"))
        + id.len()
        + 6;
    &dom[start..start + dom[start..].find('<').unwrap()]
}

#[tokio::test]
async fn portal_shows_agents_configurations_counts_and_logs_in_chromium() {
    let browser = chromium();
    let t = TenantFixture::start_with(&["--http"]);
    let ga = t.user_token(GA).await;
    let agent = t
        .register_agent(&ga, "dc1.corp.example.com", &["corp.example.com"])
        .await;
    let r = t
        .client
        .post(t.at(&format!("/api/v1/agents/{}/heartbeat", agent.id)))
        .bearer_auth(&agent.token)
        .json(&json!({"version": "1.4.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let config = t
        .create_config(
            &ga,
            json!({"domain": "corp.example.com", "passwordHashSync": true}),
        )
        .await;
    let (_, res) = t
        .post_batch(&agent.token, &config, &batch(vec![
            user_upsert("anchor-ann", 1, "ann@contoso.onmicrosoft.com", "Ann <Lee>"),
            user_upsert("anchor-bo", 1, "bo@contoso.onmicrosoft.com", "Bo"),
            group_upsert("anchor-g", 1, "Staff"),
            json!({"op": "upsert", "kind": "contact", "sourceAnchor": "anchor-c", "version": 1, "attributes": {"displayName": "Vendor"}}),
            json!({"op": "addMember", "groupAnchor": "anchor-g", "memberAnchor": "anchor-zz"}),
        ]))
        .await;
    let bo_id = res["results"][1]["objectId"].as_str().unwrap().to_owned();

    let profile = tempfile::tempdir().unwrap();
    let dom = run_chromium(profile.path(), &["--dump-dom"], &t.at("/"));
    assert_eq!(text_of(&dom, "tenant-domain"), DOMAIN);
    assert_eq!(text_of(&dom, "tenant-id"), TENANT_ID);
    assert_eq!(text_of(&dom, "environment"), "AzureCloud");
    assert_eq!(text_of(&dom, "count-users"), "2");
    assert_eq!(text_of(&dom, "count-groups"), "1");
    assert_eq!(text_of(&dom, "count-contacts"), "1");
    assert!(dom.contains("<td>dc1.corp.example.com</td><td>1.4.0</td><td>AzureCloud</td><td class=\"status-active\">Active</td>"), "agent row missing:\n{dom}");
    assert!(
        dom.contains("<td>corp.example.com</td><td class=\"health\">Healthy</td><td>On</td>"),
        "configuration row missing:\n{dom}"
    );
    assert!(
        dom.contains("<span class=\"switch\">Off</span>"),
        "writeback switch missing"
    );
    assert!(
        dom.contains("anchor-ann")
            && dom.contains("anchor-zz")
            && dom.contains("(ReferenceNotFound)"),
        "log rows missing"
    );
    assert!(!dom.contains("Ann <Lee>"), "HTML must be escaped");

    // Search by object id shows only that object's entries.
    let found = run_chromium(
        profile.path(),
        &["--dump-dom"],
        &t.at(&format!("/?objectId={bo_id}")),
    );
    assert_eq!(found.matches("<tr class=\"log\">").count(), 1, "{found}");
    assert!(found.contains("anchor-bo") && !found.contains("anchor-ann"));

    let shot = artifacts_dir().join("portal.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
            "--hide-scrollbars",
        ],
        &t.at("/"),
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "screenshot suspiciously small: {} bytes",
        png.len()
    );

    // The writeback switch: admin credentials required.
    let flip = |user: &str, password: &str| {
        Req::post("/portal/writeback").form(form(&[
            ("configurationId", &config),
            ("enabled", "true"),
            ("username", user),
            ("password", password),
        ]))
    };
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    t.check([
        case("wrong password", flip(GA.0, "wrong"), 401),
        case("plain user", flip(USER.0, USER.1), 403),
    ])
    .await;
    let ok = t
        .build(&no_redirect, &flip(HIA.0, HIA.1))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let cfg: Value = t
        .get_json(&ga, &format!("/api/v1/configurations/{config}"))
        .await;
    assert_eq!(cfg["spec"]["passwordWriteback"], true);
    let dom = run_chromium(profile.path(), &["--dump-dom"], &t.at("/"));
    assert!(dom.contains("<span class=\"switch\">On</span>"));
    t.check([
        case(
            "configuration id not a GUID",
            Req::post("/portal/writeback").form("configurationId=nope"),
            400,
        ),
        case(
            "oversized form",
            Req::post("/portal/writeback")
                .form(format!("pad={}", "x".repeat(8 * 1024 * 1024 + 16))),
            413,
        ),
        case(
            "objectId not a GUID",
            Req::get("/?objectId=not-a-guid"),
            400,
        ),
    ])
    .await;
    drop(browser);
}

#[tokio::test]
async fn agents_without_recent_heartbeats_are_inactive() {
    let t = TenantFixture::start_with(&["--agent-inactive-after-secs", "0"]);
    let ga = t.user_token(GA).await;
    t.register_agent(&ga, "dc9", &[]).await;
    let agents: Value = t.get_json(&ga, "/api/v1/agents").await;
    assert_eq!(agents["value"][0]["status"], "Inactive");
    let page = t
        .client
        .get(t.at("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("class=\"status-inactive\">Inactive<"));
}
