//! Password hash sync against both real servers: lab DC → `PhsCycle` (MS-DRSR as the non-admin sync
//! account) → on-disk journal → the tenant (HTTPS) → its sign-in check.
//!
//! Until projection and push are on main, a small bridge in this test turns the journal's
//! `PasswordHashChanged` events into `setPasswordHash` operations (anchor = objectGUID hex, one user
//! upsert per account). Everything else is production code; the expected passwords come from the
//! seed pattern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::HashMap;
use std::time::Duration;

use cloudsync_agent::event::Event;
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::phs::{FipsSettings, HashPool, OrgIdHash};
use cloudsync_agent::source::drsr::DrsrSettings;
use cloudsync_agent::source::drsr::ntlm::Credentials;
use cloudsync_agent::source::phs::cycle::{PhsCycle, PhsSource};
use common::lab::{self, LabDc};
use serde_json::{Value, json};
use tenant_fixture::{DOMAIN, TenantFixture, batch, setup, signin, statuses, user_upsert};

fn upn(sam: &str) -> String {
    format!("{sam}@{DOMAIN}")
}

/// The bridge: journal events from `from` → (anchor, credential) for seeded accounts.
fn hash_ops(
    journal: &Journal,
    from: u64,
    names: &HashMap<[u8; 16], String>,
) -> Vec<(String, String)> {
    journal
        .read(from)
        .map(|r| r.unwrap())
        .filter_map(|r| match r.event {
            Event::PasswordHashChanged {
                guid, org_id_hash, ..
            } => names
                .get(&guid.0)
                .filter(|sam| sam.starts_with("user") || sam.starts_with("staff"))
                .map(|sam| (sam.clone(), org_id_hash)),
            _ => None,
        })
        .collect()
}

async fn push(t: &TenantFixture, agent: &str, config: &str, ops: Vec<Value>) {
    for chunk in ops.chunks(200) {
        let (status, body) = t.post_batch(agent, config, &batch(chunk.to_vec())).await;
        assert_eq!(status, 200, "{body}");
        assert!(statuses(&body).iter().all(|s| s == "success"), "{body}");
    }
}

#[test]
fn ad_passwords_sign_in_to_the_tenant_and_follow_resets() {
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fips_off = dir.path().join("fips_enabled");
    std::fs::write(&fips_off, "0\n").unwrap();
    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    let source = PhsSource::Drsr(DrsrSettings {
        dc: dc.ip.to_string(),
        port: None,
        nc_dn: dc.base_dn.clone(),
        credentials: Credentials {
            user: dc.svc_sam_account_name().to_owned(),
            domain: dc.netbios_domain.clone(),
            nt_hash: NtHash::from_password(&dc.svc_password),
        },
        timeout: Duration::from_secs(30),
        page_objects: 1000,
        partial_attribute_set: true,
    });
    let cycle = PhsCycle::new(
        journal.clone(),
        HashPool::with_all_cores().unwrap(),
        dc.dns_domain.clone(),
        source,
        &FipsSettings::default(),
        &fips_off,
    )
    .unwrap();

    rt.block_on(async {
        let names = dc.sam_by_guid().await;
        let (_, agent, config) = setup(
            &t,
            json!({"domain": "corp.example.com", "passwordHashSync": true}),
        )
        .await;
        cycle.run_once().await.unwrap();
        let synced = hash_ops(&journal, 0, &names);
        assert_eq!(synced.len(), lab::TEMPLATE_USERS + lab::STAFF_USERS);
        let mut version = 1u64;
        let mut ops = Vec::new();
        for (sam, credential) in &synced {
            ops.push(user_upsert(sam, version, &upn(sam), sam));
            ops.push(
                json!({"op": "setPasswordHash", "sourceAnchor": sam, "version": version + 1,
                            "credential": credential}),
            );
            version += 2;
        }
        push(&t, &agent.token, &config, ops).await;

        // Every seeded account's AD password signs in; a wrong one does not.
        for (sam, _) in &synced {
            assert_eq!(
                signin(&t, &upn(sam), &lab::seeded_password(sam)).await,
                200,
                "{sam}"
            );
            assert_eq!(signin(&t, &upn(sam), "Wrong!Pass123").await, 401, "{sam}");
        }

        // An AD reset: after one cycle the new password passes and the old one fails.
        dc.ldif_admin(&format!(
            "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
            dc.user_dn(9),
            lab::unicode_pwd_base64("After!Reset009")
        ));
        let before = journal.last_seq().unwrap();
        cycle.run_once().await.unwrap();
        let delta = hash_ops(&journal, before + 1, &names);
        assert_eq!(delta.len(), 1);
        push(
            &t,
            &agent.token,
            &config,
            vec![json!({"op": "setPasswordHash",
            "sourceAnchor": delta[0].0, "version": version, "credential": delta[0].1})],
        )
        .await;
        version += 1;
        assert_eq!(signin(&t, &upn("user00009"), "After!Reset009").await, 200);
        assert_eq!(
            signin(&t, &upn("user00009"), &lab::seeded_password("user00009")).await,
            401
        );

        // A disabled account: its hash still syncs, the cloud refuses the sign-in.
        dc.ldif_admin(&format!(
            "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n",
            dc.user_dn(10),
        ));
        let mut disabled = user_upsert("user00010", version, &upn("user00010"), "user00010");
        disabled["attributes"]["accountEnabled"] = json!(false);
        push(&t, &agent.token, &config, vec![disabled]).await;
        version += 1;
        assert_eq!(
            signin(&t, &upn("user00010"), &lab::seeded_password("user00010")).await,
            401
        );
        // Its password changes while disabled: the new hash still syncs (and verifies), sign-in stays refused.
        dc.ldif_admin(&format!(
            "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
            dc.user_dn(10),
            lab::unicode_pwd_base64("While!Disabled10")
        ));
        let before = journal.last_seq().unwrap();
        cycle.run_once().await.unwrap();
        let delta = hash_ops(&journal, before + 1, &names);
        assert_eq!(
            delta.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
            ["user00010"]
        );
        let h: OrgIdHash = delta[0].1.parse().unwrap();
        assert!(h.matches(&NtHash::from_password("While!Disabled10")));
        push(
            &t,
            &agent.token,
            &config,
            vec![json!({"op": "setPasswordHash",
            "sourceAnchor": "user00010", "version": version, "credential": delta[0].1})],
        )
        .await;
        assert_eq!(signin(&t, &upn("user00010"), "While!Disabled10").await, 401);
    });
}
