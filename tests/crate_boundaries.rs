//! The rule the workspace is built around (ARCHITECTURE.md, "Crates"): the agent and the tenant meet only
//! through the contract crate and HTTP. Neither may depend on the other through normal dependencies,
//! directly or through another workspace crate; the contract crate depends on neither; only the binary
//! package depends on both. A dev-dependency (in-process test helpers) is allowed.
//!
//! Checked over `cargo metadata --no-deps`, so a `[dependencies]` line added to any Cargo.toml fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

const AGENT: &str = "cloudsync-agent";
const TENANT: &str = "cloudsync-tenant";
const API: &str = "cloudsync-api";
const BINARY: &str = "cloudsync";

/// Workspace package → the workspace packages it depends on through normal (non-dev, non-build)
/// dependencies.
fn normal_edges(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_owned();
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d))
                .map(str::to_owned)
                .collect();
            Some((name, deps))
        })
        .collect()
}

/// Every workspace package reachable from `from` through normal dependencies.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(p) = stack.pop() {
        for d in edges.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

/// The violations of the rule, one line each (empty: the layout holds).
fn violations(metadata: &Value) -> Vec<String> {
    let edges = normal_edges(metadata);
    let mut out = Vec::new();
    for (from, forbidden) in [
        (AGENT, TENANT),
        (TENANT, AGENT),
        (API, AGENT),
        (API, TENANT),
    ] {
        if !edges.contains_key(from) {
            out.push(format!("{from} is not a workspace package"));
        } else if reachable(&edges, from).contains(forbidden) {
            out.push(format!(
                "{from} depends on {forbidden} through normal dependencies"
            ));
        }
    }
    for (name, _) in edges.iter().filter(|(n, _)| n.as_str() != BINARY) {
        let r = reachable(&edges, name);
        if r.contains(AGENT) && r.contains(TENANT) {
            out.push(format!(
                "{name} depends on both the agent and the tenant (only {BINARY} may)"
            ));
        }
    }
    out
}

fn workspace_metadata() -> Value {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn agent_and_tenant_never_depend_on_each_other() {
    let metadata = workspace_metadata();
    let v = violations(&metadata);
    assert!(v.is_empty(), "crate boundaries broken:\n{}", v.join("\n"));
    // The binary is the one package that joins them.
    let r = reachable(&normal_edges(&metadata), BINARY);
    assert!(
        r.contains(AGENT) && r.contains(TENANT),
        "{BINARY} reaches {r:?}"
    );
}

/// The check itself catches the edges it is for: the real metadata with one forbidden dependency added
/// (direct, and through a third workspace crate) must be refused; a dev-dependency must not.
#[test]
fn the_check_refuses_a_forbidden_edge() {
    let metadata = workspace_metadata();
    let add = |m: &mut Value, from: &str, to: &str, kind: Value| {
        for p in m["packages"].as_array_mut().unwrap() {
            if p["name"] == from {
                let dep = serde_json::json!({ "name": to, "kind": kind });
                p["dependencies"].as_array_mut().unwrap().push(dep);
            }
        }
    };

    let mut direct = metadata.clone();
    add(&mut direct, AGENT, TENANT, Value::Null);
    assert!(
        violations(&direct)
            .iter()
            .any(|v| v.contains("cloudsync-agent depends on cloudsync-tenant"))
    );

    let mut through = metadata.clone();
    add(&mut through, API, AGENT, Value::Null);
    let v = violations(&through);
    assert!(
        v.iter()
            .any(|v| v.contains("cloudsync-tenant depends on cloudsync-agent")),
        "{v:?}"
    );

    let mut dev = metadata;
    add(&mut dev, AGENT, TENANT, Value::String("dev".into()));
    assert!(violations(&dev).is_empty());
}
