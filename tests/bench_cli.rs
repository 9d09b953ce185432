//! `cloudsync bench --objects 2000 --json` end to end, checked against oracles that are not the
//! harness's own idea: the counts follow from the directory rule of docs/bench.md (computed here),
//! and what the tenant holds is read by this test itself over Graph, from the tenant restarted
//! over the run's state after the harness has stopped it. No timings are asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

use serde_json::Value;

#[path = "common/tenant.rs"]
mod tenant_fixture;

use tenant_fixture::TenantFixture;

const N: u64 = 2000;

/// docs/bench.md § The synthetic directory: N/20 groups, N/20 contacts, the rest users; All Staff
/// holds min(250,000, users); the delta round changes object k·N/K for k < K = N·churn/100, in the
/// order users, groups, contacts — so for N = 2000 and 1 %: users 0, 100, …, 1700 (18 of them),
/// group 0 (All Staff, which loses its first member) and contact 0.
struct Oracle {
    users: u64,
    groups: u64,
    contacts: u64,
    all_staff_after_delta: u64,
    users_with_a_delta_title: u64,
}

fn oracle() -> Oracle {
    let groups = N / 20;
    let contacts = N / 20;
    let users = N - groups - contacts;
    let changed: Vec<u64> = (0..N / 100).map(|k| k * N / (N / 100)).collect();
    Oracle {
        users,
        groups,
        contacts,
        all_staff_after_delta: users.min(250_000) - 1,
        users_with_a_delta_title: changed.iter().filter(|i| **i < users).count() as u64,
    }
}

/// The job titles the delta round sets (docs/bench.md), none of which the initial read uses.
const DELTA_TITLES: [&str; 4] = [
    "Team Lead",
    "Principal Consultant",
    "Head of Department",
    "Programme Director",
];

#[test]
fn bench_2000_objects_reaches_the_tenant_as_the_directory_rule_says() {
    let scratch = tempfile::tempdir().unwrap();
    let state = scratch.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args([
            "bench",
            "--objects",
            &N.to_string(),
            "--json",
            "--state-dir",
        ])
        .arg(&state)
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cloudsync bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let want = oracle();

    // The schema of docs/bench.md.
    assert_eq!(report["schema"], "cloudsync-bench");
    assert_eq!(report["version"], 1);
    assert_eq!(report["objects"], N);
    let names: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["journal", "phs", "projection", "push"]);
    for s in report["stages"].as_array().unwrap() {
        assert!(s["items"].as_u64().unwrap() > 0, "{s}");
        assert!(s["items_per_second"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["peak_rss_bytes"].as_u64().unwrap() > 0, "{s}");
        if s["name"] != "projection" {
            assert!(s["ratio_to_limit"].as_f64().unwrap() > 0.0, "{s}");
        }
    }
    let d = &report["directory"];
    assert_eq!(
        (
            d["users"].as_u64(),
            d["groups"].as_u64(),
            d["contacts"].as_u64()
        ),
        (Some(want.users), Some(want.groups), Some(want.contacts))
    );
    // journal: one event per user, group, contact and OU, plus the two resync markers; phs: one
    // hash per user.
    let ous = d["organizational_units"].as_u64().unwrap();
    assert_eq!(report["stages"][0]["items"], N + ous + 2);
    assert_eq!(report["stages"][1]["items"], want.users);
    let t = &report["tenant"];
    assert_eq!(t["matches_directory"], true, "{t}");
    assert_eq!(t["largest_group_members"], want.users.min(250_000));
    assert!(report["end_to_end"]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["delta"]["objects"], N / 100);
    assert_eq!(report["delta"]["verified"], true);
    assert!(
        report["throttle"].is_null(),
        "unthrottled: no budget figures"
    );
    for store in ["journal", "outbox", "projection", "tenant"] {
        assert!(
            report["storage"][store]["bytes"].as_u64().unwrap() > 0,
            "{store}"
        );
    }

    // The tenant itself, restarted over the run's state and read by this test.
    let dir = tempfile::tempdir().unwrap();
    std::fs::rename(state.join("tenant"), dir.path()).unwrap();
    let seed: toml::Table = std::fs::read_to_string(dir.path().join("seed.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let admin = &seed["users"].as_array().unwrap()[0];
    let admin = (
        admin["user_principal_name"].as_str().unwrap(),
        admin["password"].as_str().unwrap(),
    );
    let t = TenantFixture::over(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let token = t.user_token(admin).await;
        let all = |path: &'static str| t.graph_all(&token, path);
        let users = all("/v1.0/users?$select=id,jobTitle&$top=999").await;
        let groups = all("/v1.0/groups?$select=id,displayName&$top=999").await;
        let contacts = all("/v1.0/contacts?$select=id&$top=999").await;
        assert_eq!(
            (
                users.len() as u64,
                groups.len() as u64,
                contacts.len() as u64
            ),
            (want.users, want.groups, want.contacts)
        );
        let retitled = users
            .iter()
            .filter(|u| DELTA_TITLES.contains(&u["jobTitle"].as_str().unwrap_or_default()))
            .count() as u64;
        assert_eq!(retitled, want.users_with_a_delta_title);
        let all_staff: Vec<&Value> = groups
            .iter()
            .filter(|g| g["displayName"] == "All Staff")
            .collect();
        assert_eq!(all_staff.len(), 1);
        let id = all_staff[0]["id"].as_str().unwrap();
        let path = format!("/v1.0/groups/{id}/members?$select=id&$top=999");
        let members = t.graph_all(&token, &path).await;
        assert_eq!(members.len() as u64, want.all_staff_after_delta);
    });
}

/// Against a write budget the tenant enforces, everything still arrives, and what the tenant
/// acknowledged never exceeds what its bucket allows in the push's time (capacity + refill × time).
#[test]
fn bench_against_a_write_budget_stays_under_the_ceiling_and_loses_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args([
            "bench",
            "--objects",
            "200",
            "--stages",
            "journal,projection,push,tenant",
            "--churn",
            "0",
            "--write-capacity",
            "100",
            "--write-refill-per-second",
            "400",
            "--json",
        ])
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cloudsync bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let t = &report["throttle"];
    eprintln!("{t}");
    let ops = t["operations"].as_u64().unwrap();
    let push = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "push")
        .unwrap();
    assert_eq!(push["items"].as_u64(), Some(ops));
    assert_eq!(t["capacity"].as_f64(), Some(100.0));
    assert_eq!(t["refill_per_second"].as_f64(), Some(400.0));
    // The budget was exercised: more operations than the burst.
    assert!(ops > 100, "{t}");
    let ceiling = 100.0 + 400.0 * t["seconds"].as_f64().unwrap();
    assert!(
        (ops as f64) <= ceiling,
        "{ops} acknowledged, ceiling {ceiling}"
    );
    assert_eq!(report["tenant"]["matches_directory"], true);
    // Bad budgets are refused before anything runs.
    let refused = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args([
            "bench",
            "--objects",
            "200",
            "--write-capacity",
            "0",
            "--write-refill-per-second",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--write-capacity"));
}
