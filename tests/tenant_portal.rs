//! The admin portal at `/`: signed in and used in headless Chromium (Debian's `chromium` package,
//! driven over the DevTools protocol), and its sign-in, session cookie, CSRF token, security
//! headers and lockout checked over HTTPS with reqwest.
//!
//! The browser test fails with a clear message when `chromium` is missing (it never skips
//! silently). A screenshot is kept at `$CLOUDSYNC_ARTIFACTS/portal.png` (default
//! `target/artifacts/portal.png`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cdp.rs"]
mod cdp;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tenant_fixture::*;

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CLOUDSYNC_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the element with `id="…"`.
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in the page"))
        + id.len()
        + 6;
    &dom[start..start + dom[start..].find('<').unwrap()]
}

/// The portal's sign-in form.
fn signin_form((upn, password): (&str, &str)) -> Req {
    Req::post("/portal/signin").form(form(&[("username", upn), ("password", password)]))
}

/// The `name=value` pair to send back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a portal page's forms.
fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

async fn seed_portal_data(t: &TenantFixture, ga: &str) -> (String, String) {
    let agent = t
        .register_agent(ga, "dc1.corp.example.com", &["corp.example.com"])
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
            ga,
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
    (config, bo_id)
}

#[tokio::test]
async fn portal_signs_in_and_shows_agents_configurations_counts_and_logs_in_chromium() {
    let t = TenantFixture::start_with(&["--http"]);
    let ga = t.user_token(GA).await;
    let (config, bo_id) = seed_portal_data(&t, &ga).await;

    let profile = tempfile::tempdir().unwrap();
    let mut b = cdp::Browser::launch(profile.path());
    // Without a session the browser lands on the sign-in page, and no log data is shown.
    b.open(&t.at("/"), "/portal/signin");
    let dom = b.dom();
    assert!(
        !dom.contains("anchor-ann") && !dom.contains("tenant-id"),
        "{dom}"
    );
    b.navigate_by(
        &format!(
            "document.querySelector('input[name=username]').value = {:?};\
             document.querySelector('input[name=password]').value = {:?};\
             document.querySelector('#signin form').submit()",
            GA.0, GA.1
        ),
        "/",
    );
    assert_eq!(
        b.eval("document.cookie"),
        json!(""),
        "the session cookie must be HttpOnly"
    );
    // The style sheet loads under the CSP (header background #0078d4).
    assert_eq!(
        b.eval("getComputedStyle(document.querySelector('header')).backgroundColor"),
        json!("rgb(0, 120, 212)")
    );
    let dom = b.dom();
    assert_eq!(text_of(&dom, "signed-in"), GA.0);
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
    b.open(&t.at(&format!("/?objectId={bo_id}")), "/");
    let found = b.dom();
    assert_eq!(found.matches("<tr class=\"log\">").count(), 1, "{found}");
    assert!(found.contains("anchor-bo") && !found.contains("anchor-ann"));

    b.open(&t.at("/"), "/");
    let shot = artifacts_dir().join("portal.png");
    let png = b.screenshot();
    std::fs::write(&shot, &png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "screenshot suspiciously small: {} bytes",
        png.len()
    );

    // The writeback switch: the browser posts the form with its session and CSRF token.
    b.navigate_by("document.querySelector('form.writeback').submit()", "/");
    assert!(b.dom().contains("<span class=\"switch\">On</span>"));
    let cfg: Value = t
        .get_json(&ga, &format!("/api/v1/configurations/{config}"))
        .await;
    assert_eq!(cfg["spec"]["passwordWriteback"], true);

    // Sign-out ends the session: the portal sends the browser back to the sign-in page.
    b.navigate_by(
        "document.querySelector('form.signout').submit()",
        "/portal/signin",
    );
    b.open(&t.at("/"), "/portal/signin");
}

#[tokio::test]
async fn portal_needs_an_admin_session_csrf_token_and_security_headers() {
    let t = TenantFixture::start();
    let ga = t.user_token(GA).await;
    let (config, bo_id) = seed_portal_data(&t, &ga).await;
    let raw = t.no_redirect_client();

    // Without a session: a redirect to the sign-in page and no data, also for a search.
    for path in [
        "/".to_owned(),
        format!("/?objectId={bo_id}"),
        "/?objectId=x".into(),
    ] {
        let r = t
            .build(&raw, &Req::get(path.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/portal/signin");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("anchor") && !body.contains(&bo_id),
            "{path}: {body}"
        );
    }

    // Sign-in: wrong password 401, plain user 403, unknown user 401; the admin gets the cookie.
    for (name, who, status) in [
        ("wrong password", (GA.0, "wrong"), 401),
        ("plain user", USER, 403),
        ("unknown user", ("nobody@contoso.onmicrosoft.com", "x"), 401),
    ] {
        let r = t.build(&raw, &signin_form(who)).send().await.unwrap();
        assert_eq!(r.status(), status, "{name}");
        assert!(r.headers().get("set-cookie").is_none(), "{name}");
    }
    let set_cookie = t.portal_set_cookie(HIA).await;
    let attrs: Vec<&str> = set_cookie.split("; ").collect();
    assert!(
        attrs[0].starts_with("__Host-cloudsync_portal="),
        "{set_cookie}"
    );
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr} missing from {set_cookie}");
    }
    assert!(!set_cookie.contains("Domain="), "{set_cookie}");
    let cookie = cookie_pair(&set_cookie);
    let with_session = |req: Req| req.header("cookie", &cookie);

    // Security headers on every portal response: page, sign-in page, style sheet, redirects, errors.
    let page = t.send(&with_session(Req::get("/"))).await;
    assert_eq!(page.status(), 200);
    for req in [
        Req::get("/"),
        Req::get("/portal/signin"),
        Req::get("/portal/portal.css"),
        with_session(Req::get("/")),
        Req::post("/portal/writeback").form("enabled=true"),
    ] {
        let r = t.build(&raw, &req).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
    let html = page.text().await.unwrap();
    assert!(html.contains("anchor-ann") && !html.contains("<script") && !html.contains("<style"));
    let csrf = csrf_of(&html);
    assert_eq!(csrf.len(), 43, "32 random bytes, base64url");

    // CSRF: the writeback form needs the session's token; a foreign Origin is refused.
    let flip = |token: Option<&str>| {
        let mut pairs = vec![("configurationId", config.as_str()), ("enabled", "true")];
        if let Some(token) = token {
            pairs.push(("csrf", token));
        }
        Req::post("/portal/writeback").form(form(&pairs))
    };
    t.check([
        case("no session", flip(Some(&csrf)), 401),
        case(
            "forged cookie",
            flip(Some(&csrf)).header("cookie", "__Host-cloudsync_portal=forged"),
            401,
        ),
        case("no CSRF token", with_session(flip(None)), 403).message_has("CSRF"),
        case("wrong CSRF token", with_session(flip(Some("AAAA"))), 403).message_has("CSRF"),
        case(
            "cross-origin post",
            with_session(flip(Some(&csrf))).header("origin", "https://evil.example"),
            403,
        ),
        case(
            "cross-site post (Sec-Fetch-Site)",
            with_session(flip(Some(&csrf))).header("sec-fetch-site", "cross-site"),
            403,
        ),
        case(
            "opaque origin",
            with_session(flip(Some(&csrf))).header("origin", "null"),
            403,
        ),
        case(
            "configuration id not a GUID",
            with_session(
                Req::post("/portal/writeback")
                    .form(form(&[("configurationId", "nope"), ("csrf", &csrf)])),
            ),
            400,
        ),
        case(
            "oversized form",
            with_session(
                Req::post("/portal/writeback")
                    .form(format!("pad={}", "x".repeat(8 * 1024 * 1024 + 16))),
            ),
            413,
        ),
        case(
            "objectId not a GUID",
            with_session(Req::get("/?objectId=not-a-guid")),
            400,
        ),
        case(
            "sign-out without CSRF",
            with_session(Req::post("/portal/signout").form("")),
            403,
        ),
    ])
    .await;
    let cfg: Value = t
        .get_json(&ga, &format!("/api/v1/configurations/{config}"))
        .await;
    assert_eq!(
        cfg["spec"]["passwordWriteback"], false,
        "no refused form may change it"
    );
    let origin = t.url.clone();
    let ok = t
        .build(
            &raw,
            &with_session(flip(Some(&csrf))).header("origin", &origin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let cfg: Value = t
        .get_json(&ga, &format!("/api/v1/configurations/{config}"))
        .await;
    assert_eq!(cfg["spec"]["passwordWriteback"], true);

    // Sign-out clears the cookie and ends the session on the server.
    let out = t
        .build(
            &raw,
            &with_session(Req::post("/portal/signout").form(form(&[("csrf", &csrf)]))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = t
        .build(&raw, &with_session(Req::get("/")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "the old cookie must not work after sign-out"
    );

    // Signing in again replaces the session the browser carried (no session fixation).
    let first = cookie_pair(&t.portal_set_cookie(GA).await);
    let again = t
        .build(&raw, &signin_form(GA).header("cookie", &first))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    let second = cookie_pair(again.headers()["set-cookie"].to_str().unwrap());
    assert_ne!(first, second);
    let status = |c: &str| {
        let req = Req::get("/").header("cookie", c);
        let (t, raw) = (&t, &raw);
        async move { t.build(raw, &req).send().await.unwrap().status() }
    };
    assert_eq!(status(&first).await, 303, "the carried session must end");
    assert_eq!(status(&second).await, 200);

    // The sign-in form is under smart lockout: 10 wrong, then even the right password → AADSTS50053.
    for _ in 0..10 {
        let r = t
            .build(&raw, &signin_form((HIA.0, "Portal-Guess-55")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = t.build(&raw, &signin_form(HIA)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("AADSTS50053: Your account is locked because the user tried to sign in too many times with an incorrect user ID or password."), "{body}");
    let log = t.log();
    assert!(
        log.contains("Sign-in failed") && log.contains("portal"),
        "{log}"
    );
    assert!(
        !log.contains("Portal-Guess-55") && !log.contains(HIA.1),
        "a password reached the log"
    );
}

#[tokio::test]
async fn agents_without_recent_heartbeats_are_inactive() {
    let t = TenantFixture::start_with(&["--agent-inactive-after-secs", "0"]);
    let ga = t.user_token(GA).await;
    t.register_agent(&ga, "dc9", &[]).await;
    let agents: Value = t.get_json(&ga, "/api/v1/agents").await;
    assert_eq!(agents["value"][0]["status"], "Inactive");
    let page = t.portal_page(GA, "/").await;
    assert!(page.contains("class=\"status-inactive\">Inactive<"));
}
