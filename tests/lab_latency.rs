//! `benches/lab_latency.rs` run small against the lab DC and a tenant process: 30 seeded users, 2
//! `title` changes and 2 password resets (no pause before each). Checks what can fail without timing
//! anything: the initial sync completes (Graph lists every seeded user, they sign in with their AD
//! passwords), every change becomes visible within its deadline, Samba's notification for each changed
//! entry reaches the bench's own watcher, and the agent's log gives the DirSync and PHS figures and
//! its own notification of each change (the feed polls only every 120 s, so a change visible within
//! 60 s was woken by one) that the report is built from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "../benches/lab_latency/harness.rs"]
mod lat_harness;
#[path = "../benches/lab_latency/probes.rs"]
mod lat_probes;
#[path = "../benches/lab_latency/report.rs"]
mod lat_report;
#[path = "common/tenant.rs"]
mod tenant_fixture;

#[test]
fn every_change_reaches_the_tenant_and_every_notification_the_watcher() {
    let opts = lat_harness::Options {
        users: 30,
        changes: 2,
        spread_ms: 0,
        timeout_secs: 60,
        sync_timeout_secs: 120,
        seed_connections: 2,
    };
    let report = lat_harness::run(&opts);
    eprintln!("{}", report.table());
    let s = &report.seeding;
    assert!(
        s.graph_complete_seconds > 0.0,
        "Graph never listed every seeded user"
    );
    assert!(
        s.signin_complete_seconds > 0.0,
        "seeded users never signed in"
    );
    // The 30 seeded users came; nothing outside OU=LatBench.
    assert_eq!(s.tenant_users, s.tenant_users_before + 30);
    // The first DirSync pass read the whole domain (template and seed), and the PHS cycle hashed at
    // least every seeded user.
    assert!(s.dirsync_entries > 1000, "{s:?}");
    assert!(s.phs_hashes >= 30, "{s:?}");
    assert_eq!(report.series.len(), 2);
    for series in &report.series {
        assert_eq!(series.samples.len(), 2, "{}", series.kind);
        assert_eq!(
            series.failures(),
            0,
            "{}: {:?}",
            series.kind,
            series.samples
        );
        assert!(
            series.samples.iter().all(|x| x.notified.is_some()),
            "{}: a notification is missing: {:?}",
            series.kind,
            series.samples
        );
        assert!(
            series.samples.iter().all(|x| x.agent_notified.is_some()),
            "{}: the agent's log shows no notification: {:?}",
            series.kind,
            series.samples
        );
    }
    assert!(report.ok());
    let json = report.json();
    assert_eq!(json["series"][1]["latency"]["samples"], 2);
}
