//! The portal escapes everything it renders. Markup is injected through everything that reaches the
//! page: AD attributes as an agent pushes them (the source anchor, a userPrincipalName that comes
//! back in a refusal's message, an attribute's name, the reason of an operation), the agent's host
//! name and version (registration and heartbeats), a configuration's domain, the search box, and
//! the sign-in form. Every page is then read over HTTP with a signed-in session and parsed: only
//! the portal's own tags, no `on…` attribute, and the injected strings present in escaped form
//! (so they were rendered, not dropped).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

const SCRIPT: &str = "<script>alert(1)</script>";
const ATTR: &str = "\"'><img src=x onerror=alert(1)>";

/// HTML escaping as the portal does it (`crates/tenant/src/portal.rs`, `esc`).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The tags the portal writes itself.
const TAGS: &[&str] = &[
    "!doctype", "html", "head", "meta", "title", "link", "body", "header", "h1", "h2", "small",
    "p", "b", "code", "form", "input", "button", "section", "ul", "li", "table", "thead", "tbody",
    "tr", "th", "td", "span", "label",
];

/// Every tag of `html` is one of [`TAGS`] and has no event-handler attribute; names the page.
fn only_own_markup(page: &str, html: &str) {
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let tag = &rest[open + 1..];
        let close = tag
            .find('>')
            .unwrap_or_else(|| panic!("{page}: unclosed tag"));
        let inside = &tag[..close];
        let name = inside
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            TAGS.contains(&name.as_str()),
            "{page}: unexpected tag <{inside}>"
        );
        let lower = inside.to_ascii_lowercase();
        assert!(
            !lower
                .split_whitespace()
                .any(|a| a.starts_with("on") && a.contains('=')),
            "{page}: event handler attribute in <{inside}>"
        );
        rest = &tag[close + 1..];
    }
}

#[tokio::test]
async fn the_portal_escapes_markup_from_ad_attributes_and_every_other_source() {
    let t = TenantFixture::start();
    let ga = t.user_token(GA).await;
    let host = format!("dc1{SCRIPT}");
    let version = format!("1.0{ATTR}");
    let r = t
        .send(&Req::post("/api/v1/agents").auth(&ga).json(&json!({
            "hostName": host, "version": version, "environment": "AzureCloud",
            "domains": ["corp.example.com"]})))
        .await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let agent_id = reg["agentId"].as_str().unwrap().to_owned();
    let agent = t
        .client_token(
            reg["clientId"].as_str().unwrap(),
            reg["clientSecret"].as_str().unwrap(),
        )
        .await
        .unwrap();
    let config = t
        .create_config(&ga, json!({"domain": "corp.example.com"}))
        .await;
    // A heartbeat's version is shown too (and takes the lease, so the lease cell names the host).
    let beat_version = format!("2.0{SCRIPT}");
    let r = t
        .send(
            &Req::post(format!("/api/v1/agents/{agent_id}/heartbeat"))
                .auth(&agent)
                .json(&json!({"version": beat_version, "acknowledgedRestarts": []})),
        )
        .await;
    assert_eq!(r.status(), 200);
    // A configuration whose domain is markup, if the tenant takes it.
    let odd_domain = format!("x{ATTR}");
    let odd = t
        .send(
            &Req::post("/api/v1/configurations")
                .auth(&ga)
                .json(&json!({"domain": odd_domain})),
        )
        .await
        .status();
    assert!(odd == 201 || odd == 400, "{odd}");

    // AD attributes through the push API, as the agent sends them.
    let anchor = format!("anchor{ATTR}");
    let upn = format!("ann{SCRIPT}@corp.example.com");
    let mut ann = user_upsert(&anchor, 1, &upn, &format!("Ann {SCRIPT}"));
    ann["attributes"]["jobTitle"] = json!(ATTR);
    let dup_anchor = format!("dup{SCRIPT}");
    let mut odd_attribute = user_upsert("anchor-odd", 1, "odd@corp.example.com", "Odd");
    odd_attribute["attributes"]["id"] = json!(SCRIPT);
    let reason = format!("moved into scope {ATTR}");
    let mut b = batch(vec![
        ann,
        user_upsert(&dup_anchor, 1, &upn, "Dup"),
        odd_attribute,
    ]);
    b["reasons"] = json!({"0": reason});
    let (status, body) = t.post_batch(&agent, &config, &b).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        statuses(&body),
        [
            "success",
            "error:DuplicateUserPrincipalName",
            "error:InvalidAttribute"
        ],
        "{body}"
    );
    let ann_id = body["results"][0]["objectId"].as_str().unwrap().to_owned();

    // Every page with a session, and the sign-in page's answer to a name that is markup.
    let whole = t.portal_page(GA, "/").await;
    let search = t.portal_page(GA, &format!("/?objectId={ann_id}")).await;
    let signin = t
        .send(&Req::post("/portal/signin").form(form(&[("username", SCRIPT), ("password", ATTR)])))
        .await;
    assert_eq!(signin.status(), 401);
    let signin = signin.text().await.unwrap();
    let bad_search = t
        .send(
            &Req::get(format!("/?objectId={}", urlencode(SCRIPT))).header(
                "cookie",
                t.portal_set_cookie(GA).await.split(';').next().unwrap(),
            ),
        )
        .await;
    assert_eq!(bad_search.status(), 400);
    assert!(
        bad_search.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "a refused search is an OData error, never HTML"
    );
    for (name, html) in [
        ("/", &whole),
        ("/?objectId=", &search),
        ("sign-in", &signin),
    ] {
        only_own_markup(name, html);
        for raw in [SCRIPT, ATTR, "<script", "<img"] {
            assert!(!html.contains(raw), "{name}: {raw:?} unescaped");
        }
    }
    // Rendered, escaped: the host (agents table and lease), both versions, the anchor, the
    // UPN in the refusal, the attribute's value in the refusal, the reason; the odd domain.
    let mut shown = vec![
        host.clone(),
        beat_version.clone(),
        anchor.clone(),
        upn.clone(),
        dup_anchor.clone(),
        reason.clone(),
    ];
    if odd == 201 {
        shown.push(odd_domain.clone());
    }
    for s in &shown {
        assert!(whole.contains(&esc(s)), "/ does not show {s:?} escaped");
    }
    assert!(search.contains(&esc(&anchor)) && search.contains(&esc(&reason)));
    assert!(
        !search.contains(&esc(&dup_anchor)),
        "the search narrows to Ann"
    );
    assert!(
        !signin.contains("script"),
        "the sign-in page does not echo the name"
    );
}

fn urlencode(s: &str) -> String {
    form(&[("x", s)]).trim_start_matches("x=").to_owned()
}
