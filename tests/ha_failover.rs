//! High availability: two `agent run` daemons for one domain (one configuration) against the lab DC
//! and the real tenant, the tenant's heartbeat interval 2 s (lease 4 s, its default of twice the
//! interval). The lease holder is SIGKILLed in the middle of the initial sync, then a holder is
//! SIGSTOPped in a stream of AD changes and SIGCONTed after the takeover (its late batches are
//! refused with `LeaseLost`, none of them applied), then a holder is SIGKILLed in a stream of AD
//! changes. Each time the standby takes over within two heartbeat intervals (plus slack for a
//! loaded 2-core machine) and afterwards the tenant equals AD in full (the differential test's
//! oracle: every mapped attribute, every member). Figures are printed (`--nocapture`).
//!
//! A second test freezes the standby while the holder pushes an attribute change and a new user,
//! then freezes the holder while AD takes both back: what the new holder's feed sees then is an
//! unchanged object and the tombstone of one it never knew, so only its takeover image and the
//! tenant's `imageComplete` sweep bring the tenant back to AD.
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

use std::time::{Duration, Instant};

use common::lab::LabDc;
use diff_changes::{Kind, Slot, World, random_change, seed_world};
use ha::{
    Daemon, TAKEOVER_BOUND, agent_id, applied_by, converge, strip_ansi, takeover_image,
    wait_for_holder,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tenant_fixture::{HIA, TenantFixture};

fn changes(rng: &mut StdRng, dc: &LabDc, w: &mut World, n: usize) -> Vec<String> {
    (0..n).map(|_| random_change(rng, dc, w)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_a_dead_or_partitioned_holder_and_the_tenant_equals_ad() {
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    let t = TenantFixture::start_with(&["--heartbeat-interval-secs", "2"]);
    let mut w = seed_world(&dc);
    // The seeded bulk (1000 users, their groups) makes the initial sync long enough to die in.
    let mut ous = w.ous.clone();
    ous.push(dc.ou_dn("SyncUsers"));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_a = agent_run::write_config(&dc, &t, dir_a.path(), &ous);
    let config_b = agent_run::write_config(&dc, &t, dir_b.path(), &ous);
    agent_run::register(&config_a);
    agent_run::register(&config_b);
    let (id_a, id_b) = (agent_id(dir_a.path()), agent_id(dir_b.path()));
    let token = t.user_token(HIA).await;
    let mut rng = StdRng::seed_from_u64(15);

    // 1. A holds the lease and starts the initial sync; B stands by. SIGKILL A once its first
    //    batch is applied.
    let mut a = Daemon::start(&config_a, &dir_a.path().join("agent.log"), &["corp"]);
    let (epoch_a, _) = wait_for_holder(&t, &token, &id_a, Duration::from_secs(60)).await;
    let b = Daemon::start(&config_b, &dir_b.path().join("agent.log"), &["corp"]);
    let start = Instant::now();
    while applied_by(&t.log(), &id_a) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "A applied nothing:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batches_before_kill = applied_by(&t.log(), &id_a);
    a.kill();
    let killed = Instant::now();
    let (epoch_b, _) = wait_for_holder(&t, &token, &id_b, Duration::from_secs(60)).await;
    let takeover_1 = killed.elapsed();
    assert!(epoch_b > epoch_a, "epoch {epoch_b} after {epoch_a}");
    assert!(takeover_1 <= TAKEOVER_BOUND, "takeover took {takeover_1:?}");
    let converged_1 = converge(&[(&dc, ous.as_slice())], &t, Duration::from_secs(300)).await;
    assert!(
        takeover_image(&b.log()).is_some(),
        "B stood by from the start, so it re-sends its image:\n{}",
        b.log()
    );
    eprintln!(
        "ha: SIGKILL mid initial sync (after A's batch {batches_before_kill}): takeover {:.1}s after the kill, B's takeover image (operations, waited ms) {:?}, tenant = AD {:.1}s after the takeover",
        takeover_1.as_secs_f64(),
        takeover_image(&b.log()),
        converged_1.as_secs_f64()
    );

    // 2. A comes back (same state) and stands by. In a stream of AD changes B is SIGSTOPped (a
    //    partition), A takes over, B is SIGCONTed: its late batches are refused, none applied.
    let mut a = a.restart();
    let start = Instant::now();
    while !a.log().contains("Standing by") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "A never stood by:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut history = changes(&mut rng, &dc, &mut w, 4);
    // B's feed reads them (1 s poll) and its operations linger in the push window (2 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.signal("-STOP");
    let stopped = Instant::now();
    let (epoch_a2, _) = wait_for_holder(&t, &token, &id_a, Duration::from_secs(60)).await;
    let takeover_2 = stopped.elapsed();
    assert!(epoch_a2 > epoch_b);
    assert!(takeover_2 <= TAKEOVER_BOUND, "takeover took {takeover_2:?}");
    history.extend(changes(&mut rng, &dc, &mut w, 3));
    let applied_before = applied_by(&t.log(), &id_b);
    let refused_before = t.log().matches("Batch refused: LeaseLost.").count();
    b.signal("-CONT");
    let start = Instant::now();
    while !b.log().contains("pushing stops for the configuration") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "B never learned it lost the lease:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged_2 = converge(&[(&dc, ous.as_slice())], &t, Duration::from_secs(120)).await;
    let tenant_log = t.log();
    let refused = tenant_log.matches("Batch refused: LeaseLost.").count() - refused_before;
    assert_eq!(
        applied_by(&tenant_log, &id_b),
        applied_before,
        "nothing B sent after the takeover is applied"
    );
    assert!(
        refused > 0,
        "B's late batches reach the tenant and are refused:\n{}",
        b.log()
    );
    assert!(b.log().contains("Lease lost"), "{}", b.log());
    eprintln!(
        "ha: SIGSTOP in a stream: takeover {:.1}s after the stop, A's takeover image (operations, waited ms) {:?}, B's late batches refused: {refused}, tenant = AD {:.1}s after SIGCONT",
        takeover_2.as_secs_f64(),
        takeover_image(&a.log()),
        converged_2.as_secs_f64()
    );

    // 3. In a stream of AD changes the holder (A) is SIGKILLed; B (standby again) takes over.
    history.extend(changes(&mut rng, &dc, &mut w, 3));
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    let killed = Instant::now();
    history.extend(changes(&mut rng, &dc, &mut w, 3));
    let (epoch_b3, _) = wait_for_holder(&t, &token, &id_b, Duration::from_secs(60)).await;
    let takeover_3 = killed.elapsed();
    assert!(epoch_b3 > epoch_a2);
    assert!(takeover_3 <= TAKEOVER_BOUND, "takeover took {takeover_3:?}");
    history.extend(changes(&mut rng, &dc, &mut w, 3));
    let converged_3 = converge(&[(&dc, ous.as_slice())], &t, Duration::from_secs(120)).await;
    eprintln!(
        "ha: SIGKILL in a stream: takeover {:.1}s after the kill, B's takeover image (operations, waited ms) {:?}, tenant = AD {:.1}s after the takeover; epochs {epoch_a} → {epoch_b} → {epoch_a2} → {epoch_b3}; changes: {}",
        takeover_3.as_secs_f64(),
        takeover_image(&b.log()),
        converged_3.as_secs_f64(),
        history.join("; ")
    );
    // The tenant's log names every refusal; none of B's batches were applied while A held it.
    assert!(!t.log().contains("panicked"), "{}", t.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_image_undoes_what_the_old_holder_pushed_and_ad_took_back() {
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

    // A holds the lease and syncs; B reads and projects the domain as a standby, then freezes.
    let a = Daemon::start(&config_a, &dir_a.path().join("agent.log"), &["corp"]);
    wait_for_holder(&t, &token, &id_a, Duration::from_secs(60)).await;
    converge(&scope, &t, Duration::from_secs(120)).await;
    let b = Daemon::start(&config_b, &dir_b.path().join("agent.log"), &["corp"]);
    b.wait_for_log("Standing by", Duration::from_secs(60)).await;
    b.wait_for_log("Projected journal events.", Duration::from_secs(60))
        .await;
    b.signal("-STOP");

    // A pushes an attribute change and a new user.
    let user = w.slots[1].dn();
    assert!(w.slots[1].kind == Kind::User && w.in_scope(&w.slots[1]));
    let title = dc.attr_values(&user, "title");
    dc.ldif_admin(&format!(
        "dn: {user}\nchangetype: modify\nreplace: title\ntitle: Pushed then taken back\n-\n"
    ));
    let n = w.next();
    let sam = format!("haimg{n}");
    let fresh = Slot {
        kind: Kind::User,
        upn: format!("{sam}@{}", w.dns),
        cn: sam.clone(),
        sam,
        parent: w.ous[0].clone(),
        exists: true,
        password: format!("Ha!Image{n}x"),
    };
    dc.ldif_admin(&w.add_ldif(&fresh));
    w.slots.push(fresh);
    converge(&scope, &t, Duration::from_secs(60)).await;

    // A freezes (it still holds the lease until it runs out); AD takes both back.
    a.signal("-STOP");
    let revert = match title.first() {
        Some(v) => format!("replace: title\ntitle: {v}"),
        None => "delete: title".to_owned(),
    };
    dc.ldif_admin(&format!("dn: {user}\nchangetype: modify\n{revert}\n-\n"));
    let gone = w.slots.last_mut().unwrap();
    dc.ldif_admin(&format!("dn: {}\nchangetype: delete\n", gone.dn()));
    gone.exists = false;

    // B resumes, takes over, and brings the tenant back to AD.
    b.signal("-CONT");
    let resumed = Instant::now();
    let (epoch_b, took) = wait_for_holder(&t, &token, &id_b, Duration::from_secs(60)).await;
    let converged = converge(&scope, &t, Duration::from_secs(120)).await;
    let log = strip_ansi(&b.log());
    assert!(
        log.contains("Takeover image enqueued"),
        "B re-sent its image:\n{log}"
    );
    let swept = t
        .log()
        .matches("Not in the new lease holder's image: deleted.")
        .count();
    assert_eq!(
        swept,
        1,
        "exactly the user AD deleted is swept:\n{}",
        t.log()
    );
    eprintln!(
        "ha: takeover image: B held epoch {epoch_b} {:.1}s after resuming; tenant = AD {:.1}s later ({:.1}s after resuming); {swept} object swept; image (operations, waited ms) {:?}",
        took.as_secs_f64(),
        converged.as_secs_f64(),
        resumed.elapsed().as_secs_f64(),
        takeover_image(&b.log())
    );
    a.signal("-CONT");
}
