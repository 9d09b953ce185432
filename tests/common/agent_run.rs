//! Helpers for the end-to-end tests that run the real `cloudsync` binary against a lab DC and the real
//! tenant: the agent's configuration, `agent register` / `sync-once`, `agent install --unattended`
//! ([`install`]), the binary with a secret on stdin ([`agent_stdin`]), the daemon ([`Daemon`]), ldapsearch
//! as the oracle's reader, Graph paging and the tenant's sign-in check.
//!
//! Use with `mod common;`, `#[path = "common/tenant.rs"] mod tenant_fixture;` and
//! `#[path = "common/agent_run.rs"] mod agent_run;` in the test crate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::common::lab::LabDc;
use crate::tenant_fixture::{HIA, TENANT_ID, TenantFixture};

/// Runs the `cloudsync` binary with `args` and extra environment.
pub fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
    cmd.args(args).env("CLOUDSYNC_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs the binary with `args` and `stdin` piped in (a secret never goes on argv), `CLOUDSYNC_LOG=log`,
/// `ENVIRONMENTNAME` removed: the exit code and stdout + stderr.
pub fn agent_stdin(args: &[&str], stdin: &str, log: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(args)
        .env("CLOUDSYNC_LOG", log)
        .env_remove("ENVIRONMENTNAME")
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
    let o = child.wait_with_output().unwrap();
    (o.status.code(), text(&o))
}

/// `agent install --unattended` into `prefix` against `dc` and `t`, signed in as `admin` (its password
/// on stdin), the domain administrator's password from a 0600 file under `prefix`'s parent; `extra`
/// adds the service-account flags and `--set` keys.
pub fn install(
    dc: &LabDc,
    t: &TenantFixture,
    prefix: &Path,
    admin: (&str, &str),
    extra: &[&str],
) -> (Option<i32>, String) {
    install_logged(dc, t, prefix, admin, extra, "warn")
}

/// [`install`] with `CLOUDSYNC_LOG=log` (its log is in the returned text).
pub fn install_logged(
    dc: &LabDc,
    t: &TenantFixture,
    prefix: &Path,
    admin: (&str, &str),
    extra: &[&str],
    log: &str,
) -> (Option<i32>, String) {
    let secrets = prefix.with_extension("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let da = secrets.join("da.pw");
    std::fs::write(&da, format!("{}\n", dc.admin_password)).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&da, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = t.dir.path().join("ca.pem");
    let domain = format!("{}={}", dc.dns_domain, dc.ldaps_url);
    let mut args = vec![
        "agent",
        "install",
        "--unattended",
        "--accept-license",
        "--prefix",
        prefix.to_str().unwrap(),
        "--tenant-url",
        &t.url,
        "--tenant-ca-file",
        ca.to_str().unwrap(),
        "--tenant-id",
        TENANT_ID,
        "--admin-upn",
        admin.0,
        "--admin-password-file",
        "-",
        "--domain",
        &domain,
        "--dc-ca-file",
        dc.ca_file.to_str().unwrap(),
        "--domain-admin",
        &dc.admin_upn,
        "--domain-admin-password-file",
        da.to_str().unwrap(),
        "--set",
        "metrics.listen=127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    agent_stdin(&args, admin.1, log)
}

/// `agent run --config` as a daemon with extra environment, its stderr appended to `log`; stopped on
/// drop (SIGTERM as a service manager sends it, a kill after 20 s).
pub struct Daemon(Child);

impl Daemon {
    /// Starts it.
    pub fn start(config: &Path, env: &[(&str, &str)], log: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
        cmd.args(["agent", "run", "--config", config.to_str().unwrap()])
            .env("CLOUDSYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon(cmd.spawn().unwrap())
    }

    /// SIGTERM, wait (polled) up to 20 s, then kill.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// stdout and stderr of a finished process.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes the agent's configuration (LDAPS as the sync service account, PHS on, OU scope `ous`).
pub fn write_config(dc: &LabDc, t: &TenantFixture, dir: &Path, ous: &[String]) -> PathBuf {
    write_config_domains(&[("corp", dc)], t, dir, ous)
}

/// [`write_config`] for an agent serving several domains: one `[domains.<key>]` per `(key, DC)`; the
/// OU scope `ous` is one list for all of them (an OU selects only its own domain's objects).
pub fn write_config_domains(
    domains: &[(&str, &LabDc)],
    t: &TenantFixture,
    dir: &Path,
    ous: &[String],
) -> PathBuf {
    let path = dir.join("agent.toml");
    let ous: Vec<String> = ous.iter().map(|o| format!("{o:?}")).collect();
    let mut text = format!(
        r#"
[metrics]
listen = "127.0.0.1:0"
[agent]
journal_dir = "{journal}"
"#,
        journal = dir.join("journal").display(),
    );
    for (key, dc) in domains {
        text.push_str(&format!(
            r#"[domains.{key}]
dns_name = "{dns}"
url = "{url}"
ca_file = "{ca}"
bind_dn = "{svc}"
password = "{pw}"
notifications = false
"#,
            dns = dc.dns_domain,
            url = dc.ldaps_url,
            ca = dc.ca_file.display(),
            // The sync service account, as in production: lab.sh grants it read on
            // CN=Deleted Objects so DirSync shows it tombstones (docs/lab.md).
            svc = dc.svc_upn,
            pw = dc.svc_password,
        ));
    }
    text.push_str(&format!(
        r#"[tenant]
url = "{turl}"
ca_file = "{tca}"
tenant_id = "{TENANT_ID}"
credentials_file = "{creds}"
[projection.scope]
ous = [{ous}]
[phs]
enabled = true
"#,
        turl = t.url,
        tca = t.dir.path().join("ca.pem").display(),
        creds = dir.join("credentials.json").display(),
        ous = ous.join(", "),
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Registers the agent as the Hybrid Identity Administrator (must succeed).
pub fn register(config: &Path) {
    let o = agent(
        &[
            "agent",
            "register",
            "--config",
            config.to_str().unwrap(),
            "--admin-upn",
            HIA.0,
        ],
        &[("CLOUDSYNC_ADMIN_PASSWORD", HIA.1)],
    );
    assert!(o.status.success(), "{}", text(&o));
}

/// One `agent sync-once` (must succeed); returns its output.
pub fn sync_once(config: &Path) -> String {
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

/// One AD entry: attribute name (lower case) → values (objectGUID and objectSid base64, others text).
pub type Entry = BTreeMap<String, Vec<String>>;

/// ldapsearch as Administrator under `base`; entries by DN.
pub fn ad_search(dc: &LabDc, base: &str, filter: &str, attrs: &[&str]) -> BTreeMap<String, Entry> {
    ad_search_scoped(dc, base, "sub", filter, attrs)
}

/// [`ad_search`] with an explicit scope (`base`, `one`, `sub`); a missing base gives no entries.
pub fn ad_search_scoped(
    dc: &LabDc,
    base: &str,
    scope: &str,
    filter: &str,
    attrs: &[&str],
) -> BTreeMap<String, Entry> {
    let out = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &dc.ldaps_url])
        .args(["-D", &dc.admin_upn, "-w", &dc.admin_password])
        .args(["-E", "pr=500/noprompt", "-s", scope, "-b", base, filter])
        .args(attrs)
        .output()
        .unwrap();
    // 32: noSuchObject (the base is gone).
    if out.status.code() == Some(32) {
        return BTreeMap::new();
    }
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
            Some(b64) if name != "objectGUID" && name != "objectSid" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .unwrap();
                // Text with non-ASCII characters; other binary values stay base64.
                String::from_utf8(bytes).unwrap_or_else(|_| b64.trim().to_owned())
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

/// The first value of `name`, as a JSON string (Null when absent).
pub fn one(e: &Entry, name: &str) -> Value {
    e.get(name)
        .and_then(|v| v.first())
        .map_or(Value::Null, |v| Value::String(v.clone()))
}

/// Every page of a Graph collection.
pub async fn graph_all(t: &TenantFixture, token: &str, first: &str) -> Vec<Value> {
    t.graph_all(token, first).await
}
