//! End to end: a real lab DC and the real tenant, the real binary registering and running
//! `agent sync-once`; the tenant's Graph API is compared with AD (read with ldapsearch) attribute by
//! attribute and member by member, before and after a round of changes in AD. Registration, the
//! seeded Staff OU, refused old and disabled passwords and on-demand provisioning are checked here;
//! random rounds of every kind of change are `tests/e2e_differential.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::{BTreeMap, BTreeSet};

use agent_run::{ad_search, agent, graph_all, one, sync_once, text, write_config};
use common::lab::LabDc;
use serde_json::Value;
use tenant_fixture::{GA, HIA, TenantFixture, USER, signin};

/// Compares the tenant with AD in the scoped OUs; returns the number of users compared.
async fn assert_cloud_equals_ad(dc: &LabDc, t: &TenantFixture, ous: &[String]) -> usize {
    let user_attrs = [
        "objectGUID",
        "userPrincipalName",
        "displayName",
        "givenName",
        "sn",
        "mail",
        "userAccountControl",
        "sAMAccountName",
    ];
    let mut ad_users = BTreeMap::new();
    let mut ad_groups = BTreeMap::new();
    let mut anchor_by_dn = BTreeMap::new();
    for ou in ous {
        for (dn, e) in ad_search(
            dc,
            ou,
            "(&(objectCategory=person)(objectClass=user))",
            &user_attrs,
        ) {
            anchor_by_dn.insert(dn.to_ascii_lowercase(), one(&e, "objectguid"));
            ad_users.insert(one(&e, "objectguid").as_str().unwrap().to_owned(), e);
        }
        for (dn, e) in ad_search(
            dc,
            ou,
            "(objectClass=group)",
            &["objectGUID", "member", "displayName", "cn"],
        ) {
            anchor_by_dn.insert(dn.to_ascii_lowercase(), one(&e, "objectguid"));
            ad_groups.insert(one(&e, "objectguid").as_str().unwrap().to_owned(), e);
        }
    }
    let token = t.user_token(GA).await;
    let select = "$select=userPrincipalName,displayName,givenName,surname,mail,accountEnabled,onPremisesSamAccountName,onPremisesImmutableId&$top=999";
    let cloud_users: BTreeMap<String, Value> =
        graph_all(t, &token, &format!("/v1.0/users?{select}"))
            .await
            .into_iter()
            .map(|u| (u["onPremisesImmutableId"].as_str().unwrap().to_owned(), u))
            .collect();
    assert_eq!(
        cloud_users.keys().collect::<BTreeSet<_>>(),
        ad_users.keys().collect::<BTreeSet<_>>(),
        "the cloud's users are not AD's users in scope; extra: {:?}",
        cloud_users
            .iter()
            .filter(|(a, _)| !ad_users.contains_key(*a))
            .map(|(_, u)| u["userPrincipalName"].clone())
            .collect::<Vec<_>>()
    );
    for (anchor, e) in &ad_users {
        let c = &cloud_users[anchor];
        let uac: u32 = one(e, "useraccountcontrol")
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = [
            ("userPrincipalName", one(e, "userprincipalname")),
            ("displayName", one(e, "displayname")),
            ("givenName", one(e, "givenname")),
            ("surname", one(e, "sn")),
            ("mail", one(e, "mail")),
            ("accountEnabled", Value::Bool(uac & 2 == 0)),
            ("onPremisesSamAccountName", one(e, "samaccountname")),
        ];
        for (name, want) in expected {
            assert_eq!(
                c.get(name).unwrap_or(&Value::Null),
                &want,
                "{name} of {anchor}: {c}"
            );
        }
    }
    let cloud_groups = graph_all(t, &token, "/v1.0/groups?$top=999").await;
    let cloud_anchors: BTreeSet<String> = cloud_groups
        .iter()
        .map(|g| g["onPremisesImmutableId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        cloud_anchors,
        ad_groups.keys().cloned().collect(),
        "groups differ"
    );
    for g in &cloud_groups {
        let anchor = g["onPremisesImmutableId"].as_str().unwrap();
        let members: BTreeSet<String> = graph_all(
            t,
            &token,
            &format!(
                "/v1.0/groups/{}/members?$top=999",
                g["id"].as_str().unwrap()
            ),
        )
        .await
        .iter()
        .map(|m| m["onPremisesImmutableId"].as_str().unwrap().to_owned())
        .collect();
        let ad_members: BTreeSet<String> = ad_groups[anchor]
            .get("member")
            .into_iter()
            .flatten()
            .filter_map(|dn| anchor_by_dn.get(&dn.to_ascii_lowercase()))
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(members, ad_members, "members of group {anchor}");
    }
    ad_users.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_dc_to_tenant_stays_equal_through_changes() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let base = dc.base_dn.clone();
    dc.ldif_admin(&format!(
        "dn: OU=E2E,{base}\nchangetype: add\nobjectClass: organizationalUnit\n"
    ));
    let ous = vec![format!("OU=Staff,{base}"), format!("OU=E2E,{base}")];
    let config = write_config(&dc, &t, dir.path(), &ous);
    let cfg = config.to_str().unwrap();

    // Registration: wrong password, a plain user, then a Hybrid Identity Administrator.
    let o = agent(
        &["agent", "register", "--config", cfg, "--admin-upn", HIA.0],
        &[("CLOUDSYNC_ADMIN_PASSWORD", "wrong")],
    );
    assert!(
        !o.status.success() && text(&o).contains("AADSTS"),
        "{}",
        text(&o)
    );
    let o = agent(
        &["agent", "register", "--config", cfg, "--admin-upn", USER.0],
        &[("CLOUDSYNC_ADMIN_PASSWORD", USER.1)],
    );
    assert!(
        !o.status.success() && text(&o).contains("Hybrid Identity Administrator"),
        "{}",
        text(&o)
    );
    let o = agent(
        &["agent", "register", "--config", cfg, "--admin-upn", HIA.0],
        &[("CLOUDSYNC_ADMIN_PASSWORD", HIA.1)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let creds = dir.path().join("credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );

    sync_once(&config);
    let users = assert_cloud_equals_ad(&dc, &t, &ous).await;
    assert_eq!(users, common::lab::STAFF_USERS, "the Staff OU's users");
    // Password hash sync through the whole pipeline (DRSR -> journal -> projection -> push): every
    // scoped user signs in to the tenant with its AD password, and not with a wrong one.
    for i in 1..=common::lab::STAFF_USERS {
        let sam = format!("staff{i:03}");
        let upn = format!("{sam}@{}", dc.dns_domain);
        assert_eq!(
            signin(&t, &upn, &common::lab::seeded_password(&sam)).await,
            200,
            "{sam}"
        );
        assert_eq!(signin(&t, &upn, "Wrong!Pass123").await, 401, "{sam}");
    }

    // One round of changes, for what the differential test (tests/e2e_differential.rs, which covers
    // attribute set/replace/clear, creates, deletes, moves, memberships and sign-in with the current
    // password in random rounds) does not check: the OLD password is refused after a reset, a disabled
    // user is refused, and an out-of-scope user can be provisioned on demand.
    let staff = |i: usize| format!("CN=staff{i:03},OU=Staff,{base}");
    dc.ldif_admin(&format!(
        "dn: {s3}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n\n\
         dn: {s6}\nchangetype: modrdn\nnewrdn: CN=staff006\ndeleteoldrdn: 1\nnewsuperior: OU=SyncUsers,{base}\n\n\
         dn: {s7}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {pw7}\n",
        s7 = staff(7),
        pw7 = common::lab::unicode_pwd_base64("After!Reset007"),
        s3 = staff(3),
        s6 = staff(6),
    ));
    sync_once(&config);
    let users = assert_cloud_equals_ad(&dc, &t, &ous).await;
    // -staff006 (moved out of scope).
    assert_eq!(users, common::lab::STAFF_USERS - 1);
    // The reset password replaces the old one in the cloud; the disabled user is refused.
    let upn7 = format!("staff007@{}", dc.dns_domain);
    assert_eq!(
        signin(&t, &upn7, "After!Reset007").await,
        200,
        "new password"
    );
    assert_eq!(
        signin(&t, &upn7, &common::lab::seeded_password("staff007")).await,
        401,
        "old password"
    );
    let upn3 = format!("staff003@{}", dc.dns_domain);
    assert_eq!(
        signin(&t, &upn3, &common::lab::seeded_password("staff003")).await,
        401,
        "disabled"
    );
    let token = t.user_token(GA).await;
    let gone = t
        .client
        .get(t.at("/v1.0/users/staff006@corp.example.test"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        404,
        "a user moved out of scope is deleted in the cloud"
    );

    // On-demand provisioning of the out-of-scope user: four steps printed, then pushed.
    let dn = format!("CN=staff006,OU=SyncUsers,{base}");
    let o = agent(&["agent", "provision", "--dn", &dn, "--config", cfg], &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for step in ["Import", "Scope", "Match", "Action"] {
        assert!(
            out.lines().any(|l| l.starts_with(step)),
            "no {step} step in:\n{out}"
        );
    }
    let back = t
        .client
        .get(t.at("/v1.0/users/staff006@corp.example.test"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200, "provisioned on demand:\n{out}");
}
