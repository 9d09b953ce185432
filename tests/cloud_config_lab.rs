//! Configuration from the cloud, end to end: a running `agent run` against the lab DC and the real
//! tenant follows what the admin sets in the tenant, without a restart. The configuration's scope
//! set to one OU (with a delete threshold of 0 and a jobTitle mapping from an expression) deletes the
//! users outside it from the cloud (Graph 404) and sends the new jobTitle to the users inside it;
//! the scope put back brings the others back. The agent's provisioning log names the reason
//! ("ConfigurationChanged", "scope, …, revision N") and the tenant's provisioning log shows the
//! deletes. A spec the agent cannot compile is refused and the settings in force stay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use cloudsync_agent::event::Guid;
use cloudsync_agent::projection::store::ProjectionStore;
use common::lab::LabDc;
use serde_json::{Value, json};
use tenant_fixture::{GA, HIA, TENANT_ID, TenantFixture};

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(args)
        .env("CLOUDSYNC_ADMIN_PASSWORD", HIA.1)
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap()
}

/// Stops the daemon on drop (a failed assertion must not leave it running).
struct Daemon(Child);

impl Daemon {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "agent run did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

/// Polls Graph for `upn` until `ready` holds for (status, body), at most `secs`.
async fn wait_user(
    t: &TenantFixture,
    token: &str,
    upn: &str,
    secs: u64,
    dir: &Path,
    what: &str,
    ready: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = t
            .client
            .get(t.at(&format!(
                "/v1.0/users/{upn}?$select=jobTitle,displayName,onPremisesImmutableId"
            )))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if ready(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{upn}: {what} never happened (last {status} {body}); agent log:\n{}",
            log(dir)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn put_spec(t: &TenantFixture, admin: &str, id: &str, spec: &Value) -> Value {
    let r = t
        .client
        .put(t.at(&format!("/api/v1/configurations/{id}")))
        .bearer_auth(admin)
        .json(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scope_and_mapping_change_in_the_tenant_reaches_the_running_agent() {
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("state/journal");
    let config = dir.path().join("agent.toml");
    let toml = format!(
        "{}notifications = false\n[tenant]\nurl = {:?}\nca_file = {:?}\ntenant_id = {TENANT_ID:?}\ncredentials_file = {:?}\n[push]\nheartbeat_interval_secs = 1\nprojection_tick_ms = 100\n",
        ldap_support::config_toml(&dc, &journal, ""),
        t.url,
        t.dir.path().join("ca.pem").display().to_string(),
        dir.path().join("credentials.json").display().to_string(),
    );
    std::fs::write(&config, toml).unwrap();
    let cfg = config.to_str().unwrap();
    let o = cli(&["agent", "register", "--config", cfg, "--admin-upn", HIA.0]);
    assert!(o.status.success(), "{o:?}");
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    let domain = dc.dns_domain.to_ascii_lowercase();
    let id = creds["configurations"][&domain]
        .as_str()
        .unwrap()
        .to_owned();

    let agent_log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_cloudsync"))
            .args(["agent", "run", "--config", cfg])
            .env("CLOUDSYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(agent_log)
            .spawn()
            .unwrap(),
    );
    let graph = t.user_token(GA).await;
    let admin = t.user_token(HIA).await;
    let outside = format!("user00001@{domain}");
    let inside = format!("staff001@{domain}");
    let present = |s: u16, _: &Value| s == 200;
    let gone = |s: u16, _: &Value| s == 404;
    let outside_user = wait_user(
        &t,
        &graph,
        &outside,
        300,
        dir.path(),
        "initial sync",
        present,
    )
    .await;
    wait_user(
        &t,
        &graph,
        &inside,
        120,
        dir.path(),
        "initial sync",
        present,
    )
    .await;
    let anchor = outside_user["onPremisesImmutableId"]
        .as_str()
        .unwrap()
        .to_owned();

    // One OU, no delete protection (a thousand users leave), jobTitle from an expression.
    let staff = dc.ou_dn("Staff");
    let spec = json!({
        "domain": dc.dns_domain,
        "scope": {"organizationalUnits": [staff]},
        "mappings": [{"target": "jobTitle", "source": "Join(\"/\", \"cfg\", [sAMAccountName])"}],
        "passwordHashSync": true,
        "deleteThreshold": 0
    });
    let scoped = put_spec(&t, &admin, &id, &spec).await;
    let scoped_revision = scoped["revision"].as_u64().unwrap();
    wait_user(
        &t,
        &graph,
        &outside,
        180,
        dir.path(),
        "delete when out of scope",
        gone,
    )
    .await;
    wait_user(
        &t,
        &graph,
        &inside,
        60,
        dir.path(),
        "jobTitle mapping",
        |s, b| s == 200 && b["jobTitle"] == json!("cfg/staff001"),
    )
    .await;

    // A spec the agent cannot compile (an OU of another domain): refused, the scope stays.
    let mut bad = spec.clone();
    bad["scope"]["organizationalUnits"] = json!(["OU=Staff,DC=elsewhere,DC=test"]);
    put_spec(&t, &admin, &id, &bad).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log(dir.path()).contains("The tenant's configuration was refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(log(dir.path()).contains("not inside the domain"));
    // `agent status` (the daemon's status file) names the refusal and the revision in force.
    let status_file = dir.path().join("state/agent-status.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let refused = status["attention"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["message"].as_str().unwrap_or("").contains("was refused"));
        if refused {
            let cloud = &status["domains"][0]["cloud"];
            assert_eq!(cloud["revision"], json!(scoped_revision), "{status}");
            assert_eq!(cloud["passwordWriteback"], json!(false), "{status}");
            // The text form says the same to an admin.
            let o = cli(&["agent", "status", "--config", cfg]);
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains(&format!(
                    "settings from the tenant: revision {scoped_revision}; scope from the tenant;"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!("(revision {scoped_revision} stays in force)")),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refusal in the status: {status}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The whole domain again: the user comes back, without a restart.
    let mut back = spec.clone();
    back["scope"] = json!({"organizationalUnits": [], "groups": []});
    let back_revision = put_spec(&t, &admin, &id, &back).await["revision"]
        .as_u64()
        .unwrap();
    wait_user(
        &t,
        &graph,
        &outside,
        180,
        dir.path(),
        "back in scope",
        present,
    )
    .await;
    wait_user(
        &t,
        &graph,
        &outside,
        60,
        dir.path(),
        "jobTitle for all",
        |s, b| s == 200 && b["jobTitle"] == json!("cfg/user00001"),
    )
    .await;

    // The tenant's provisioning log shows the delete of the user that left the scope.
    let logs = t
        .get_json(
            &admin,
            format!("/api/v1/provisioningLogs?sourceAnchor={}&top=50", {
                let mut s = String::new();
                for b in anchor.bytes() {
                    if b.is_ascii_alphanumeric() {
                        s.push(b as char);
                    } else {
                        s.push_str(&format!("%{b:02X}"));
                    }
                }
                s
            }),
        )
        .await;
    let actions: Vec<&str> = logs["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"delete"), "{logs}");
    // The tenant's provisioning log says why: the delete came from the scope change, not from AD.
    let delete = logs["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "delete")
        .unwrap();
    let reason = delete["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("ConfigurationChanged: ") && reason.contains("scope"),
        "{delete}"
    );
    daemon.stop();

    // The agent's provisioning log names why the user changed, with the revisions.
    let guid_bytes = base64::engine::general_purpose::STANDARD
        .decode(&anchor)
        .unwrap();
    let guid = Guid(guid_bytes.try_into().unwrap());
    let store = ProjectionStore::open(&dir.path().join("state/projection")).unwrap();
    let entries = store.provlog().for_object(guid).unwrap();
    let reasons: Vec<&str> = entries
        .iter()
        .filter(|e| e.outcome == "ConfigurationChanged")
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|d| d.starts_with("scope") && d.ends_with(&format!("revision {scoped_revision}"))),
        "{entries:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|d| d.starts_with("scope") && d.ends_with(&format!("revision {back_revision}"))),
        "{entries:?}"
    );
}

/// `passwordHashSync` switched off in the tenant stops the running agent's hash pushes for the
/// domain (a password changed in AD meanwhile does not reach the cloud: the old password still
/// signs in, the new one does not); switched on again, the change is caught up without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn password_hash_sync_follows_the_tenant_switch() {
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    // Polling sign-ins until a hash arrives fails many times: no smart lockout here.
    let t = TenantFixture::start_with(&["--lockout-threshold", "100000"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("state/journal");
    let config = dir.path().join("agent.toml");
    let toml = format!(
        "{}[tenant]\nurl = {:?}\nca_file = {:?}\ntenant_id = {TENANT_ID:?}\ncredentials_file = {:?}\n[push]\nheartbeat_interval_secs = 1\nprojection_tick_ms = 100\n[phs]\nenabled = true\ninterval_secs = 3600\n",
        ldap_support::config_toml(&dc, &journal, ""),
        t.url,
        t.dir.path().join("ca.pem").display().to_string(),
        dir.path().join("credentials.json").display().to_string(),
    );
    std::fs::write(&config, toml).unwrap();
    let cfg = config.to_str().unwrap();
    let o = cli(&["agent", "register", "--config", cfg, "--admin-upn", HIA.0]);
    assert!(o.status.success(), "{o:?}");
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    let domain = dc.dns_domain.to_ascii_lowercase();
    let id = creds["configurations"][&domain]
        .as_str()
        .unwrap()
        .to_owned();
    let agent_log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_cloudsync"))
            .args(["agent", "run", "--config", cfg])
            .env("CLOUDSYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(agent_log)
            .spawn()
            .unwrap(),
    );
    let admin = t.user_token(HIA).await;
    let upn = format!("staff002@{domain}");
    let old = common::lab::seeded_password("staff002");
    let new = "Switch!Pass0002";
    let wait_signin = |password: String, want: u16, what: &'static str| {
        let (t, upn, dir) = (&t, upn.clone(), dir.path().to_path_buf());
        async move {
            let deadline = Instant::now() + Duration::from_secs(240);
            loop {
                let got = tenant_fixture::signin(t, &upn, &password).await;
                if got == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: sign-in answered {got}, not {want}; agent log:\n{}",
                    log(&dir)
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    wait_signin(old.clone(), 200, "the seeded hash synced").await;

    let spec = |phs: bool| {
        json!({
            "domain": dc.dns_domain,
            "passwordHashSync": phs,
            "deleteThreshold": 500
        })
    };
    put_spec(&t, &admin, &id, &spec(false)).await;
    // The daemon's status file shows the switch in force.
    let status_file = dir.path().join("state/agent-status.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        if status["domains"][0]["cloud"]["passwordHashSync"] == json!(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the switch never showed in the status file: {status}\n{}",
            log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let skips = || {
        log(dir.path())
            .matches("switched off in the tenant for this domain; cycle skipped")
            .count()
    };
    let before = skips();
    dc.ldif_admin(&format!(
        "dn: CN=staff002,{}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.ou_dn("Staff"),
        common::lab::unicode_pwd_base64(new)
    ));
    // The feed's password-change signal reaches the PHS task, which skips its cycle.
    let deadline = Instant::now() + Duration::from_secs(120);
    while skips() <= before {
        assert!(
            Instant::now() < deadline,
            "no skipped cycle after the password change:\n{}",
            log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(tenant_fixture::signin(&t, &upn, new).await, 401);
    assert_eq!(tenant_fixture::signin(&t, &upn, &old).await, 200);

    put_spec(&t, &admin, &id, &spec(true)).await;
    wait_signin(new.to_string(), 200, "caught up after switching on").await;
    daemon.stop();
}

/// `agent sync-once` reads the tenant's configuration before its feed pass: a scope change since the
/// last run makes that pass a full read, so users outside the new scope leave the cloud at once.
#[tokio::test(flavor = "multi_thread")]
async fn sync_once_applies_a_scope_change_to_unchanged_objects() {
    cloudsync_private_fs::restrict_umask();
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("state/journal");
    let config = dir.path().join("agent.toml");
    let toml = format!(
        "{}[tenant]\nurl = {:?}\nca_file = {:?}\ntenant_id = {TENANT_ID:?}\ncredentials_file = {:?}\n",
        ldap_support::config_toml(&dc, &journal, "notifications = false\n"),
        t.url,
        t.dir.path().join("ca.pem").display().to_string(),
        dir.path().join("credentials.json").display().to_string(),
    );
    std::fs::write(&config, toml).unwrap();
    let cfg = config.to_str().unwrap();
    let o = cli(&["agent", "register", "--config", cfg, "--admin-upn", HIA.0]);
    assert!(o.status.success(), "{o:?}");
    let o = cli(&["agent", "sync-once", "--config", cfg]);
    assert!(o.status.success(), "{o:?}");
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    let domain = dc.dns_domain.to_ascii_lowercase();
    let id = creds["configurations"][&domain]
        .as_str()
        .unwrap()
        .to_owned();
    let graph = t.user_token(GA).await;
    let status = |upn: String| {
        let (t, graph) = (&t, graph.clone());
        async move {
            t.client
                .get(t.at(&format!("/v1.0/users/{upn}")))
                .bearer_auth(&graph)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let outside = format!("user00001@{domain}");
    let inside = format!("staff001@{domain}");
    assert_eq!(status(outside.clone()).await, 200);

    let admin = t.user_token(HIA).await;
    put_spec(
        &t,
        &admin,
        &id,
        &json!({
            "domain": dc.dns_domain,
            "scope": {"organizationalUnits": [dc.ou_dn("Staff")]},
            "passwordHashSync": true,
            "deleteThreshold": 0
        }),
    )
    .await;
    let o = cli(&["agent", "sync-once", "--config", cfg]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        status(outside).await,
        404,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(status(inside).await, 200);
}
