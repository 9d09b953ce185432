//! `cloudsync agent install` (the wizard) end to end in a real terminal: tmux runs the binary, the
//! test types with `send-keys` and reads the screen with `capture-pane`, against a lab DC and the
//! real tenant, under a temporary `--prefix`.
//!
//! On the way it meets what an admin meets: the other extension refused ("not available yet"), a
//! plain user refused at the sign-in step (the role named), a typo in the domain name (the DC
//! serves another naming context), a domain admin whose password must be changed (`pwdLastSet=0`,
//! set in this test's DC: "reconfigure with the new credentials"); each time the wizard asks
//! again. The service account is the seed's recommended "Create gMSA" (made in that domain once it
//! is added), and the install then finishes verified with the agent Active in the tenant. Every wait
//! polls the screen with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::{LabDc, unicode_pwd_base64};
use tenant_fixture::{HIA, TENANT_ID, TenantFixture, USER};

/// A tmux server of its own running the wizard; killed on drop.
struct Term {
    socket: PathBuf,
}

impl Term {
    fn start(dir: &Path, command: &str) -> Term {
        let socket = dir.join("tmux.sock");
        let ok = Command::new("tmux")
            .args(["-S", socket.to_str().unwrap(), "-f", "/dev/null"])
            .args(["new-session", "-d", "-s", "w", "-x", "160", "-y", "50"])
            .arg(command)
            .status()
            .unwrap();
        assert!(ok.success(), "tmux new-session failed");
        Term { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-S", self.socket.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The screen and its scroll-back.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-t", "w", "-S", "-2000"])
    }

    /// Types `text` literally.
    fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "w", "-l", text]);
    }

    /// Presses `key` (tmux key name: Enter, Down, BSpace…) `n` times.
    fn key(&self, key: &str, n: usize) {
        self.tmux(&["send-keys", "-t", "w", "-N", &n.to_string(), key]);
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.text(text);
        self.key("Enter", 1);
    }

    /// Clears a prefilled input (dialoguer's initial text) and types a line.
    fn replace_line(&self, text: &str) {
        self.key("BSpace", 80);
        self.line(text);
    }

    /// Waits until the screen shows `needle` `count` times (the wizard re-asks the same
    /// questions), at most 90 s.
    fn wait_n(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let screen = self.screen();
            if screen.matches(needle).count() >= count {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {needle:?} ×{count}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(&self, needle: &str) -> String {
        self.wait_n(needle, 1)
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S", self.socket.to_str().unwrap(), "kill-server"])
            .status();
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wizard_end_to_end_in_a_terminal() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("p");
    // A domain admin whose password must be changed at next logon.
    let expired = format!("expired-admin@{}", dc.dns_domain);
    let edn = format!("CN=expired-admin,CN=Users,{}", dc.base_dn);
    dc.ldif_admin(&format!(
        "dn: {edn}\nchangetype: add\nobjectClass: user\nsAMAccountName: expired-admin\n\
         userPrincipalName: {expired}\nunicodePwd:: {}\nuserAccountControl: 512\n\n\
         dn: CN=Domain Admins,CN=Users,{}\nchangetype: modify\nadd: member\nmember: {edn}\n\n\
         dn: {edn}\nchangetype: modify\nreplace: pwdLastSet\npwdLastSet: 0\n",
        unicode_pwd_base64("Expired!Admin1"),
        dc.base_dn,
    ));

    let command = format!(
        "env -u ENVIRONMENTNAME CLOUDSYNC_LOG=warn {bin} agent install --prefix {prefix} \
         --tenant-url {url} --tenant-ca-file {tca} --tenant-id {TENANT_ID} --dc-ca-file {dca} \
         --set metrics.listen=127.0.0.1:0; echo EXIT=$?; sleep 600",
        bin = quote(env!("CARGO_BIN_EXE_cloudsync")),
        prefix = quote(prefix.to_str().unwrap()),
        url = quote(&t.url),
        tca = quote(t.dir.path().join("ca.pem").to_str().unwrap()),
        dca = quote(dc.ca_file.to_str().unwrap()),
    );
    let term = Term::start(dir.path(), &command);

    term.wait("I agree to the license terms and conditions");
    term.text("y");
    // The other extension is refused, and the choice is offered again.
    term.wait("Select extension");
    term.key("Down", 1);
    term.key("Enter", 1);
    term.wait("not available yet");
    term.wait_n("Select extension", 2);
    term.key("Enter", 1);
    term.wait("Environment (the cloud");
    term.key("Enter", 1);

    // A plain user: refused, naming the roles; then the Hybrid Identity Administrator.
    term.wait("Tenant administrator account");
    term.line(USER.0);
    term.wait("Tenant administrator password");
    term.line(USER.1);
    let screen = term.wait("may not install an agent");
    assert!(
        screen.contains("Global Administrator or Hybrid Identity Administrator"),
        "{screen}"
    );
    assert!(!screen.contains(USER.1), "a password was echoed:\n{screen}");
    term.wait_n("Tenant administrator account", 2);
    term.line(HIA.0);
    term.wait_n("Tenant administrator password", 2);
    term.line(HIA.1);
    term.wait(&format!("Signed in as {}", HIA.0));

    // "Configure Service Account": the recommended form, Create gMSA, under its default name.
    term.wait("Create gMSA (recommended");
    term.key("Enter", 1);
    term.wait("gMSA name");
    term.key("Enter", 1);
    term.wait("Using: group managed service account provAgentgMSA$");

    // A typo in the domain name.
    let typo = dc.dns_domain.replacen("example", "exmaple", 1);
    term.wait("Configured domains: none yet");
    term.wait("Domain name");
    term.line(&typo);
    term.wait("Domain controller");
    term.line(&dc.ldaps_url);
    term.wait("CA file");
    term.key("Enter", 1);
    term.wait("Domain administrator account");
    term.replace_line(&dc.admin_upn);
    term.wait("Domain administrator password");
    term.line(&dc.admin_password);
    let screen = term.wait("check the spelling of the domain name");
    assert!(
        screen.contains(&format!("serves {}", dc.dns_domain)),
        "{screen}"
    );

    // A domain admin whose password must be changed.
    term.wait_n("Domain name", 2);
    term.line(&dc.dns_domain);
    term.wait_n("Domain controller", 2);
    term.line(&dc.ldaps_url);
    term.wait_n("CA file", 2);
    term.key("Enter", 1);
    term.wait_n("Domain administrator account", 2);
    term.replace_line(&expired);
    term.wait_n("Domain administrator password", 2);
    term.line("Expired!Admin1");
    let screen = term.wait("reconfigure with the new credentials");
    assert!(screen.contains(&expired), "{screen}");

    // The right one.
    term.wait_n("Domain name", 3);
    term.line(&dc.dns_domain);
    term.wait_n("Domain controller", 3);
    term.line(&dc.ldaps_url);
    term.wait_n("CA file", 3);
    term.key("Enter", 1);
    term.wait_n("Domain administrator account", 3);
    term.replace_line(&dc.admin_upn);
    term.wait_n("Domain administrator password", 3);
    term.line(&dc.admin_password);
    let screen = term.wait(&format!("Added {}", dc.dns_domain));
    assert!(
        screen.contains("created the gMSA CN=provAgentgMSA,CN=Managed Service Accounts"),
        "{screen}"
    );
    term.wait(&format!("Configured domains: {}", dc.dns_domain));
    term.wait("empty: done");
    term.key("Enter", 1);

    let screen = term.wait("Confirm (register");
    assert!(
        screen.contains("service account  group managed service account provAgentgMSA$"),
        "{screen}"
    );
    term.text("y");
    let screen = term.wait("EXIT=");
    assert!(
        screen.contains("Your agent configuration was successfully verified"),
        "{screen}"
    );
    assert!(screen.contains("EXIT=0"), "{screen}");
    eprintln!("--- the wizard's screen\n{screen}");
    for secret in [
        HIA.1,
        USER.1,
        dc.admin_password.as_str(),
        dc.svc_password.as_str(),
    ] {
        assert!(!screen.contains(secret), "a password was echoed:\n{screen}");
    }

    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(prefix.join("var/lib/cloudsync/credentials.json")).unwrap(),
    )
    .unwrap();
    let admin = t.user_token(HIA).await;
    let agents = t.get_json(&admin, "/api/v1/agents").await;
    let list = agents["value"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{agents}");
    assert_eq!(list[0]["id"], creds["agentId"]);
    assert_eq!(list[0]["status"], "Active");
    let config = std::fs::read_to_string(prefix.join("etc/cloudsync/agent.toml")).unwrap();
    assert!(
        !config.contains(&dc.admin_password) && !config.contains(&expired),
        "{config}"
    );
    assert!(config.contains("account = \"gmsa\""), "{config}");
    // samba-tool, not the agent, says which principal may read the gMSA's password: this host's.
    let allowed = dc.gmsa_allowed("provAgentgMSA");
    let host = cloudsync_agent::control::install::account::default_host_account();
    assert!(allowed.contains(&host), "{host} not in {allowed}");
}
