//! The service account forms of `cloudsync agent install --unattended` against the real parts (a lab
//! DC on Samba 4.22, the real tenant, the real binary, everything under a temporary `--prefix`),
//! each checked with tools independent of the agent (`samba-tool service-account`, ldapsearch, the
//! tenant's Graph API and sign-in check):
//!
//! - "Create gMSA": the host's computer account and `provAgentgMSA$` made over LDAP, the host the
//!   allowed principal (samba-tool lists it); the agent syncs and password hash sync signs in, as the
//!   gMSA; no account password (the host's, the gMSA's hash) in the configuration, the install record
//!   or any output; the rights granted (`permissions check` passes);
//! - a second host joining the same gMSA (added once, not twice on a re-run); "Use custom gMSA" refused
//!   for a host not allowed, with the command that allows it, then accepted once allowed; the regular
//!   account fallback (created, random password in a 0600 file);
//! - an agent installed with a regular account switched to the gMSA by re-running install: same
//!   registration, journal kept, a change made afterwards arrives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use agent_run::agent_stdin;
use cloudsync_agent::account::gmsa_blob::ManagedPassword;
use common::lab::LabDc;
use tenant_fixture::{HIA, TenantFixture, signin};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// One agent host: its prefix and the files its install reads secrets from.
struct Host {
    prefix: PathBuf,
    secrets: tempfile::TempDir,
}

impl Host {
    fn new(root: &Path, name: &str) -> Host {
        Host {
            prefix: root.join(name),
            secrets: tempfile::tempdir().unwrap(),
        }
    }

    fn secret(&self, name: &str, text: &str) -> String {
        let p = self.secrets.path().join(name);
        std::fs::write(&p, format!("{text}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    }

    fn config(&self) -> PathBuf {
        self.prefix.join("etc/cloudsync/agent.toml")
    }

    fn state(&self) -> PathBuf {
        self.prefix.join("var/lib/cloudsync")
    }

    /// `agent install --unattended` with `account` (the service-account flags), in scope
    /// `OU=SyncUsers`, PHS on ([`agent_run::install`]).
    fn install(&self, dc: &LabDc, t: &TenantFixture, account: &[&str]) -> (Option<i32>, String) {
        let scope = format!("projection.scope.ous=[\"OU=SyncUsers,{}\"]", dc.base_dn);
        let mut extra = vec!["--set", &scope, "--set", "phs.enabled=true"];
        extra.extend_from_slice(account);
        agent_run::install(dc, t, &self.prefix, HIA, &extra)
    }

    fn sync_once(&self) -> String {
        let (code, out) = agent_stdin(
            &[
                "agent",
                "sync-once",
                "--config",
                self.config().to_str().unwrap(),
                "--push-timeout-secs",
                "120",
            ],
            "",
            "debug",
        );
        assert_eq!(code, Some(0), "sync-once:\n{out}");
        out
    }
}

/// Every regular file under `dir` (recursively) with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `key = "value"` of the first `[domains.*]` table, read as TOML.
fn domain_key(config: &Path, key: &str) -> Option<String> {
    let t: toml::Table = std::fs::read_to_string(config).unwrap().parse().unwrap();
    let d = t["domains"]
        .as_table()?
        .values()
        .next()?
        .as_table()?
        .clone();
    d.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

async fn graph_user_count(t: &TenantFixture) -> usize {
    let token = t.user_token(HIA).await;
    agent_run::graph_all(t, &token, "/v1.0/users?$select=id&$top=999")
        .await
        .len()
}

fn ad_user_count(dc: &LabDc) -> usize {
    agent_run::ad_search(
        dc,
        &format!("OU=SyncUsers,{}", dc.base_dn),
        "(&(objectCategory=person)(objectClass=user))",
        &["cn"],
    )
    .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_gmsa_then_sync_and_sign_in_with_no_account_password_anywhere() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let root = tempfile::tempdir().unwrap();
    let a = Host::new(root.path(), "a");

    let (code, out) = a.install(
        &dc,
        &t,
        &[
            "--service-account-type",
            "create-gmsa",
            "--host-account",
            "AGENTA",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Service account: group managed service account provAgentgMSA$"),
        "{out}"
    );
    assert!(
        out.contains("computer account CN=AGENTA,CN=Computers"),
        "{out}"
    );
    assert!(
        out.contains("created the gMSA CN=provAgentgMSA,CN=Managed Service Accounts"),
        "{out}"
    );
    assert!(out.contains("signed in as provAgentgMSA$@"), "{out}");
    assert!(
        out.contains("Your agent configuration was successfully verified"),
        "{out}"
    );

    // The directory as samba-tool sees it: the host is the allowed principal.
    let allowed = dc.gmsa_allowed("provAgentgMSA");
    assert!(allowed.contains("AGENTA"), "{allowed}");
    // The configuration names the gMSA form; the host's password is only in its 0600 file.
    let config = a.config();
    assert_eq!(domain_key(&config, "account").as_deref(), Some("gmsa"));
    assert_eq!(
        domain_key(&config, "gmsa_dn").unwrap(),
        dc.gmsa_dn("provAgentgMSA")
    );
    assert!(domain_key(&config, "password_file").is_none());
    assert!(domain_key(&config, "password").is_none());
    let host_file = PathBuf::from(domain_key(&config, "host_password_file").unwrap());
    assert_eq!(mode(&host_file), 0o600);
    let host_password = std::fs::read_to_string(&host_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(host_password.len() >= 64, "a long random password");
    let host_dn = domain_key(&config, "host_dn").unwrap();
    // The gMSA's current NT hash, read independently (ldapsearch as the host).
    let blob = dc
        .read_managed_password(&dc.gmsa_dn("provAgentgMSA"), &host_dn, &host_password)
        .unwrap()
        .expect("the host may read the gMSA's password");
    let gmsa_hash = ManagedPassword::decode(&blob).unwrap().current;
    let gmsa_hex = hex(gmsa_hash.expose());

    // The rights were granted: the agent's own check, as the gMSA.
    let (code, out) = agent_stdin(
        &[
            "agent",
            "permissions",
            "check",
            "--type",
            "password-hash-sync",
            "--config",
            config.to_str().unwrap(),
        ],
        "",
        "warn",
    );
    assert_eq!(code, Some(0), "{out}");

    // Sync as the gMSA: every user in scope arrives, and PHS signs in with the AD password.
    let sync_log = a.sync_once();
    assert_eq!(graph_user_count(&t).await, ad_user_count(&dc));
    assert_eq!(
        signin(
            &t,
            &format!("user00001@{}", dc.dns_domain),
            "Init!Pass00001"
        )
        .await,
        200
    );
    assert_eq!(
        signin(&t, &format!("user00001@{}", dc.dns_domain), "Wrong!Pass1").await,
        401
    );

    // No account password anywhere but the host's 0600 file: not in any other file under the prefix,
    // not in the install's output, not in the debug log of a sync.
    for (path, bytes) in files_under(&a.prefix) {
        if path == host_file {
            continue;
        }
        for (what, secret) in [
            ("host password", host_password.as_bytes()),
            ("gMSA hash", gmsa_hex.as_bytes()),
            ("gMSA hash bytes", gmsa_hash.expose().as_slice()),
            ("domain admin password", dc.admin_password.as_bytes()),
        ] {
            assert!(!contains(&bytes, secret), "{what} in {}", path.display());
        }
    }
    for text in [&out, &sync_log] {
        assert!(!text.contains(&host_password));
        assert!(!text.to_ascii_lowercase().contains(&gmsa_hex));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn second_host_custom_gmsa_and_the_regular_fallback() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let root = tempfile::tempdir().unwrap();

    // Two hosts "Create gMSA" with the same name: the second finds it and joins.
    let a = Host::new(root.path(), "a");
    let (code, out) = a.install(&dc, &t, &["--host-account", "AGENTA"]);
    assert_eq!(code, Some(0), "create-gmsa is the default:\n{out}");
    let b = Host::new(root.path(), "b");
    let (code, out) = b.install(&dc, &t, &["--host-account", "AGENTB"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("exists: added AGENTB$ to its allowed principals"),
        "{out}"
    );
    let allowed = dc.gmsa_allowed("provAgentgMSA");
    assert!(
        allowed.contains("AGENTA") && allowed.contains("AGENTB"),
        "{allowed}"
    );
    // Re-running on the second host adds nothing twice and keeps its computer account's password.
    let host_file = b.state().join(format!("host-account.{}.pw", dc.dns_domain));
    let before = std::fs::read_to_string(&host_file).unwrap();
    let (code, out) = b.install(&dc, &t, &["--host-account", "AGENTB"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("AGENTB$ is already allowed"), "{out}");
    assert!(out.contains("(kept)"), "{out}");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), before);
    let allowed = dc.gmsa_allowed("provAgentgMSA");
    assert_eq!(allowed.matches("AGENTB").count(), 1, "{allowed}");

    // "Use custom gMSA": a gMSA this host may not read is refused with the fix …
    dc.create_gmsa("customgmsa");
    let c = Host::new(root.path(), "c");
    let custom = [
        "--service-account-type",
        "custom-gmsa",
        "--service-account",
        "customgmsa",
        "--host-account",
        "AGENTC",
    ];
    let (code, out) = c.install(&dc, &t, &custom);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("AGENTC"), "{out}");
    assert!(out.contains("may not retrieve the password"), "{out}");
    assert!(out.contains("group-msa-membership add"), "{out}");
    // … and accepted once the admin allowed it (the computer account was made by the first try).
    dc.gmsa_allow("customgmsa", "AGENTC$");
    let (code, out) = c.install(&dc, &t, &custom);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        domain_key(&c.config(), "gmsa_dn").unwrap(),
        dc.gmsa_dn("customgmsa")
    );
    // A custom gMSA that does not exist.
    let (code, out) = Host::new(root.path(), "x").install(
        &dc,
        &t,
        &[
            "--service-account-type",
            "custom-gmsa",
            "--service-account",
            "nosuchgmsa",
        ],
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("there is no gMSA nosuchgmsa$"), "{out}");

    // The regular account fallback: created with a long random password in a 0600 file.
    let d = Host::new(root.path(), "d");
    let (code, out) = d.install(
        &dc,
        &t,
        &[
            "--service-account-type",
            "create-regular",
            "--service-account",
            "svc-cs-d",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("regular account svc-cs-d created with a random password"),
        "{out}"
    );
    assert_eq!(
        domain_key(&d.config(), "bind_dn").unwrap(),
        format!("svc-cs-d@{}", dc.dns_domain)
    );
    let pw_file = PathBuf::from(domain_key(&d.config(), "password_file").unwrap());
    assert_eq!(mode(&pw_file), 0o600);
    let pw = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(pw.len() >= 64);
    // The account exists in AD and binds with that password (ldapsearch, not the agent).
    let found = agent_run::ad_search(
        &dc,
        &dc.base_dn,
        "(sAMAccountName=svc-cs-d)",
        &["userAccountControl"],
    );
    let entry = found.values().next().expect("svc-cs-d in AD");
    assert_eq!(entry["useraccountcontrol"], vec!["66048".to_string()]);
    // ldapwhoami -y reads the whole file: the password without its newline.
    let bare = root.path().join("bare.pw");
    std::fs::write(&bare, &pw).unwrap();
    let who2 = Command::new("ldapwhoami")
        .args([
            "-x",
            "-H",
            &dc.ldaps_url,
            "-D",
            &format!("svc-cs-d@{}", dc.dns_domain),
        ])
        .args(["-y", &bare.display().to_string()])
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .output()
        .unwrap();
    assert!(
        who2.status.success(),
        "{}",
        String::from_utf8_lossy(&who2.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_with_a_regular_account_switches_to_the_gmsa_and_keeps_syncing() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let root = tempfile::tempdir().unwrap();
    let a = Host::new(root.path(), "a");
    let svc_pw = a.secret("svc.pw", &dc.svc_password);
    let (code, out) = a.install(
        &dc,
        &t,
        &[
            "--service-account",
            &dc.svc_upn,
            "--service-account-password-file",
            &svc_pw,
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Service account: existing account"), "{out}");
    let agent_id = |h: &Host| -> String {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(h.state().join("credentials.json")).unwrap(),
        )
        .unwrap();
        v["agentId"]
            .as_str()
            .or(v["agent_id"].as_str())
            .unwrap()
            .to_string()
    };
    let id = agent_id(&a);
    a.sync_once();
    assert_eq!(graph_user_count(&t).await, ad_user_count(&dc));

    // Re-run install choosing the gMSA; the domain is not given again: the earlier one is re-checked.
    let (code, out) = a.install(
        &dc,
        &t,
        &[
            "--service-account-type",
            "create-gmsa",
            "--host-account",
            "SWITCHHOST",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("Updated agent {id} in place")),
        "{out}"
    );
    assert_eq!(agent_id(&a), id);
    assert_eq!(domain_key(&a.config(), "account").as_deref(), Some("gmsa"));
    assert!(domain_key(&a.config(), "password_file").is_none());

    // A change made now arrives through the gMSA, from the kept journal (a delta, not a full read).
    let dn = dc.user_dn(2);
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: title\ntitle: Switched to gMSA\n"
    ));
    let out = a.sync_once();
    assert!(out.contains("summary:"), "{out}");
    let token = t.user_token(HIA).await;
    let users = agent_run::graph_all(
        &t,
        &token,
        "/v1.0/users?$select=userPrincipalName,jobTitle&$top=999",
    )
    .await;
    assert!(
        users.iter().any(|u| u["jobTitle"] == "Switched to gMSA"),
        "the change made after the switch arrived"
    );
    assert_eq!(graph_user_count(&t).await, ad_user_count(&dc));
}

/// Root key names as `samba-tool domain kds root-key list --json` prints them.
fn root_key_ids(dc: &LabDc) -> Vec<String> {
    let out = dc
        .samba_tool(&["domain", "kds", "root-key", "list", "--json"])
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_gmsa_in_a_forest_without_a_kds_root_key() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let root = tempfile::tempdir().unwrap();
    // A forest that never had one (samba-tool, not the agent, removes the provisioned key).
    for id in root_key_ids(&dc) {
        dc.samba_tool(&["domain", "kds", "root-key", "delete", "--name", &id])
            .unwrap();
    }
    assert!(root_key_ids(&dc).is_empty());
    let a = Host::new(root.path(), "a");
    let flags = [
        "--service-account-type",
        "create-gmsa",
        "--host-account",
        "KDSHOST",
    ];
    // The default, as Add-KdsRootKey: a key usable from the next 10-hour interval; the install stops
    // and says when to run again.
    let (code, out) = a.install(&dc, &t, &flags);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("had no KDS root key"), "{out}");
    assert!(out.contains("serves them from"), "{out}");
    let ids = root_key_ids(&dc);
    assert_eq!(ids.len(), 1, "one key created: {ids:?}");
    assert!(out.contains(&ids[0]), "the key is named: {out}");
    // The lab form: usable at once; the gMSA is created and read.
    let mut lab = flags.to_vec();
    lab.push("--kds-root-key-immediately");
    let (code, out) = a.install(&dc, &t, &lab);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("created the KDS root key"), "{out}");
    assert!(out.contains("created the gMSA"), "{out}");
    assert_eq!(root_key_ids(&dc).len(), 2);
    // Once a key serves, a re-run creates none.
    let (code, out) = a.install(&dc, &t, &lab);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("KDS root key"), "{out}");
    assert_eq!(root_key_ids(&dc).len(), 2);
}
