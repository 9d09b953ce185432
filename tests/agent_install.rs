//! `cloudsync agent install --unattended` and its cmdlets against the real parts: a lab DC and the
//! real tenant, the real binary, everything under a temporary `--prefix`.
//!
//! - refusals first, each with its exit code and the fix named: a plain user as the admin (the role
//!   it has and the roles needed), a typo in the domain name (the DC's naming context differs), a
//!   domain admin whose password must be changed (`pwdLastSet=0` set here: reconfigure with the new
//!   credentials), a secret on stdin twice, on-premises app provisioning (not available yet);
//! - the install: exit 0, "successfully verified", the files and their modes, no secret in the
//!   configuration, the units written and the commands printed (no systemd here), the agent Active
//!   in the tenant;
//! - re-install keeps the agent id and pins the release key (`--release-public-key`; a malformed key
//!   refused); `phs disable|enable` flips the tenant configuration;
//!   `permissions check --type password-hash-sync` passes for the installed account; uninstall removes the
//!   registration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::lab::{LabDc, unicode_pwd_base64};
use serde_json::Value;
use tenant_fixture::{HIA, TENANT_ID, TenantFixture, USER};

/// Runs the binary with `args`, `stdin` piped in.
fn run(args: &[String], stdin: &str) -> (Option<i32>, String) {
    run_env(args, stdin, None)
}

/// [`run`] with `ENVIRONMENTNAME` set (or removed).
fn run_env(args: &[String], stdin: &str, environment_name: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
    match environment_name {
        Some(e) => cmd.env("ENVIRONMENTNAME", e),
        None => cmd.env_remove("ENVIRONMENTNAME"),
    };
    let mut child = cmd
        .args(args)
        .env("CLOUDSYNC_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o: Output = child.wait_with_output().unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn secret_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

struct Setup {
    prefix: PathBuf,
    secrets: tempfile::TempDir,
}

impl Setup {
    /// The unattended install's arguments; the admin password comes on stdin.
    fn install(
        &self,
        dc: &LabDc,
        t: &TenantFixture,
        admin: &str,
        domain: &str,
        domain_admin: &str,
    ) -> Vec<String> {
        let s = self.secrets.path();
        [
            "agent",
            "install",
            "--unattended",
            "--accept-license",
            "--prefix",
            self.prefix.to_str().unwrap(),
            "--tenant-url",
            &t.url,
            "--tenant-ca-file",
            t.dir.path().join("ca.pem").to_str().unwrap(),
            "--tenant-id",
            TENANT_ID,
            "--admin-upn",
            admin,
            "--admin-password-file",
            "-",
            "--service-account",
            &dc.svc_upn,
            "--service-account-password-file",
            &secret_file(s, "svc.pw", &dc.svc_password),
            "--domain",
            &format!("{domain}={}", dc.ldaps_url),
            "--dc-ca-file",
            dc.ca_file.to_str().unwrap(),
            "--domain-admin",
            domain_admin,
            "--domain-admin-password-file",
            &secret_file(
                s,
                "da.pw",
                if domain_admin == dc.admin_upn {
                    &dc.admin_password
                } else {
                    "Expired!Admin1"
                },
            ),
            "--set",
            "metrics.listen=127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn installed(&self, cmd: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "--prefix",
                self.prefix.to_str().unwrap(),
                "--admin-upn",
                HIA.0,
                "--admin-password-file",
                "-",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    }
}

async fn agents(t: &TenantFixture) -> Vec<Value> {
    let admin = t.user_token(HIA).await;
    t.get_json(&admin, "/api/v1/agents").await["value"]
        .as_array()
        .unwrap()
        .clone()
}

fn creds(prefix: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(prefix.join("var/lib/cloudsync/credentials.json")).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn unattended_install_update_cmdlets_and_uninstall() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let root = tempfile::tempdir().unwrap();
    let setup = Setup {
        prefix: root.path().join("p"),
        secrets: tempfile::tempdir().unwrap(),
    };
    let pfx = &setup.prefix;

    // A plain user is refused at the sign-in step, naming the roles.
    let (code, out) = run(
        &setup.install(&dc, &t, USER.0, &dc.dns_domain, &dc.admin_upn),
        USER.1,
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("Global Administrator or Hybrid Identity Administrator"),
        "{out}"
    );
    assert!(
        out.contains("HybridIdentityAdministrator"),
        "the tenant's answer is passed on: {out}"
    );
    // A typo in the domain name: the DC serves another naming context.
    let typo = dc.dns_domain.replacen("example", "exmaple", 1);
    assert_ne!(typo, dc.dns_domain);
    let (code, out) = run(&setup.install(&dc, &t, HIA.0, &typo, &dc.admin_upn), HIA.1);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("check the spelling of the domain name"),
        "{out}"
    );
    assert!(
        out.contains(&dc.dns_domain),
        "names what the DC serves: {out}"
    );
    // A domain admin whose password must be changed (pwdLastSet = 0).
    let dn = format!("CN=expired-admin,CN=Users,{}", dc.base_dn);
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: expired-admin\n\
         userPrincipalName: expired-admin@{d}\nunicodePwd:: {pw}\nuserAccountControl: 512\n\n\
         dn: CN=Domain Admins,CN=Users,{b}\nchangetype: modify\nadd: member\nmember: {dn}\n\n\
         dn: {dn}\nchangetype: modify\nreplace: pwdLastSet\npwdLastSet: 0\n",
        d = dc.dns_domain,
        b = dc.base_dn,
        pw = unicode_pwd_base64("Expired!Admin1"),
    ));
    let expired = format!("expired-admin@{}", dc.dns_domain);
    let (code, out) = run(
        &setup.install(&dc, &t, HIA.0, &dc.dns_domain, &expired),
        HIA.1,
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("reconfigure with the new credentials"),
        "{out}"
    );
    assert!(out.contains(&expired), "{out}");
    // Two secrets on stdin.
    let mut args = setup.install(&dc, &t, HIA.0, &dc.dns_domain, &dc.admin_upn);
    let i = args
        .iter()
        .position(|a| a == "--service-account-password-file")
        .unwrap();
    args[i + 1] = "-".into();
    let (code, out) = run(&args, HIA.1);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("only one secret can come from stdin"), "{out}");
    // The other extension is refused.
    let mut args = setup.install(&dc, &t, HIA.0, &dc.dns_domain, &dc.admin_upn);
    args.extend(["--extension".into(), "on-premises-app-provisioning".into()]);
    let (code, out) = run(&args, HIA.1);
    assert_eq!(code, Some(6), "{out}");
    assert!(out.contains("not available yet"), "{out}");
    assert!(
        agents(&t).await.is_empty(),
        "nothing registered by a refused install"
    );
    assert!(!pfx.join("var/lib/cloudsync/credentials.json").exists());

    // The install.
    let (code, out) = run(
        &setup.install(&dc, &t, HIA.0, &dc.dns_domain, &dc.admin_upn),
        HIA.1,
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Your agent configuration was successfully verified"),
        "{out}"
    );
    assert!(
        out.contains("systemctl enable --now cloudsync-agent.service cloudsync-updater.timer"),
        "{out}"
    );
    let config = pfx.join("etc/cloudsync/agent.toml");
    assert_eq!(mode(&config), 0o640);
    assert_eq!(mode(&pfx.join("etc/cloudsync")), 0o750);
    assert_eq!(mode(&pfx.join("var/lib/cloudsync")), 0o700);
    for f in ["credentials.json", "service-account.pw", "install.json"] {
        assert_eq!(mode(&pfx.join("var/lib/cloudsync").join(f)), 0o600, "{f}");
    }
    assert_eq!(
        mode(&pfx.join("etc/systemd/system/cloudsync-agent.service")),
        0o644
    );
    let text = std::fs::read_to_string(&config).unwrap();
    for secret in [&dc.svc_password, &dc.admin_password, &HIA.1.to_string()] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the configuration:\n{text}"
        );
    }
    for f in ["credentials.json", "install.json"] {
        let t = std::fs::read_to_string(pfx.join("var/lib/cloudsync").join(f)).unwrap();
        assert!(
            !t.contains(&dc.admin_password) && !t.contains(HIA.1),
            "{f}: {t}"
        );
    }
    // The configuration is the agent's own: it loads and validates.
    let (code, out) = run(
        &[
            "agent",
            "check-config",
            "--config",
            config.to_str().unwrap(),
        ]
        .map(String::from),
        "",
    );
    assert_eq!(code, Some(0), "{out}");
    let id = creds(pfx)["agentId"].as_str().unwrap().to_string();
    let list = agents(&t).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "Active", "{list:?}");

    // Re-install: updated in place, the same agent; this time pinning the release key the updater
    // checks signatures with (`--release-public-key`, a `release keygen` public key file). A key that
    // is not one is refused before anything changes.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("release.key");
    let (code, out) = run(
        &[
            "release".to_string(),
            "keygen".into(),
            "--out".into(),
            key.display().to_string(),
        ],
        "",
    );
    assert_eq!(code, Some(0), "{out}");
    let public_file = keys.path().join("release.key.pub");
    let public = std::fs::read_to_string(&public_file)
        .unwrap()
        .trim()
        .to_string();
    let mut bad = setup.install(&dc, &t, HIA.0, &dc.dns_domain, &dc.admin_upn);
    bad.extend(["--release-public-key".into(), "bm90LWEta2V5".into()]);
    let (code, out) = run(&bad, HIA.1);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("--release-public-key"), "{out}");
    let mut args = setup.install(&dc, &t, HIA.0, &dc.dns_domain, &dc.admin_upn);
    args.extend([
        "--release-public-key".into(),
        public_file.display().to_string(),
    ]);
    let (code, out) = run(&args, HIA.1);
    assert_eq!(code, Some(0), "{out}");
    let installed: toml::Table = std::fs::read_to_string(pfx.join("etc/cloudsync/agent.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        installed["updater"]["public_key"].as_str(),
        Some(public.as_str()),
        "the key pinned in the configuration"
    );
    assert!(
        out.contains(&format!("Updated agent {id} in place")),
        "{out}"
    );
    assert_eq!(creds(pfx)["agentId"], id.as_str());
    assert_eq!(agents(&t).await.len(), 1);

    // The cmdlets: connect (role check), service-account set (checked by a bind first).
    let (code, out) = run(&setup.installed(&["agent", "connect"]), HIA.1);
    assert_eq!(code, Some(0), "{out}");
    let mut as_user = setup.installed(&["agent", "connect"]);
    let i = as_user.iter().position(|a| a == HIA.0).unwrap();
    as_user[i] = USER.0.into();
    let (code, out) = run(&as_user, USER.1);
    assert_eq!(code, Some(3), "{out}");
    let svc_cmd: Vec<String> = [
        "agent",
        "service-account",
        "set",
        "--prefix",
        pfx.to_str().unwrap(),
        "--account",
        &dc.admin_upn,
        "--password-file",
        "-",
    ]
    .map(String::from)
    .to_vec();
    let (code, out) = run(&svc_cmd, "Wrong!Password9");
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("wrong password"), "{out}");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains(&dc.svc_upn),
        "unchanged after a refusal"
    );
    let (code, out) = run(&svc_cmd, &dc.admin_password);
    assert_eq!(code, Some(0), "{out}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("bind_dn = \"{}\"", dc.admin_upn)),
        "{text}"
    );
    assert!(!text.contains(&dc.admin_password), "{text}");
    assert_eq!(
        mode(&pfx.join("var/lib/cloudsync/service-account.pw")),
        0o600
    );

    // domain add: a typo is refused; the installed domain again is checked and its configuration reused.
    let domain_add = |name: &str| -> Vec<String> {
        let mut v = setup.installed(&["agent", "domain", "add"]);
        v.extend(
            [
                "--domain",
                &format!("{name}={}", dc.ldaps_url),
                "--dc-ca-file",
                dc.ca_file.to_str().unwrap(),
                "--domain-admin",
                &dc.admin_upn,
                "--domain-admin-password-file",
                &secret_file(setup.secrets.path(), "da2.pw", &dc.admin_password),
            ]
            .map(String::from),
        );
        v
    };
    let (code, out) = run(&domain_add(&typo), HIA.1);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("check the spelling of the domain name"),
        "{out}"
    );
    let (code, out) = run(&domain_add(&dc.dns_domain), HIA.1);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(reused)"), "{out}");
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(config_text.matches("[domains.").count(), 1, "{config_text}");

    // Password hash sync off, then on, in the tenant's configuration.
    let cfg_id = creds(pfx)["configurations"][&dc.dns_domain]
        .as_str()
        .unwrap()
        .to_string();
    let admin = t.user_token(HIA).await;
    for (cmd, want) in [("disable", false), ("enable", true)] {
        let (code, out) = run(&setup.installed(&["agent", "phs", cmd]), HIA.1);
        assert_eq!(code, Some(0), "{out}");
        let c = t
            .get_json(&admin, format!("/api/v1/configurations/{cfg_id}"))
            .await;
        assert_eq!(c["spec"]["passwordHashSync"], want, "{c}");
    }
    // The installed configuration's service account (the lab's, granted both replication rights by
    // lab.sh) passes `permissions check` for password hash sync (docs/permissions.md).
    let config = pfx.join("etc/cloudsync/agent.toml");
    let (code, out) = run(
        &[
            "agent",
            "permissions",
            "check",
            "--type",
            "password-hash-sync",
            "--config",
            config.to_str().unwrap(),
        ]
        .map(String::from),
        "",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("every password-hash-sync right is granted"),
        "{out}"
    );

    // Uninstall: the registration is gone, the secrets too.
    let (code, out) = run(&setup.installed(&["agent", "uninstall"]), HIA.1);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("Removed the registration of agent {id}")),
        "{out}"
    );
    assert!(agents(&t).await.is_empty());
    assert!(!pfx.join("var/lib/cloudsync/credentials.json").exists());
    assert!(!pfx.join("var/lib/cloudsync/service-account.pw").exists());
    assert!(
        !pfx.join("etc/systemd/system/cloudsync-agent.service")
            .exists()
    );
}
