//! Regression test for a bug the crash campaign found (`tests/crash_campaign.rs`, seed
//! 1796687246882923282 round 9): a user deleted and re-created in AD with the same name while the lease
//! holder is down never reached the cloud, and the deleted one stayed there.
//!
//! The old holder never pushed the delete. The new holder's takeover image upserts the re-created user
//! (a new anchor) while the old one, which only the image's closing sweep (`imageComplete`) would
//! remove, still holds its userPrincipalName: the tenant refused the upsert (`DuplicateUserPrincipalName`,
//! permanent), the agent quarantined the object, its password hash was retried as `ReferenceNotFound`,
//! and `imageComplete`, which goes only once everything before it is acknowledged
//! (`push::batcher::may_send`), never went. Fixed in the tenant: an upsert under a newer epoch supersedes
//! a same-configuration object of an earlier holder's epoch (≥ 1) that holds its UPN — the sweep, early,
//! for that one object (ARCHITECTURE.md § lease contract, rule 11; unit test in
//! `crates/tenant/src/apply_image.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/diff_changes.rs"]
mod diff_changes;
#[path = "common/diff_oracle.rs"]
mod diff_oracle;
#[path = "common/ha.rs"]
mod ha;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::time::Duration;

use common::lab::LabDc;
use diff_changes::{Kind, seed_world};
use ha::{Daemon, agent_id, converge, wait_for_holder};
use tenant_fixture::{HIA, TenantFixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_recreated_with_the_same_name_while_the_holder_is_down_reaches_the_cloud() {
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    let t = TenantFixture::start_with(&["--heartbeat-interval-secs", "2"]);
    let mut w = seed_world(&dc);
    let ous = w.ous.clone();
    let scope = [(&dc, ous.as_slice())];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_a = agent_run::write_config(&dc, &t, dir_a.path(), &ous);
    let config_b = agent_run::write_config(&dc, &t, dir_b.path(), &ous);
    agent_run::register(&config_a);
    agent_run::register(&config_b);
    let (id_a, id_b) = (agent_id(dir_a.path()), agent_id(dir_b.path()));
    let token = t.user_token(HIA).await;

    // A holds the lease and syncs; B stands by, warm.
    let a = Daemon::start(&config_a, &dir_a.path().join("agent.log"), &["corp"]);
    wait_for_holder(&t, &token, &id_a, Duration::from_secs(60)).await;
    converge(&scope, &t, Duration::from_secs(120)).await;
    let b = Daemon::start(&config_b, &dir_b.path().join("agent.log"), &["corp"]);
    b.wait_for_log("Standing by", Duration::from_secs(60)).await;

    // The holder freezes; AD deletes a user in scope and re-creates it with the same name and UPN.
    a.signal("-STOP");
    let i = (0..w.slots.len())
        .find(|&i| w.slots[i].kind == Kind::User && w.in_scope(&w.slots[i]))
        .unwrap();
    dc.ldif_admin(&format!("dn: {}\nchangetype: delete\n", w.slots[i].dn()));
    w.slots[i].password = "Dup!Upn-Again1x".to_owned();
    dc.ldif_admin(&w.add_ldif(&w.slots[i]));

    // B takes over; its image must bring the tenant to AD: the new user in, the old one out.
    wait_for_holder(&t, &token, &id_b, Duration::from_secs(60)).await;
    converge(&scope, &t, Duration::from_secs(120)).await;
    a.signal("-CONT");
}
