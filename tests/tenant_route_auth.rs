//! Tenant API security, generated from the router itself: the rows of
//! `cloudsync_tenant::routes::ROUTES` are the routes (the router is built from them), and for each
//! row this test sends, against the real `cloudsync tenant serve`:
//!
//! - rows with roles: no token, Basic credentials, a garbage token, an unsigned (`alg: none`)
//!   token, a token of another tenant (signed with this tenant's key), a forgery (another key),
//!   another issuer, another audience, an expired and a not-yet-valid token (all 401, the message
//!   naming why); each seeded principal without the row's role (403); another agent's token on the
//!   agent's own routes (403 or 404, as the row says); another domain's agent on a configuration's
//!   routes and objects (404), and lists and `$batch` leaving them out;
//! - portal rows: no session, a bearer token instead of a session, a forged cookie, a signed-out
//!   session (303 or 401), a POST without the CSRF token, with another session's, cross-origin
//!   (403); a plain user's and a wrong password's sign-in;
//! - anonymous rows: another tenant in the path;
//! - every row: a query over 8 KiB (414), malformed (a bad `%` escape, not UTF-8), an unknown
//!   parameter, a parameter twice (400), a body over the row's limit or a body to a row that takes
//!   none (413); and one over-long path (414).
//!
//! Each request is one an allowed caller could have sent to change something (the recipes in
//! `tests/common/route_recipes.rs`). Afterwards nothing changed: the tenant's whole state on disk
//! (every sled tree, the release files) is byte-for-byte the dump taken before, the run-time fault
//! settings are the same, and the admin's portal session still works. Last, each row's allowed
//! caller gets past the checks (not 401/403), so the refusals are the checks' and not the recipes'.
//! A row without a recipe (a new route) fails the test, naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

#[path = "common/route_recipes.rs"]
mod route_recipes;

#[path = "common/route_cases.rs"]
mod route_cases;

use std::collections::BTreeMap;

use cloudsync_api::auth::Role;
use cloudsync_tenant::routes::{Access, ROUTES, RouteSpec, Verb};
use route_cases::{
    anonymous_cases, check, cut, limit_cases, portal_cases, role_cases, row_name, run,
};
use route_recipes::{recipe, world};
use serde_json::{Value, json};
use tenant_fixture::*;

/// A portal session: (`name=value`, its CSRF token).
async fn session(t: &TenantFixture, who: (&str, &str)) -> (String, String) {
    let set_cookie = t.portal_set_cookie(who).await;
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = t
        .send(&Req::get("/").header("cookie", &cookie))
        .await
        .text()
        .await
        .unwrap();
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

fn differences(before: &StateDump, after: &StateDump) -> Vec<String> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let (b, a) = (before.get(name), after.get(name));
        if b == a {
            continue;
        }
        let b: BTreeMap<_, _> = b.into_iter().flatten().cloned().collect();
        let a: BTreeMap<_, _> = a.into_iter().flatten().cloned().collect();
        for (k, v) in &a {
            if b.get(k) != Some(v) {
                out.push(format!(
                    "{name}: {} now {}",
                    String::from_utf8_lossy(k),
                    cut(&String::from_utf8_lossy(v), 300)
                ));
            }
        }
        for k in b.keys().filter(|k| !a.contains_key(*k)) {
            out.push(format!("{name}: {} removed", String::from_utf8_lossy(k)));
        }
    }
    out
}

#[tokio::test]
async fn every_route_refuses_every_wrong_caller_and_input_and_changes_nothing() {
    let mut t =
        TenantFixture::start_with(&["--release-max-mib", "1", "--writeback-wait-secs", "1"]);
    let mut w = world(&t).await;
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|r| recipe(&w, r).is_none())
        .map(row_name)
        .collect();
    assert!(
        missing.is_empty(),
        "routes of cloudsync_tenant::routes::ROUTES without a recipe in tests/common/route_recipes.rs \
         (a new route needs one, and its row's access, isolation, body and query are then checked):\n{}",
        missing.join("\n")
    );
    let key = t.signing_key();
    let before = t.state_dump();

    // Portal sessions (memory only: made after the last restart).
    let (cookie, csrf) = session(&t, GA).await;
    let (_, other_csrf) = session(&t, HIA).await;
    let (ended_cookie, ended_csrf) = session(&t, GA).await;
    let out = t
        .build(
            &t.no_redirect_client(),
            &Req::post("/portal/signout")
                .header("cookie", &ended_cookie)
                .form(form(&[("csrf", &ended_csrf)])),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let cookie_name = cookie.split('=').next().unwrap().to_owned();
    w.portal = route_recipes::Portal {
        cookie: cookie.clone(),
        csrf,
        other_csrf,
        ended_cookie,
    };
    let faults = t.get_json(&w.ga, "/admin/faults").await;

    let mut checks = Vec::new();
    let mut per_row: BTreeMap<String, usize> = BTreeMap::new();
    for r in ROUTES {
        let rc = recipe(&w, r).unwrap();
        let start = checks.len();
        match r.access {
            Access::Roles(_) => role_cases(&w, &key, r, &rc, &mut checks),
            Access::PortalSession => portal_cases(&w, r, &rc, &cookie_name, &mut checks),
            Access::Anonymous | Access::PortalPublic => anonymous_cases(r, &rc, &mut checks),
        }
        limit_cases(&w, r, &rc, &mut checks);
        per_row.insert(row_name(r), checks.len() - start);
    }
    let long_path = format!("/api/v1/agents/{}", "a".repeat(3000));
    checks.push(
        check(
            "any path",
            "path over 2 KiB, no token",
            Req::get(&long_path),
            414,
        )
        .has("path"),
    );
    checks.push(
        check(
            "any path",
            "path over 2 KiB",
            Req::get(&long_path).auth(&w.ga),
            414,
        )
        .has("path"),
    );

    let client = t.no_redirect_client();
    let mut failures = Vec::new();
    for c in &checks {
        if let Some(f) = run(&t, &client, c).await {
            failures.push(f);
        }
    }

    // Lists and $batch leave another domain's configuration and objects out for an agent.
    let configs = t.get_json(&w.b.token, "/api/v1/configurations").await;
    let ids: Vec<&str> = configs["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    if ids != [w.config_b.as_str()] {
        failures.push(format!("agent B lists configurations {ids:?}"));
    }
    let users = t.get_json(&w.b.token, "/v1.0/users").await;
    if users.to_string().contains(&w.user_a) {
        failures.push(format!("agent B lists agent A's user: {users}"));
    }
    let read = t
        .send(
            &Req::post("/v1.0/$batch")
                .auth(&w.b.token)
                .json(&json!({"requests": [{"id": "1", "method": "GET", "url": format!("/users/{}", w.user_a)}]})),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    if read["responses"][0]["status"] != 404 {
        failures.push(format!(
            "agent B reads agent A's user through $batch: {read}"
        ));
    }

    // Nothing changed: run-time settings, the live session, then the whole state on disk.
    if t.get_json(&w.ga, "/admin/faults").await != faults {
        failures.push("the fault settings changed".into());
    }
    let page = t
        .build(&client, &Req::get("/").header("cookie", &cookie))
        .send()
        .await
        .unwrap();
    if page.status() != 200 {
        failures.push(format!(
            "the admin's portal session ended: {}",
            page.status()
        ));
    }
    let after = t.state_dump();
    for d in differences(&before, &after) {
        failures.push(format!("state changed: {d}"));
    }

    // Every principal a row allows gets past the checks (so the refusals above are the checks',
    // and the table promises no role its handler refuses). Deletes last.
    let mut rows: Vec<&RouteSpec> = ROUTES
        .iter()
        .filter(|r| matches!(r.access, Access::Roles(_)))
        .collect();
    rows.sort_by_key(|r| r.verb == Verb::Delete);
    let mut allowed_statuses = Vec::new();
    for r in rows {
        let Access::Roles(roles) = r.access else {
            continue;
        };
        let rc = recipe(&w, r).unwrap();
        let principals = [
            (Role::GlobalAdministrator, "GA", &w.ga),
            (Role::HybridIdentityAdministrator, "HIA", &w.hia),
            (Role::Agent, "agent", &w.a.token),
        ];
        for (role, who, token) in principals {
            if !roles.contains(&role) {
                continue;
            }
            let response = t.send(&rc.req.clone().auth(token)).await;
            let status = response.status().as_u16();
            allowed_statuses.push(format!("{} as {who}: {status}", row_name(r)));
            if status == 401 || status == 403 {
                let text = response.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} as {who}, which the row allows: {status}: {}",
                    row_name(r),
                    cut(&text, 300)
                ));
            }
        }
    }

    let total: usize = per_row.values().sum();
    eprintln!(
        "{} rows, {} checks (+{} list/$batch filter checks, {} allowed-principal checks):",
        ROUTES.len(),
        total + 2,
        3,
        allowed_statuses.len()
    );
    for (row, n) in &per_row {
        eprintln!("  {n:>3}  {row}");
    }
    eprintln!("allowed principals: {}", allowed_statuses.join("; "));
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n")
    );
}

/// An answer given before the body was read (401/403 before the body, 413 at the limit or for a
/// route that takes none) reaches an HTTP/1.1 client whole: the unread rest of the body is read and
/// discarded first (bounded), instead of the connection being closed under a client still sending
/// (a reset, which clients report instead of the answer). Plain HTTP, where the reset comes fastest.
#[tokio::test]
async fn early_answers_to_large_bodies_reach_http1_clients() {
    let t = TenantFixture::start_with(&["--http"]);
    let admin = t.user_token(GA).await;
    let big = oversized_json();
    let mut failures = Vec::new();
    for round in 0..10 {
        for (name, req, status) in [
            (
                "no token",
                Req::post("/api/v1/configurations").raw_json(big.clone()),
                401,
            ),
            (
                "over the limit",
                Req::post("/api/v1/configurations")
                    .auth(&admin)
                    .raw_json(big.clone()),
                413,
            ),
            (
                "a body to a route that takes none",
                Req::get("/api/v1/agents")
                    .auth(&admin)
                    .raw_json(big.clone()),
                413,
            ),
        ] {
            match t.send_result(&req).await {
                Ok(got) if got == status => {}
                Ok(got) => {
                    failures.push(format!("round {round}, {name}: {got}, expected {status}"))
                }
                Err(e) => failures.push(format!("round {round}, {name}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
