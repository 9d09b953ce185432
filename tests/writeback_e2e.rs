//! Password writeback end to end: the lab DC, the real tenant, the agent installed and running as a
//! daemon. Oracles independent of the agent: `ldapwhoami` binds with the passwords, `ldapsearch` reads
//! `pwdLastSet`/`lockoutTime`, the tenant's own sign-in check, `journal replay --json`.
//!
//! - an admin reset through Graph (202 + operation → succeeded): the new password binds in AD, the old
//!   one does not, and the tenant's sign-in accepts the new one once password hash sync brings it back;
//! - a forced change at next sign-in (`PATCH passwordProfile`): `pwdLastSet` = 0;
//! - refusals with the real product's codes and nothing changed: a policy violation (33008 with
//!   Samba's reason), a disabled user (33005), a protected account (`adminCount=1`, 33004);
//! - self-service unlock of a user locked out by failed binds: `lockoutTime` 0, the password unchanged;
//! - writeback switched off (`agent writeback disable`): refused by the tenant, AD untouched;
//! - the agent stopped: the caller gets the timeout error and nothing is applied later;
//! - the journal holds one `writeback-answered` event per request with its code, and no password is
//!   in any file under the agent's prefix or in its log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_run::{Daemon, agent_stdin};
use common::lab::LabDc;
use serde_json::{Value, json};
use tenant_fixture::{DOMAIN, GA, TenantFixture, signin};

const METHOD: &str = "28c10230-6103-485e-b985-444c60001490";

/// `ldapwhoami` as `upn` with `password` (from a 0600 file): whether AD accepts it, and its error text.
fn ad_binds(dc: &LabDc, dir: &Path, upn: &str, password: &str) -> (bool, String) {
    let f = dir.join("bind.pw");
    std::fs::write(&f, password).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = Command::new("ldapwhoami")
        .args(["-x", "-H", &dc.ldaps_url, "-D", upn, "-y"])
        .arg(&f)
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&f);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ad_attr(dc: &LabDc, dn: &str, attr: &str) -> String {
    let o = Command::new("ldapsearch")
        .args(["-LLL", "-x", "-H", &dc.ldaps_url, "-D", &dc.admin_upn, "-w"])
        .arg(&dc.admin_password)
        .args(["-b", dn, "-s", "base", "(objectClass=*)", attr])
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{attr}: ")).map(str::to_string))
        .unwrap_or_default()
}

struct Env {
    t: TenantFixture,
    ga: String,
}

impl Env {
    async fn reset(&self, upn: &str, password: &str) -> reqwest::Response {
        self.t
            .client
            .post(self.t.at(&format!(
                "/v1.0/users/{upn}/authentication/methods/{METHOD}/resetPassword"
            )))
            .bearer_auth(&self.ga)
            .json(&json!({ "newPassword": password }))
            .send()
            .await
            .unwrap()
    }

    async fn patch(&self, upn: &str, password: &str, force: bool) -> (u16, Value) {
        let r = self
            .t
            .client
            .patch(self.t.at(&format!("/v1.0/users/{upn}")))
            .bearer_auth(&self.ga)
            .json(&json!({"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": force}}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn sspr(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .t
            .client
            .post(self.t.at(&format!("/{DOMAIN}/sspr/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

async fn eventually<F, Fut>(what: &str, within: Duration, log: &Path, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "{what}: not within {within:?}\n--- daemon log\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_resets_and_unlocks_are_written_into_ad_with_the_products_answers() {
    let dc = LabDc::start();
    // A short bounded wait for the stopped-agent case.
    let t = TenantFixture::start_with(&["--writeback-wait-secs", "8"]);
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("agent");
    let svc = tmp.path().join("svc.pw");
    std::fs::write(&svc, format!("{}\n", dc.svc_password)).unwrap();
    let p = prefix.to_str().unwrap();
    let scope = format!("projection.scope.ous=[\"OU=SyncUsers,{}\"]", dc.base_dn);
    let (code, out) = agent_run::install(
        &dc,
        &t,
        &prefix,
        GA,
        &[
            "--service-account",
            &dc.svc_upn,
            "--service-account-password-file",
            svc.to_str().unwrap(),
            "--set",
            &scope,
            "--set",
            "phs.enabled=true",
            "--set",
            "phs.interval_secs=10",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let config = prefix.join("etc/cloudsync/agent.toml");
    // Users a test makes disabled or protected, before the first sync.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n\n\
         dn: {}\nchangetype: modify\nreplace: adminCount\nadminCount: 1\n",
        dc.user_dn(7),
        dc.user_dn(8)
    ));
    let (code, out) = agent_stdin(
        &[
            "agent",
            "writeback",
            "enable",
            "--allow-unlock",
            "--prefix",
            p,
            "--admin-upn",
            GA.0,
            "--admin-password-file",
            "-",
        ],
        GA.1,
        "warn",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("password writeback on, unlock without reset on"),
        "{out}"
    );
    let log = tmp.path().join("daemon.log");
    let mut daemon = Daemon::start(&config, &[], &log);
    let e = Env {
        ga: t.user_token(GA).await,
        t,
    };
    let upn = |i: usize| format!("user{i:05}@{}", dc.dns_domain);
    let dir = tmp.path();

    // 1. An admin reset through Graph: 202, the operation succeeds once the agent answered.
    let new1 = "Wb-Reset-1!aA";
    let deadline = Instant::now() + Duration::from_secs(120);
    let location = loop {
        let r = e.reset(&upn(1), new1).await;
        if r.status() == 202 {
            break r.headers()["location"].to_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the first reset was not accepted (users synced, agent ready): {} {}\n--- daemon log\n{}",
            r.status(),
            r.text().await.unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let path = location[e.t.url.len()..].to_string();
    eventually(
        "the reset operation succeeds",
        Duration::from_secs(60),
        &log,
        || async {
            let op = e.t.get_json(&e.ga, &path).await;
            assert_ne!(op["status"], "failed", "{op}");
            op["status"] == "succeeded"
        },
    )
    .await;
    assert!(
        ad_binds(&dc, dir, &upn(1), new1).0,
        "AD accepts the new password"
    );
    assert!(
        !ad_binds(&dc, dir, &upn(1), "Init!Pass00001").0,
        "and not the old one"
    );
    // The round trip: password hash sync brings the new hash to the tenant.
    eventually(
        "the tenant signs in with the new password",
        Duration::from_secs(90),
        &log,
        || async { signin(&e.t, &upn(1), new1).await == 200 },
    )
    .await;
    assert_eq!(signin(&e.t, &upn(1), "Init!Pass00001").await, 401);

    // 2. A forced change at next sign-in.
    let (status, body) = e.patch(&upn(2), "Wb-Force-2!aA", true).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(ad_attr(&dc, &dc.user_dn(2), "pwdLastSet"), "0");
    let (ok, why) = ad_binds(&dc, dir, &upn(2), "Wb-Force-2!aA");
    assert!(
        !ok && why.contains("773"),
        "must change at next logon: {why}"
    );

    // 3. Refusals, each with its code; nothing changed in AD.
    let (status, body) = e.patch(&upn(3), "short", false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["innerError"]["writebackResultCode"], 33008,
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too short"),
        "AD's reason: {body}"
    );
    assert!(ad_binds(&dc, dir, &upn(3), "Init!Pass00003").0);
    let (status, body) = e.patch(&upn(7), "Wb-Disabled-7!aA", false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["innerError"]["writebackResultCode"], 33005,
        "{body}"
    );
    let (status, body) = e.patch(&upn(8), "Wb-Protected-8!aA", false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["innerError"]["writebackResultCode"], 33004,
        "{body}"
    );
    assert!(ad_binds(&dc, dir, &upn(8), "Init!Pass00008").0);

    // 4. Self-service unlock of a user locked out by failed binds; the password is unchanged.
    dc.samba_tool(&[
        "domain",
        "passwordsettings",
        "set",
        "--account-lockout-threshold=3",
    ])
    .unwrap();
    for _ in 0..4 {
        let _ = ad_binds(&dc, dir, &upn(9), "Wrong!Pass9");
    }
    let (ok, why) = ad_binds(&dc, dir, &upn(9), "Init!Pass00009");
    assert!(!ok && why.contains("775"), "locked out: {why}");
    let (status, body) = e
        .sspr("verificationCode", json!({"userPrincipalName": upn(9)}))
        .await;
    assert_eq!(status, 200, "{body}");
    let channel =
        e.t.get_json(
            &e.ga,
            format!("/api/v1/sspr/channel?userPrincipalName={}", upn(9)),
        )
        .await;
    let code = channel["value"].as_array().unwrap().last().unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = e
        .sspr("unlock", json!({"userPrincipalName": upn(9), "code": code}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 0, "{body}");
    assert_eq!(ad_attr(&dc, &dc.user_dn(9), "lockoutTime"), "0");
    assert!(
        ad_binds(&dc, dir, &upn(9), "Init!Pass00009").0,
        "the password is unchanged"
    );

    // 5. Writeback switched off: the tenant refuses; AD is untouched.
    let (code, out) = agent_stdin(
        &[
            "agent",
            "writeback",
            "disable",
            "--prefix",
            p,
            "--admin-upn",
            GA.0,
            "--admin-password-file",
            "-",
        ],
        GA.1,
        "warn",
    );
    assert_eq!(code, Some(0), "{out}");
    let (status, body) = e.patch(&upn(4), "Wb-Off-4!aA", false).await;
    assert_eq!(status, 403, "{body}");
    assert!(ad_binds(&dc, dir, &upn(4), "Init!Pass00004").0);

    // 6. The agent stopped: the caller gets the timeout; nothing is applied later.
    let (code, out) = agent_stdin(
        &[
            "agent",
            "writeback",
            "enable",
            "--prefix",
            p,
            "--admin-upn",
            GA.0,
            "--admin-password-file",
            "-",
        ],
        GA.1,
        "warn",
    );
    assert_eq!(code, Some(0), "{out}");
    daemon.stop();
    let (status, body) = e.patch(&upn(5), "Wb-Late-5!aA", false).await;
    assert_eq!(status, 504, "{body}");
    // Once the restarted agent answers a new request, it has polled the tenant: the timed-out one
    // would have come with it (requests are handed out together), and it did not.
    let mut daemon = Daemon::start(&config, &[], &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = e.patch(&upn(6), "Wb-After-6!aA", false).await;
        if status == 204 {
            break;
        }
        assert!(
            Instant::now() < deadline && (status == 503 || status == 504),
            "the restarted agent never answered: {status} {body}"
        );
    }
    assert!(ad_binds(&dc, dir, &upn(6), "Wb-After-6!aA").0);
    assert!(
        ad_binds(&dc, dir, &upn(5), "Init!Pass00005").0,
        "nothing applied after the timeout"
    );
    daemon.stop();

    // The journal: one answered event per request that reached the agent, with its code.
    let (code, out) = agent_stdin(
        &[
            "journal",
            "replay",
            prefix.join("var/lib/cloudsync/journal").to_str().unwrap(),
            "--json",
            "--kind",
            "writeback-answered",
        ],
        "",
        "warn",
    );
    assert_eq!(code, Some(0), "{out}");
    for (who, code) in [
        (upn(1), 0),
        (upn(2), 0),
        (upn(3), 33008),
        (upn(7), 33005),
        (upn(8), 33004),
        (upn(9), 0),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&who) && l.contains(&format!("\"code\":{code}"))),
            "no answered event for {who} with {code}:\n{out}"
        );
    }
    // No password in any file under the prefix, nor in the daemon's log.
    let secrets = [
        new1,
        "Wb-Force-2!aA",
        "Wb-Disabled-7!aA",
        "Wb-Protected-8!aA",
        "Wb-Late-5!aA",
        "Wb-After-6!aA",
    ];
    let mut stack: Vec<PathBuf> = vec![prefix.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                for s in secrets {
                    assert!(
                        !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                        "{s} in {}",
                        path.display()
                    );
                }
            }
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for s in secrets {
        assert!(!text.contains(s), "{s} in the daemon log");
    }
}
