//! The route table against the router built from it and against the sources and docs.

use std::collections::HashSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::state::{TenantOptions, TenantState};
use crate::store::Store;
use crate::throttle::ThrottleSettings;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_row_is_one_method_on_one_path() {
    let mut seen = HashSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.verb, r.path)),
            "{} {} twice",
            r.verb.as_str(),
            r.path
        );
        if let Roles(roles) = r.access {
            assert!(!roles.is_empty(), "{} {}: no role", r.verb.as_str(), r.path);
        }
        if r.isolation != Isolation::None {
            assert!(
                matches!(r.access, Roles(roles) if roles.contains(&Role::Agent)),
                "{} {}: isolation is about agents, but agents may not call it",
                r.verb.as_str(),
                r.path
            );
        }
    }
}

/// The guard against a route added beside the table: no file of the crate but this module may
/// register a route, nest or merge a router. (axum's `Router` cannot list its routes, so the
/// sources are read; every route this finds must become a row of [`ROUTES`].)
#[test]
fn no_route_is_registered_outside_the_table() {
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(crate_dir().join("src")).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".rs") || name == "routes.rs" || name == "routes_tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for needle in [
                ".route(",
                ".nest(",
                ".merge(",
                "Router::new(",
                ".route_service(",
            ] {
                if code.contains(needle) {
                    offenders.push(format!("{name}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered outside routes::ROUTES (add a row instead):\n{}",
        offenders.join("\n")
    );
}

/// `docs/tenant.md` § Route security table is this table (`CLOUDSYNC_UPDATE_DOCS=1` writes it).
#[test]
fn the_documented_table_is_the_route_table() {
    let doc_path = crate_dir().join("../../docs/tenant.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/tenant.md");
    let begin = "<!-- route-table:begin (generated from crates/tenant/src/routes.rs) -->\n";
    let end = "<!-- route-table:end -->";
    let start = doc.find(begin).expect("the begin marker") + begin.len();
    let stop = doc[start..].find(end).expect("the end marker") + start;
    let expected = markdown_table();
    if doc[start..stop] != expected && std::env::var_os("CLOUDSYNC_UPDATE_DOCS").is_some() {
        let updated = format!("{}{expected}{}", &doc[..start], &doc[stop..]);
        std::fs::write(&doc_path, updated).expect("writing docs/tenant.md");
        return;
    }
    assert!(
        doc[start..stop] == expected,
        "docs/tenant.md's route table is not routes::markdown_table(); run this test with \
         CLOUDSYNC_UPDATE_DOCS=1 to write it, or replace it with:\n{expected}"
    );
}

fn state(dir: &Path) -> SharedState {
    let store = Store::open(&dir.join("db")).expect("store");
    let seed = toml::from_str("").expect("seed");
    std::sync::Arc::new(
        TenantState::new(
            store,
            &seed,
            TenantOptions::default(),
            ThrottleSettings::default(),
        )
        .expect("state"),
    )
}

/// A concrete path for a pattern: every `{param}` (and `{*rest}`) becomes a fixed GUID.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(router: &axum::Router, method: Method, path: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Walks the router built from the table: each row answers its method on its path (not the 404 or
/// 405 fallback), behind its guard (a role row without a token is 401, before anything else), and
/// another method on the path is 405.
#[tokio::test]
async fn the_router_serves_exactly_the_rows_behind_their_guards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = crate::server::router(state(dir.path()));
    let mut methods_by_path: std::collections::HashMap<String, Vec<Verb>> = Default::default();
    for r in ROUTES {
        methods_by_path
            .entry(concrete(r.path))
            .or_default()
            .push(r.verb);
    }
    for r in ROUTES {
        let path = concrete(r.path);
        let method = Method::from_bytes(r.verb.as_str().as_bytes()).expect("method");
        let (status, body) = send(&router, method, &path).await;
        let name = format!("{} {path}", r.verb.as_str());
        assert!(
            !body.contains("No such route") && status != StatusCode::METHOD_NOT_ALLOWED,
            "{name}: {status} {body}"
        );
        if let Roles(_) = r.access {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        }
    }
    for (path, verbs) in methods_by_path {
        if verbs.contains(&Verb::Patch) {
            continue;
        }
        let (status, body) = send(&router, Method::PATCH, &path).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "PATCH {path}: {body}"
        );
    }
    let (status, _) = send(&router, Method::GET, "/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
