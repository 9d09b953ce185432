//! High availability across domains: three lab DCs of three AD domains (`CORP`, `EAST`, `WEST`), one
//! tenant (heartbeat 2 s, lease 4 s), and three `agent run` daemons each serving all three domains.
//!
//! 1. The leases spread: the daemons start unpaired and are paired with the three domains (as an
//!    admin would) once all three heartbeat and have done their first reads and password hash sync
//!    (why: at step 1 below). Then each agent holds exactly one configuration, as the tenant's
//!    configurations and agents resources, each agent's `agent status` and the portal show it, and it
//!    stays so; every domain's objects reach the tenant, which then equals AD for each domain (the
//!    differential oracle over the three).
//! 2. The holder of EAST is SIGKILLed and EAST's AD changes: one of the two survivors takes EAST over
//!    within two heartbeat intervals (plus slack for a loaded 2-core machine), the survivors hold 2 + 1,
//!    and the changes made after the kill reach the tenant, which equals AD again.
//! 3. The killed agent comes back over its state: it stands by for all three and gets none — the
//!    spread rule moves only free leases, and every lease is live and renewed (no rebalancing).
//! 4. Until a lease frees: the agent holding two is SIGKILLed; the returning agent, holding fewer,
//!    takes a freed lease (or both), the tenant equals AD again.
//!
//! Figures are printed (`--nocapture`) and kept in ARCHITECTURE.md's lease contract. The scope is small
//! (`OU=Staff` and the differential test's two OUs, ~20 objects per domain); `CLOUDSYNC_HA_SPREAD_FULL=1`
//! adds the seeded 1,000 users per domain (see [`FULL_ENV`]).
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
#[path = "common/ha_views.rs"]
mod ha_views;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::lab::{LabDc, LabOptions, LabRealm};
use diff_changes::{random_change, seed_world};
use ha::{
    Daemon, HEARTBEAT_SECS, Lease, TAKEOVER_BOUND, agent_id, applied_by, converge, leases,
    wait_for_leases,
};
use ha_views::{
    agents_hold, assert_portal_shows, assert_status_shows, by_holder, last_seen, set_domains,
    spread_one_each, wait_for_title,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tenant_fixture::{HIA, TenantFixture};

/// The `[domains.*]` keys, in the order of the DCs.
const KEYS: [&str; 3] = ["corp", "east", "west"];
/// Set: each domain's scope also takes `OU=SyncUsers` (1,000 users). Before a standby's operations
/// were acknowledged unsent, each agent's outbox window filled with the operations of the two domains
/// it stands by for and it never pushed the one it held (no batch in 10 minutes); now it passes
/// (ARCHITECTURE.md § The lease and fencing contract, 9–11: 4,086-operation images, 113 s in all).
const FULL_ENV: &str = "CLOUDSYNC_HA_SPREAD_FULL";
/// One lease length (twice the heartbeat interval).
const LEASE: Duration = Duration::from_secs(2 * HEARTBEAT_SECS);

/// Three DCs, one per realm, started side by side (the first run builds the EAST and WEST templates,
/// ~30 s each). One Samba process each (`-M single`) instead of ~45: three DCs, three agents and the
/// tenant share two cores.
fn three_dcs() -> Vec<LabDc> {
    let single = |realm: Option<LabRealm>| LabOptions {
        single_process: true,
        realm,
        ..LabOptions::default()
    };
    let options = [
        single(None),
        single(Some(LabRealm::new("EAST.EXAMPLE.TEST", "EAST"))),
        single(Some(LabRealm::new("WEST.EXAMPLE.TEST", "WEST"))),
    ];
    std::thread::scope(|s| {
        let started: Vec<_> = options
            .into_iter()
            .map(|o| s.spawn(move || LabDc::start_with(o)))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_spread_three_domains_and_a_survivor_takes_over_a_killed_one() {
    cloudsync_private_fs::restrict_umask();
    let t0 = Instant::now();
    let full = std::env::var_os(FULL_ENV).is_some();
    let converge_within = Duration::from_secs(if full { 500 } else { 120 });
    let dcs = three_dcs();
    let t = TenantFixture::start_with(&["--heartbeat-interval-secs", &HEARTBEAT_SECS.to_string()]);
    // Scope per domain: OU=Staff (10 users, a group) and the differential test's two OUs.
    let mut worlds: Vec<_> = dcs.iter().map(seed_world).collect();
    let scopes: Vec<Vec<String>> = dcs
        .iter()
        .zip(&worlds)
        .map(|(dc, w)| {
            let mut ous = w.ous.clone();
            ous.push(dc.ou_dn("Staff"));
            if full {
                ous.push(dc.ou_dn("SyncUsers"));
            }
            ous
        })
        .collect();
    let all_ous: Vec<String> = scopes.iter().flatten().cloned().collect();
    let domains: Vec<(&LabDc, &[String])> = dcs
        .iter()
        .zip(&scopes)
        .map(|(dc, ous)| (dc, ous.as_slice()))
        .collect();
    let served: Vec<(&str, &LabDc)> = KEYS.iter().copied().zip(dcs.iter()).collect();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs: Vec<_> = dirs
        .iter()
        .map(|d| agent_run::write_config_domains(&served, &t, d.path(), &all_ous))
        .collect();
    for c in &configs {
        agent_run::register(c);
    }
    let ids: Vec<String> = dirs.iter().map(|d| agent_id(d.path())).collect();
    let token = t.user_token(HIA).await;
    let prepared = t0.elapsed();

    // 1. Three daemons; the leases spread one each, and stay so. The agents are paired with their
    //    domains only once all three heartbeat (and, below, have done their initial work): the
    //    spread weighs the agents Active when a lease is
    //    granted, so the first agent's first heartbeat would take every configuration whose other
    //    agents have not beaten yet — under load a daemon's first heartbeat comes seconds after its
    //    start — and held leases are never moved later (ARCHITECTURE.md § The lease and fencing
    //    contract, 1). An admin adding the domains to running agents does the same.
    let names: Vec<&str> = dcs.iter().map(|dc| dc.dns_domain.as_str()).collect();
    let registered = last_seen(&t, &token).await;
    for id in &ids {
        set_domains(&t, &token, id, &[]).await;
    }
    let mut daemons: Vec<Daemon> = dirs
        .iter()
        .zip(&configs)
        .map(|(d, c)| Daemon::start(c, &d.path().join("agent.log"), &KEYS))
        .collect();
    let start = Instant::now();
    loop {
        let seen = last_seen(&t, &token).await;
        if ids.iter().all(|id| seen.get(id) != registered.get(id)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not every agent heartbeat within 60 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_beats = start.elapsed();
    // …and once each has read the three domains and run their first password hash sync: during those
    // (three full reads of 1,092 entries, three replications and 3,063 PBKDF2 hashes per agent, three
    // agents and three DCs on two cores) a daemon's heartbeat was seen not to reach the tenant for
    // more than the 4 s lease, and a healthy holder lost its lease. Killing a holder mid initial sync
    // is tests/ha_failover.rs's case.
    for d in &daemons {
        d.wait_for_log_count(
            "Password hash sync cycle done.",
            KEYS.len(),
            Duration::from_secs(120),
        )
        .await;
    }
    let initial_work = start.elapsed();
    let started = Instant::now();
    for id in &ids {
        set_domains(&t, &token, id, &names).await;
    }
    let (spread, spread_after) = wait_for_leases(
        &t,
        &token,
        Duration::from_secs(60),
        "each agent holds one configuration",
        |l| spread_one_each(l, &ids),
    )
    .await;
    let spread_at = Instant::now();
    // Every holder pushes: the tenant applies a batch from each within a minute.
    for (id, d) in ids.iter().zip(&daemons) {
        while applied_by(&t.log(), id) == 0 {
            assert!(
                spread_at.elapsed() < Duration::from_secs(60),
                "agent {id} holds {:?} but the tenant applied no batch from it in 60 s (with \
                 {FULL_ENV}: the standby domains' operations fill its push window, ARCHITECTURE.md \
                 § The lease and fencing contract, 9):\n{}",
                by_holder(&spread).get(id),
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    converge(&domains, &t, converge_within).await;
    let all_equal_after = started.elapsed();
    // It stays so: a lease length (or more) after the spread nothing moved (same holders, epochs).
    tokio::time::sleep(LEASE.saturating_sub(spread_at.elapsed())).await;
    let (settled, _) = wait_for_leases(&t, &token, Duration::from_secs(10), "renewed", |l| {
        l.iter().all(|l| l.live)
    })
    .await;
    let key = |l: &[Lease]| -> Vec<(String, String, u64)> {
        l.iter()
            .map(|l| (l.domain.clone(), l.holder.clone(), l.epoch))
            .collect()
    };
    assert_eq!(key(&settled), key(&spread), "the spread is stable");
    // The tenant's agents resource, each agent's `agent status` and the portal say the same.
    assert_eq!(agents_hold(&t, &token).await, by_holder(&settled));
    for (c, id) in configs.iter().zip(&ids) {
        assert_status_shows(c, id, &settled);
    }
    assert_portal_shows(&t, &settled).await;
    assert_eq!(key(&leases(&t, &token).await), key(&spread), "still stable");
    eprintln!(
        "ha spread: 3 agents × 3 domains: every daemon's first heartbeat {:.1}s and their first reads and PHS cycles {:.1}s after their start; one lease each {:.1}s after the pairing (epochs {:?}), unchanged {:.1}s later; tenant = AD for all three domains {:.1}s after the pairing; set-up (DCs, worlds, registrations) {:.1}s",
        first_beats.as_secs_f64(),
        initial_work.as_secs_f64(),
        spread_after.as_secs_f64(),
        settled.iter().map(|l| l.epoch).collect::<Vec<_>>(),
        spread_at.elapsed().as_secs_f64(),
        all_equal_after.as_secs_f64(),
        prepared.as_secs_f64()
    );

    // 2. SIGKILL the holder of EAST; AD changes in EAST right after the kill.
    let east = &settled[settled
        .iter()
        .position(|l| l.domain == dcs[1].dns_domain)
        .unwrap()];
    let victim = ids.iter().position(|id| *id == east.holder).unwrap();
    daemons[victim].kill();
    let killed = Instant::now();
    let east_dc = &dcs[1];
    let marker = format!("after-kill-{}", std::process::id());
    east_dc.ldif_admin(&format!(
        "dn: CN=staff004,{}\nchangetype: modify\nreplace: title\ntitle: {marker}\n",
        east_dc.ou_dn("Staff")
    ));
    let mut rng = StdRng::seed_from_u64(15);
    let mut history: Vec<String> = (0..3)
        .map(|_| random_change(&mut rng, east_dc, &mut worlds[1]))
        .collect();
    let survivors: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, id)| id.clone())
        .collect();
    let (after_kill, _) = wait_for_leases(
        &t,
        &token,
        Duration::from_secs(60),
        "a survivor holds EAST",
        |l| {
            l.iter().any(|l| {
                l.domain == east.domain
                    && l.live
                    && survivors.contains(&l.holder)
                    && l.epoch > east.epoch
            })
        },
    )
    .await;
    let takeover = killed.elapsed();
    assert!(
        takeover <= TAKEOVER_BOUND,
        "EAST taken over {takeover:?} after the kill (bound {TAKEOVER_BOUND:?})"
    );
    // The survivors hold 2 + 1; the other two configurations did not move.
    let held = by_holder(&after_kill);
    let mut counts: Vec<usize> = survivors
        .iter()
        .map(|s| held.get(s).map_or(0, BTreeSet::len))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2], "{after_kill:#?}");
    for l in settled.iter().filter(|l| l.domain != east.domain) {
        assert!(
            after_kill
                .iter()
                .any(|a| a.domain == l.domain && a.holder == l.holder && a.epoch == l.epoch),
            "{} moved: {after_kill:#?}",
            l.domain
        );
    }
    let new_east = after_kill
        .iter()
        .find(|l| l.domain == east.domain)
        .unwrap()
        .clone();
    history.extend((0..2).map(|_| random_change(&mut rng, east_dc, &mut worlds[1])));
    wait_for_title(
        &t,
        &format!("staff004@{}", east_dc.dns_domain),
        &marker,
        Duration::from_secs(60),
    )
    .await;
    let marker_in = killed.elapsed();
    converge(&domains, &t, converge_within).await;
    let converged_2 = killed.elapsed();
    let taker = ids.iter().position(|id| *id == new_east.holder).unwrap();
    assert!(
        daemons[taker].log().contains("Lease taken"),
        "{}",
        daemons[taker].log()
    );
    eprintln!(
        "ha spread: SIGKILL of EAST's holder: taken over {:.1}s after the kill (epoch {} → {}, takeover image (operations, waited ms) {:?}), the survivors hold 2 + 1; the change made right after the kill in the tenant {:.1}s after the kill, tenant = AD for all three {:.1}s after the kill; changes: {}",
        takeover.as_secs_f64(),
        east.epoch,
        new_east.epoch,
        ha::takeover_image(&daemons[taker].log()),
        marker_in.as_secs_f64(),
        converged_2.as_secs_f64(),
        history.join("; ")
    );

    // 3. The killed agent comes back over its state. The spread rule moves only free leases: every
    //    lease is live and renewed, so it stands by for all three and the others keep 2 + 1.
    let stood_by_before = daemons[victim].log().matches("Standing by").count();
    let back = daemons[victim].restart();
    let restarted = Instant::now();
    back.wait_for_log_count("Standing by", stood_by_before + 3, Duration::from_secs(60))
        .await;
    let stood_by = restarted.elapsed();
    // Three lease lengths: every lease was renewed at least twice meanwhile, and none moved.
    tokio::time::sleep(3 * LEASE).await;
    let (later, _) = wait_for_leases(&t, &token, Duration::from_secs(10), "all live", |l| {
        l.iter().all(|l| l.live)
    })
    .await;
    assert_eq!(
        key(&later),
        key(&after_kill),
        "no lease moved to the returning agent"
    );
    assert!(!by_holder(&later).contains_key(&ids[victim]));
    assert_status_shows(&configs[victim], &ids[victim], &later);
    eprintln!(
        "ha spread: the killed agent restarted: standing by {:.1}s after its start; {:.0}s later it holds {} (holders' counts {:?}): no rebalancing",
        stood_by.as_secs_f64(),
        (3 * LEASE).as_secs_f64(),
        by_holder(&later).get(&ids[victim]).map_or(0, BTreeSet::len),
        by_holder(&later)
            .values()
            .map(BTreeSet::len)
            .collect::<Vec<_>>(),
    );

    // 4. Until a lease frees: SIGKILL the agent holding two. The returning agent holds fewer than
    //    the other survivor, so it takes the first freed lease, and then (1 against 1) the second
    //    too unless the other survivor heartbeats in between: 2 + 1 either way.
    let held = by_holder(&later);
    let second = ids
        .iter()
        .position(|id| held.get(id).is_some_and(|d| d.len() == 2))
        .unwrap();
    let other = ids
        .iter()
        .position(|id| held.get(id).is_some_and(|d| d.len() == 1))
        .unwrap();
    daemons[second].kill();
    let killed = Instant::now();
    let freed: BTreeSet<String> = held[&ids[second]].clone();
    let (after_second, _) = wait_for_leases(
        &t,
        &token,
        Duration::from_secs(60),
        "the freed leases are taken",
        |l| {
            l.iter()
                .filter(|l| freed.contains(&l.domain))
                .all(|l| l.live && l.holder != ids[second])
        },
    )
    .await;
    let takeover_2 = killed.elapsed();
    assert!(
        takeover_2 <= TAKEOVER_BOUND,
        "the freed leases taken {takeover_2:?} after the kill (bound {TAKEOVER_BOUND:?})"
    );
    let held_2 = by_holder(&after_second);
    let returning = held_2.get(&ids[victim]).map_or(0, BTreeSet::len);
    assert!(returning >= 1, "{after_second:#?}");
    assert_eq!(
        returning + held_2.get(&ids[other]).map_or(0, BTreeSet::len),
        3,
        "{after_second:#?}"
    );
    let converged_4 = converge(&domains, &t, converge_within).await;
    eprintln!(
        "ha spread: SIGKILL of the agent holding two: both taken {:.1}s after the kill; the returning agent holds {returning}, the other survivor {}; tenant = AD {:.1}s after the takeover (returning agent's takeover image (operations, waited ms) {:?}); test total {:.1}s",
        takeover_2.as_secs_f64(),
        3 - returning,
        converged_4.as_secs_f64(),
        ha::takeover_image(&back.log()),
        t0.elapsed().as_secs_f64()
    );
    drop(back);
    assert!(!t.log().contains("panicked"), "{}", t.log());
}
