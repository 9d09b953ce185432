//! End to end: a real lab DC and the real tenant, the real binary registering and running
//! `agent sync-once`; the tenant's Graph API is compared with AD (read with ldapsearch) attribute by
//! attribute and member by member, before and after a round of changes in AD.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use common::lab::LabDc;
use serde_json::Value;
use tenant_fixture::{GA, HIA, TENANT_ID, TenantFixture, USER};

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
    cmd.args(args).env("CLOUDSYNC_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_config(dc: &LabDc, t: &TenantFixture, dir: &Path, ous: &[String]) -> PathBuf {
    let path = dir.join("agent.toml");
    let ous: Vec<String> = ous.iter().map(|o| format!("{o:?}")).collect();
    std::fs::write(
        &path,
        format!(
            r#"
[agent]
journal_dir = "{journal}"
[domains.corp]
dns_name = "{dns}"
url = "{url}"
ca_file = "{ca}"
bind_dn = "{svc}"
password = "{pw}"
notifications = false
[tenant]
url = "{turl}"
ca_file = "{tca}"
tenant_id = "{TENANT_ID}"
credentials_file = "{creds}"
[projection.scope]
ous = [{ous}]
[phs]
enabled = true
"#,
            journal = dir.join("journal").display(),
            dns = dc.dns_domain,
            url = dc.ldaps_url,
            ca = dc.ca_file.display(),
            // The sync service account, as in production: lab.sh grants it read on
            // CN=Deleted Objects so DirSync shows it tombstones (docs/lab.md).
            svc = dc.svc_upn,
            pw = dc.svc_password,
            turl = t.url,
            tca = t.dir.path().join("ca.pem").display(),
            creds = dir.join("credentials.json").display(),
            ous = ous.join(", "),
        ),
    )
    .unwrap();
    path
}

/// One AD entry: attribute name (lower case) → values (binary ones base64).
type Entry = BTreeMap<String, Vec<String>>;

/// ldapsearch as Administrator under `base`; entries by DN.
fn ad_search(dc: &LabDc, base: &str, filter: &str, attrs: &[&str]) -> BTreeMap<String, Entry> {
    let out = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &dc.ldaps_url])
        .args(["-D", &dc.admin_upn, "-w", &dc.admin_password])
        .args(["-E", "pr=500/noprompt", "-b", base, filter])
        .args(attrs)
        .output()
        .unwrap();
    assert!(out.status.success(), "ldapsearch: {}", text(&out));
    let mut entries = BTreeMap::new();
    let mut dn = String::new();
    let mut entry = Entry::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.is_empty() {
            if !dn.is_empty() {
                entries.insert(std::mem::take(&mut dn), std::mem::take(&mut entry));
            }
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let value = match rest.strip_prefix(':') {
            Some(b64) if name != "objectGUID" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            }
            Some(b64) => b64.trim().to_owned(),
            None => rest.trim_start().to_owned(),
        };
        if name == "dn" {
            dn = value;
        } else if !name.starts_with('#') {
            entry
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(value);
        }
    }
    if !dn.is_empty() {
        entries.insert(dn, entry);
    }
    entries
}

fn one(e: &Entry, name: &str) -> Value {
    e.get(name)
        .and_then(|v| v.first())
        .map_or(Value::Null, |v| Value::String(v.clone()))
}

/// Every page of a Graph collection.
async fn graph_all(t: &TenantFixture, token: &str, first: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(t.at(first));
    while let Some(url) = next {
        let r = t.client.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let page: Value = r.json().await.unwrap();
        out.extend(page["value"].as_array().unwrap().iter().cloned());
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    out
}

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

fn sync_once(config: &Path) -> String {
    let o = agent(
        &[
            "agent",
            "sync-once",
            "--config",
            config.to_str().unwrap(),
            "--push-timeout-secs",
            "120",
        ],
        &[],
    );
    let out = text(&o);
    assert!(o.status.success(), "sync-once failed:\n{out}");
    assert!(out.contains("summary:"), "{out}");
    out
}

/// The tenant's sign-in check: 200 when `password` matches the user's synced salted hash.
async fn signin(t: &TenantFixture, upn: &str, password: &str) -> u16 {
    t.client
        .post(t.at(&format!("/{}/signin", tenant_fixture::DOMAIN)))
        .json(&serde_json::json!({"userPrincipalName": upn, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
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

    // A round of changes.
    let staff = |i: usize| format!("CN=staff{i:03},OU=Staff,{base}");
    dc.ldif_admin(&format!(
        "dn: CN=e2e1,OU=E2E,{base}\nchangetype: add\nobjectClass: user\nsAMAccountName: e2e1\n\
         userPrincipalName: e2e1@{dns}\ngivenName: Eve\nsn: Two\ndisplayName: Eve Two\nmail: e2e1@{dns}\n\n\
         dn: {s1}\nchangetype: modify\nreplace: displayName\ndisplayName: Renamed One\n-\nreplace: mail\nmail: renamed1@{dns}\n\n\
         dn: {s2}\nchangetype: modrdn\nnewrdn: CN=staff002\ndeleteoldrdn: 1\nnewsuperior: OU=E2E,{base}\n\n\
         dn: {s3}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n\n\
         dn: {s4}\nchangetype: delete\n\n\
         dn: CN=staff,OU=Staff,{base}\nchangetype: modify\nadd: member\nmember: CN=e2e1,OU=E2E,{base}\n-\ndelete: member\nmember: {s5}\n\n\
         dn: {s6}\nchangetype: modrdn\nnewrdn: CN=staff006\ndeleteoldrdn: 1\nnewsuperior: OU=SyncUsers,{base}\n\n\
         dn: {s7}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {pw7}\n",
        dns = dc.dns_domain,
        s7 = staff(7),
        pw7 = common::lab::unicode_pwd_base64("After!Reset007"),
        s1 = staff(1), s2 = staff(2), s3 = staff(3), s4 = staff(4), s5 = staff(5), s6 = staff(6),
    ));
    let out = sync_once(&config);
    assert!(
        out.contains("object-deleted=1"),
        "the delete was not read: {out}"
    );
    let users = assert_cloud_equals_ad(&dc, &t, &ous).await;
    // +e2e1, -staff004 (deleted), -staff006 (moved out of scope); staff002 moved within scope.
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
