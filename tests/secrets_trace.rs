//! Secrets at TRACE: the whole pipeline — `agent install`, `agent writeback enable`, the daemon syncing
//! with password hash sync, a cloud password reset written back into AD, a second agent installed and an
//! HA handover to it, a password changed in AD synced by the new holder — with every process logging at
//! `trace` (the LDAP driver included), then three scans:
//!
//! 1. **Logs**: no AD password, NT hash, salted PBKDF2 value, client secret, writeback private key,
//!    signing key, writeback password or bearer token appears in any log line of any process (both
//!    daemons, both installs, `writeback enable`, the tenant).
//! 2. **Files**: a file under either agent's prefix or the tenant's directory that holds a secret is
//!    mode 0600 and is one meant to hold it (the credentials file, the password file the configuration
//!    names, the journal/outbox/state stores, the tenant's store and seed file); every state directory
//!    is 0700.
//! 3. **HTTP bodies**: the Graph user list, the agents and configurations resources and the portal's
//!    pages carry none of them.
//!
//! The scans are checked on known positives first (the test's own password files, the credentials
//! file), so an empty finding means "looked and found nothing", not "looked nowhere".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/diff_oracle.rs"]
mod diff_oracle;
#[path = "common/ha.rs"]
mod ha;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_run::{Daemon, agent_stdin};
use base64::Engine as _;
use common::lab::{LabDc, seeded_password};
use md4::Digest as _;
use serde_json::{Value, json};
use tenant_fixture::{GA, HIA, TenantFixture, signin};

/// Everything at TRACE, the LDAP driver too (the CLI keeps `ldap3` at error unless the filter names it).
const TRACE: &str = "trace,ldap3=trace";
const METHOD: &str = "28c10230-6103-485e-b985-444c60001490";

/// One secret and the forms it may take on disk or in a log.
struct Secret {
    what: String,
    needles: Vec<Vec<u8>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nt_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    md4::Md4::digest(&utf16).into()
}

/// A password: as text, as UTF-16LE (what `unicodePwd` and NTLM carry), base64 of both; and its NT
/// hash in hex (both cases), raw, and base64.
fn password(what: &str, pw: &str) -> Vec<Secret> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let utf16: Vec<u8> = pw.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let nt = nt_hash(pw);
    vec![
        Secret {
            what: format!("{what} password"),
            needles: vec![
                pw.as_bytes().to_vec(),
                utf16.clone(),
                b64.encode(pw).into_bytes(),
                b64.encode(&utf16).into_bytes(),
            ],
        },
        Secret {
            what: format!("{what} NT hash"),
            needles: vec![
                hex(&nt).into_bytes(),
                hex(&nt).to_uppercase().into_bytes(),
                nt.to_vec(),
                b64.encode(nt).into_bytes(),
            ],
        },
    ]
}

fn text_secret(what: &str, value: &str) -> Secret {
    Secret {
        what: what.to_owned(),
        needles: vec![value.as_bytes().to_vec()],
    }
}

/// All the secrets' forms in one automaton: a single pass over a log or a file finds every one.
struct Scanner<'a> {
    secrets: &'a [Secret],
    automaton: aho_corasick::AhoCorasick,
    /// Pattern index → secret index.
    owner: Vec<usize>,
}

impl<'a> Scanner<'a> {
    fn new(secrets: &'a [Secret]) -> Scanner<'a> {
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        for (i, s) in secrets.iter().enumerate() {
            // Shorter forms would match by chance in binary files.
            for n in s.needles.iter().filter(|n| n.len() >= 8) {
                patterns.push(n.clone());
                owner.push(i);
            }
        }
        Scanner {
            secrets,
            automaton: aho_corasick::AhoCorasick::new(&patterns).unwrap(),
            owner,
        }
    }

    /// The secrets found in `bytes`.
    fn found_in(&self, bytes: &[u8]) -> Vec<&'a str> {
        let mut found: Vec<usize> = self
            .automaton
            .find_overlapping_iter(bytes)
            .map(|m| self.owner[m.pattern().as_usize()])
            .collect();
        found.sort_unstable();
        found.dedup();
        found
            .into_iter()
            .map(|i| self.secrets[i].what.as_str())
            .collect()
    }
}

/// Every regular file under `root`, with its mode.
fn files_under(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                out.push((e.path(), meta.permissions().mode() & 0o777));
            }
        }
    }
    out.sort();
    out
}

/// The `v1;PPH1_MD4,<salt>,<iterations>,<hash>;` strings in `bytes`: (salt hex, hash hex).
fn pph1_values(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("PPH1_MD4,")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest.find(';')?;
            let mut parts = rest[..end].split(',');
            let (salt, _iterations, hash) = (parts.next()?, parts.next()?, parts.next()?);
            let is_hex = |s: &str| s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
            (is_hex(salt) && is_hex(hash)).then(|| (salt.to_owned(), hash.to_owned()))
        })
        .collect()
}

/// Bearer tokens (JWTs) in a text: `eyJ….eyJ…`.
fn jwts(text: &str) -> Vec<String> {
    text.match_indices("eyJ")
        .filter_map(|(i, _)| {
            let tok: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            (tok.matches('.').count() >= 2 && tok.split('.').nth(1)?.starts_with("eyJ"))
                .then_some(tok)
        })
        .collect()
}

async fn eventually<F, Fut>(what: &str, within: Duration, logs: &[&Path], mut check: F)
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
    let tails: Vec<String> = logs
        .iter()
        .map(|l| {
            let s = std::fs::read_to_string(l).unwrap_or_default();
            let lines: Vec<&str> = s.lines().filter(|l| !l.contains("TRACE")).collect();
            format!(
                "--- {} (last non-TRACE lines)\n{}",
                l.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            )
        })
        .collect();
    panic!("{what}: not within {within:?}\n{}", tails.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_a_loose_file_or_a_response_at_trace() {
    let dc = LabDc::start();
    let t = TenantFixture::start_with_env(
        &["--heartbeat-interval-secs", "2"],
        &[("CLOUDSYNC_LOG", TRACE)],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let svc = dir.join("svc.pw");
    std::fs::write(&svc, format!("{}\n", dc.svc_password)).unwrap();
    std::fs::set_permissions(&svc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let scope = format!("projection.scope.ous=[\"OU=SyncUsers,{}\"]", dc.base_dn);
    let install_flags = [
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
        "--set",
        "push.heartbeat_interval_secs=2",
    ];
    let mut logs: BTreeMap<String, String> = BTreeMap::new();

    // Agent A: install, writeback on, the daemon.
    let prefix_a = dir.join("agent-a");
    let (code, out) = agent_run::install_logged(&dc, &t, &prefix_a, GA, &install_flags, TRACE);
    assert_eq!(code, Some(0), "{out}");
    logs.insert("install A".into(), out);
    let (code, out) = agent_stdin(
        &[
            "agent",
            "writeback",
            "enable",
            "--allow-unlock",
            "--prefix",
            prefix_a.to_str().unwrap(),
            "--admin-upn",
            GA.0,
            "--admin-password-file",
            "-",
        ],
        GA.1,
        TRACE,
    );
    assert_eq!(code, Some(0), "{out}");
    logs.insert("writeback enable".into(), out);
    let log_a = dir.join("daemon-a.log");
    let log_b = dir.join("daemon-b.log");
    let tenant_log = t.dir.path().join("tenant.log");
    let all_logs = [log_a.as_path(), log_b.as_path(), tenant_log.as_path()];
    let mut a = Daemon::start(
        &prefix_a.join("etc/cloudsync/agent.toml"),
        &[("CLOUDSYNC_LOG", TRACE)],
        &log_a,
    );
    let upn = |i: usize| format!("user{i:05}@{}", dc.dns_domain);

    // Synced with password hash sync: a seeded user signs in with its AD password.
    eventually(
        "user00001 signs in with its AD password (sync + PHS by A)",
        Duration::from_secs(120),
        &all_logs,
        || async { signin(&t, &upn(1), &seeded_password("user00001")).await == 200 },
    )
    .await;

    // A cloud reset written back into AD by A.
    let ga = t.user_token(GA).await;
    let reset_pw = "Trace-Reset-7!qZ";
    let r = t
        .client
        .post(t.at(&format!(
            "/v1.0/users/{}/authentication/methods/{METHOD}/resetPassword",
            upn(2)
        )))
        .bearer_auth(&ga)
        .json(&json!({ "newPassword": reset_pw }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let op_path = location[t.url.len()..].to_string();
    eventually(
        "the reset is written into AD",
        Duration::from_secs(60),
        &all_logs,
        || async {
            let op = t.get_json(&ga, &op_path).await;
            assert_ne!(op["status"], "failed", "{op}");
            op["status"] == "succeeded"
        },
    )
    .await;
    eventually(
        "the reset password signs in at the tenant (written back, then synced back by PHS)",
        Duration::from_secs(90),
        &all_logs,
        || async { signin(&t, &upn(2), reset_pw).await == 200 },
    )
    .await;

    // Agent B: installed beside A, standing by; A stops, B takes the lease over.
    let prefix_b = dir.join("agent-b");
    let (code, out) = agent_run::install_logged(&dc, &t, &prefix_b, GA, &install_flags, TRACE);
    assert_eq!(code, Some(0), "{out}");
    logs.insert("install B".into(), out);
    let id_b = ha::agent_id(&prefix_b.join("var/lib/cloudsync"));
    let mut b = Daemon::start(
        &prefix_b.join("etc/cloudsync/agent.toml"),
        &[("CLOUDSYNC_LOG", TRACE)],
        &log_b,
    );
    let hia = t.user_token(HIA).await;
    eventually(
        "B heartbeats and stands by",
        Duration::from_secs(60),
        &all_logs,
        || async {
            std::fs::read_to_string(&log_b)
                .unwrap_or_default()
                .contains("Standing by")
        },
    )
    .await;
    a.stop();
    ha::wait_for_holder(&t, &hia, &id_b, Duration::from_secs(60)).await;

    // A password changed in AD, synced by the new holder.
    let ad_pw = "Trace-AdSet-4!wX";
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(4),
        common::lab::unicode_pwd_base64(ad_pw)
    ));
    eventually(
        "the AD password change signs in at the tenant (PHS by B)",
        Duration::from_secs(90),
        &all_logs,
        || async { signin(&t, &upn(4), ad_pw).await == 200 },
    )
    .await;

    // HTTP bodies a reader of the tenant gets (read while it still runs).
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    let users = t
        .graph_all(
            &ga,
            "/v1.0/users?$select=id,userPrincipalName,displayName,onPremisesSyncEnabled",
        )
        .await;
    assert!(users.len() > 4, "the Graph user list is read: {users:?}");
    bodies.insert("Graph users".into(), Value::Array(users).to_string());
    for path in ["/api/v1/agents", "/api/v1/configurations"] {
        bodies.insert(path.into(), t.get_json(&hia, path).await.to_string());
    }
    let page = t.portal_page(GA, "/").await;
    assert!(
        page.contains(&id_b),
        "the portal page lists the agents: {page:.500}"
    );
    bodies.insert("the portal page".into(), page);
    b.stop();
    let mut t = t;

    // The secrets, as this test knows them or reads them from where they are meant to be.
    let mut secrets: Vec<Secret> = Vec::new();
    secrets.extend(password("domain administrator", &dc.admin_password));
    secrets.extend(password("sync service account", &dc.svc_password));
    secrets.extend(password("Global Administrator", GA.1));
    secrets.extend(password("Hybrid Identity Administrator", HIA.1));
    for i in 1..=10 {
        let sam = format!("user{i:05}");
        secrets.extend(password(&sam, &seeded_password(&sam)));
    }
    secrets.extend(password("writeback reset", reset_pw));
    secrets.extend(password("AD-set", ad_pw));
    for (name, prefix) in [("A", &prefix_a), ("B", &prefix_b)] {
        let creds: Value = serde_json::from_slice(
            &std::fs::read(prefix.join("var/lib/cloudsync/credentials.json")).unwrap(),
        )
        .unwrap();
        secrets.push(text_secret(
            &format!("{name}'s client secret"),
            creds["clientSecret"].as_str().unwrap(),
        ));
        secrets.push(text_secret(
            &format!("{name}'s writeback private key"),
            creds["writebackPrivateKey"].as_str().unwrap(),
        ));
    }
    secrets.push(text_secret("GA's bearer token", &ga));
    secrets.push(text_secret("HIA's bearer token", &hia));
    let stored_hashes = t.while_stopped(|state| {
        let db = sled::open(state.join("db")).unwrap();
        let tree = db.open_tree("credentials").unwrap();
        let values: Vec<(String, String)> = tree
            .iter()
            .flat_map(|e| pph1_values(&e.unwrap().1))
            .collect();
        drop(db);
        values
    });
    assert!(
        stored_hashes.len() >= 10,
        "the tenant holds the synced password hashes: {}",
        stored_hashes.len()
    );
    for (salt, hash) in &stored_hashes {
        secrets.push(Secret {
            what: "a salted PBKDF2 hash".into(),
            needles: vec![hash.clone().into_bytes(), hash.to_uppercase().into_bytes()],
        });
        secrets.push(Secret {
            what: "a PBKDF2 salt".into(),
            needles: vec![salt.clone().into_bytes()],
        });
    }
    let signing_key = t.signing_key();
    secrets.push(Secret {
        what: "the tenant's signing key".into(),
        needles: vec![
            signing_key.clone(),
            base64::engine::general_purpose::STANDARD
                .encode(&signing_key)
                .into_bytes(),
            hex(&signing_key).into_bytes(),
        ],
    });

    // 1. Logs: nothing, and no bearer token at all; and TRACE really was on.
    logs.insert("daemon A".into(), std::fs::read_to_string(&log_a).unwrap());
    logs.insert("daemon B".into(), std::fs::read_to_string(&log_b).unwrap());
    logs.insert("tenant".into(), t.log());
    let scanner = Scanner::new(&secrets);
    let mut problems = Vec::new();
    for (name, text) in &logs {
        for line in text.lines() {
            for what in scanner.found_in(line.as_bytes()) {
                problems.push(format!("log {name}: {what} in {:.300}", line));
            }
            for tok in jwts(line) {
                problems.push(format!("log {name}: a bearer token ({:.20}…)", tok));
            }
            if line.contains("PPH1_MD4,") {
                problems.push(format!("log {name}: a PPH1 value in {:.300}", line));
            }
        }
    }
    let trace_lines: usize = ["daemon A", "daemon B", "tenant"]
        .iter()
        .map(|n| logs[*n].lines().filter(|l| l.contains("TRACE")).count())
        .sum();
    assert!(
        trace_lines > 100,
        "the processes logged at TRACE: {trace_lines} lines"
    );

    // 2. Files: who holds what, with which mode.
    let password_files: Vec<PathBuf> = [&prefix_a, &prefix_b]
        .iter()
        .flat_map(|p| {
            let toml = std::fs::read_to_string(p.join("etc/cloudsync/agent.toml")).unwrap();
            toml.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    k.trim()
                        .ends_with("password_file")
                        .then(|| PathBuf::from(v.trim().trim_matches('"')))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let is_store = |p: &Path| {
        let s = p.to_string_lossy();
        ["/journal/", "/outbox/", "/projection/", "/state/db/"]
            .iter()
            .any(|d| s.contains(d))
    };
    let test_inputs = [svc.clone()];
    let mut positives = BTreeMap::new();
    for root in [dir, t.dir.path()] {
        for (path, mode) in files_under(root) {
            if path.extension().is_some_and(|e| e == "log") {
                continue; // the logs were scanned line by line above
            }
            let bytes = std::fs::read(&path).unwrap();
            let found = scanner.found_in(&bytes);
            if found.is_empty() {
                continue;
            }
            // The tenant's seed file holds its seeded admins' passwords (it refuses one that is not 0600).
            let meant = path.file_name().is_some_and(|n| n == "credentials.json")
                || path == t.dir.path().join("seed.toml")
                || password_files.contains(&path)
                || is_store(&path)
                || test_inputs.contains(&path)
                || path.to_string_lossy().contains(".secrets/");
            positives.insert(path.clone(), found.clone());
            if !meant {
                problems.push(format!("file {}: holds {found:?}", path.display()));
            }
            if mode & 0o077 != 0 {
                problems.push(format!(
                    "file {} (mode {mode:o}) holds {found:?}",
                    path.display()
                ));
            }
        }
    }
    // Known positives: the scan finds what is where it is meant to be.
    assert!(
        positives
            .get(&svc)
            .is_some_and(|f| f.contains(&"sync service account password")),
        "the scan finds the service account's password in the test's own file: {positives:#?}"
    );
    let creds_a = prefix_a.join("var/lib/cloudsync/credentials.json");
    assert!(
        positives
            .get(&creds_a)
            .is_some_and(|f| f.contains(&"A's client secret")),
        "the scan finds A's client secret in its credentials file: {positives:#?}"
    );
    for prefix in [&prefix_a, &prefix_b] {
        let state = prefix.join("var/lib/cloudsync");
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            problems.push(format!("state directory {} is {mode:o}", state.display()));
        }
    }

    // 3. HTTP bodies.
    for (name, body) in &bodies {
        for what in scanner.found_in(body.as_bytes()) {
            problems.push(format!("HTTP body {name}: {what}"));
        }
        if body.contains("PPH1_MD4") {
            problems.push(format!("HTTP body {name}: a PPH1 value"));
        }
    }

    eprintln!(
        "secrets_trace: {} secrets ({} stored hashes), {} log lines ({trace_lines} at TRACE), {} files holding secrets where meant, {} HTTP bodies",
        secrets.len(),
        stored_hashes.len(),
        logs.values().map(|l| l.lines().count()).sum::<usize>(),
        positives.len(),
        bodies.len()
    );
    for (path, found) in &positives {
        let shown = path
            .strip_prefix(dir)
            .or_else(|_| path.strip_prefix(t.dir.path()))
            .unwrap_or(path);
        eprintln!(
            "  {} holds {} kinds of secret",
            shown.display(),
            found.len()
        );
    }
    // The figures, for RELIABILITY.md (tests/reliability_doc.rs reads them).
    let report = json!({
        "secrets": secrets.len(),
        "storedHashes": stored_hashes.len(),
        "logLines": logs.values().map(|l| l.lines().count()).sum::<usize>(),
        "traceLines": trace_lines,
        "filesHoldingSecretsWhereMeant": positives.len(),
        "httpBodies": bodies.len(),
        "problems": problems.len(),
    });
    let artifacts = std::env::var_os("CLOUDSYNC_ARTIFACTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(
        artifacts.join("secrets-trace.json"),
        serde_json::to_vec_pretty(&report).unwrap(),
    )
    .unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
