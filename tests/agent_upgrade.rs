//! `cloudsync updater run` applying signed releases, against the real tenant and copies of the real
//! binary (docs/updater.md): an upgrade (swapped, `.previous` kept, the tenant sees the agent Active
//! on the new binary); refusals that leave the binary untouched (an older version, a bad
//! signature, a truncated download, no pinned key); a new binary that exits at start, rolled back
//! to the previous one, which heartbeats again; two agents staggered by the upgrade slot.
//!
//! "A newer build" is the real binary with a marker appended (still a runnable ELF, a different
//! SHA-256) published under a higher version: health is "the tenant sees a heartbeat from the
//! binary whose SHA-256 is the release's", so no test-only switch is needed in the agent. Each agent
//! runs from its own copy under a temp dir, (re)started by a restart script — the
//! `[updater] restart_command` a `--prefix` install uses — with an unreachable DC (heartbeats need
//! none).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;
use tenant_fixture::{GA, HIA, TENANT_ID, TenantFixture};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `bin` with `args`, `stdin` fed, at log level info.
fn run(bin: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("CLOUDSYNC_LOG", "info")
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
    child.wait_with_output().unwrap()
}

fn real() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloudsync"))
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Restarts the agent of `dir`: stops the one in `agent.pid` (SIGTERM, waits until it is gone or a
/// zombie), starts `bin/cloudsync agent run` detached, records its pid.
const RESTART: &str = r#"#!/bin/sh
D="$(dirname "$0")"
alive() { [ -r /proc/$1/stat ] && [ "$(cut -d' ' -f3 /proc/$1/stat)" != Z ]; }
if [ -f "$D/agent.pid" ]; then
  P=$(cat "$D/agent.pid")
  kill "$P" 2>/dev/null
  i=0; while alive "$P" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  alive "$P" && kill -9 "$P"
fi
setsid "$D/bin/cloudsync" agent run --config "$D/agent.toml" >>"$D/agent.log" 2>&1 < /dev/null &
echo $! > "$D/agent.pid"
"#;

/// One agent: its own binary copy, configuration, registration, key pin and restart script.
struct Rig {
    dir: tempfile::TempDir,
    original: Vec<u8>,
}

impl Rig {
    fn new(t: &TenantFixture, public_key: Option<&str>, extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::copy(real(), d.join("bin/cloudsync")).unwrap();
        std::fs::set_permissions(
            d.join("bin/cloudsync"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(d.join("restart.sh"), RESTART).unwrap();
        let key = public_key
            .map(|k| format!("public_key = \"{k}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            d.join("agent.toml"),
            format!(
                r#"
[metrics]
listen = ""
[agent]
journal_dir = "{d}/state/journal"
shutdown_grace_secs = 2
[domains.corp]
dns_name = "corp.example.test"
url = "ldaps://127.0.0.1:1"
ca_file = "{tca}"
bind_dn = "svc-sync@corp.example.test"
password = "unused"
notifications = false
[tenant]
url = "{turl}"
ca_file = "{tca}"
tenant_id = "{TENANT_ID}"
credentials_file = "{d}/credentials.json"
[push]
heartbeat_interval_secs = 1
projection_tick_ms = 100
[updater]
{key}restart_command = ["/bin/sh", "{d}/restart.sh"]
health_deadline_secs = 20
{extra}
"#,
                d = d.display(),
                tca = t.dir.path().join("ca.pem").display(),
                turl = t.url,
            ),
        )
        .unwrap();
        let o = run(
            &real(),
            &[
                "agent",
                "register",
                "--config",
                d.join("agent.toml").to_str().unwrap(),
                "--admin-upn",
                HIA.0,
            ],
            &format!("{}\n", HIA.1),
        );
        assert!(o.status.success(), "register: {}", text(&o));
        let original = std::fs::read(d.join("bin/cloudsync")).unwrap();
        Rig { dir, original }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn config(&self) -> String {
        self.path("agent.toml").to_str().unwrap().to_owned()
    }

    fn agent_id(&self) -> String {
        let creds: Value =
            serde_json::from_slice(&std::fs::read(self.path("credentials.json")).unwrap()).unwrap();
        creds["agentId"]
            .as_str()
            .or(creds["agent_id"].as_str())
            .unwrap()
            .to_owned()
    }

    fn start_agent(&self) {
        let o = Command::new("/bin/sh")
            .arg(self.path("restart.sh"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }

    /// `updater run` from this agent's own binary (so the running executable is the one swapped).
    fn updater(&self, set: &[&str]) -> (Option<i32>, String) {
        let mut args = vec!["updater", "run", "--config"];
        let config = self.config();
        args.push(&config);
        for s in set {
            args.push("--set");
            args.push(s);
        }
        let o = run(&self.path("bin/cloudsync"), &args, "");
        (o.status.code(), text(&o))
    }

    fn binary(&self) -> Vec<u8> {
        std::fs::read(self.path("bin/cloudsync")).unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.path("agent.pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
    }
}

/// Waits until the tenant shows `agent` Active with a heartbeat from the binary `sha`.
async fn wait_for_binary(t: &TenantFixture, agent: &str, sha: &str, within: Duration) {
    let ga = t.user_token(GA).await;
    let until = Instant::now() + within;
    loop {
        let a = t.get_json(&ga, &format!("/api/v1/agents/{agent}")).await;
        if a["status"] == "Active" && a["binarySha256"] == sha {
            return;
        }
        assert!(Instant::now() < until, "the tenant never saw {sha}: {a}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `release keygen` into `dir`; returns (private key file, public key base64).
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let o = run(
        &real(),
        &["release", "keygen", "--out", key.to_str().unwrap()],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
    assert!(text(&o).contains(public.trim()), "{}", text(&o));
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(
        !text(&o).contains(private.trim()),
        "the private key was printed"
    );
    (key, public.trim().to_owned())
}

/// Signs `binary` as `version` with `key` and publishes it as a Global Administrator.
fn publish(t: &TenantFixture, key: &Path, binary: &Path, version: &str) -> String {
    let o = run(
        &real(),
        &[
            "release",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--binary",
            binary.to_str().unwrap(),
            "--version",
            version,
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let signature = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let ca = t.dir.path().join("ca.pem");
    let o = run(
        &real(),
        &[
            "release",
            "publish",
            "--tenant-url",
            &t.url,
            "--tenant-id",
            TENANT_ID,
            "--ca-file",
            ca.to_str().unwrap(),
            "--admin-upn",
            GA.0,
            "--admin-password-file",
            "-",
            "--version",
            version,
            "--binary",
            binary.to_str().unwrap(),
            "--signature",
            &signature,
        ],
        &format!("{}\n", GA.1),
    );
    assert!(o.status.success(), "publish: {}", text(&o));
    assert!(
        text(&o).contains(&format!("Published cloudsync {version}")),
        "{}",
        text(&o)
    );
    signature
}

/// The real binary with a marker appended: runnable, and a different SHA-256.
fn newer_build(dir: &Path, marker: &str) -> PathBuf {
    let path = dir.join(format!("cloudsync-{marker}"));
    let mut bytes = std::fs::read(real()).unwrap();
    bytes.extend_from_slice(format!("\ncloudsync-test-build-{marker}\n").as_bytes());
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_newer_release_is_swapped_in_and_the_agent_runs_it() {
    let t = TenantFixture::start();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keygen(work.path(), "release.key");
    let rig = Rig::new(&t, Some(&public), "");
    rig.start_agent();
    let agent = rig.agent_id();
    wait_for_binary(&t, &agent, &sha(&rig.original), Duration::from_secs(30)).await;

    let new = newer_build(work.path(), "a");
    publish(&t, &key, &new, "99.0.0");
    let (code, out) = rig.updater(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Updated cloudsync"), "{out}");
    assert!(out.contains("→ 99.0.0"), "{out}");
    let new_bytes = std::fs::read(&new).unwrap();
    assert!(rig.binary() == new_bytes, "the binary was not swapped");
    assert!(std::fs::read(rig.path("bin/cloudsync.previous")).unwrap() == rig.original);
    assert!(!rig.path("bin/cloudsync.new").exists());
    assert_eq!(
        std::fs::metadata(rig.path("bin/cloudsync"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    // The tenant sees the new binary Active (what the updater waited for), and keeps seeing it.
    wait_for_binary(&t, &agent, &sha(&new_bytes), Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_leave_the_installed_binary_untouched() {
    let t = TenantFixture::start();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keygen(work.path(), "release.key");
    let (other_key, _) = keygen(work.path(), "other.key");
    let rig = Rig::new(&t, Some(&public), "");
    let new = newer_build(work.path(), "r");

    // An older version than the running one (validly signed): refused, never downgrade.
    publish(&t, &key, &new, "0.0.1");
    let (code, out) = rig.updater(&[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("Refused cloudsync 0.0.1: version 0.0.1 is older than the running"),
        "{out}"
    );
    assert!(out.contains("ERROR"), "{out}");
    assert!(rig.binary() == rig.original);

    // Signed with another key: refused before anything is downloaded.
    publish(&t, &other_key, &new, "99.0.0");
    let (code, out) = rig.updater(&[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("Refused cloudsync 99.0.0: bad signature: it does not verify with the public key pinned at install"), "{out}");
    assert!(rig.binary() == rig.original);
    assert!(!rig.path("bin/cloudsync.new").exists());

    // A truncated download: the tenant's stored file cut short (it still announces the full size).
    publish(&t, &key, &new, "99.0.1");
    let stored = t.dir.path().join("state/releases/99.0.1.bin");
    let len = std::fs::metadata(&stored).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .unwrap();
    f.set_len(len / 2).unwrap();
    let (code, out) = rig.updater(&[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("Refused cloudsync 99.0.1: truncated download"),
        "{out}"
    );
    assert!(rig.binary() == rig.original);
    assert!(!rig.path("bin/cloudsync.new").exists());
    assert!(!rig.path("bin/cloudsync.previous").exists());

    // A corrupt download: same length, other bytes.
    let mut bytes = std::fs::read(&new).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let (code, out) = rig.updater(&[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("Refused cloudsync 99.0.1: corrupt download: its SHA-256 is"),
        "{out}"
    );
    assert!(rig.binary() == rig.original);

    // No key pinned: only reported, exit 2, saying why.
    let unpinned = Rig::new(&t, None, "");
    let (code, out) = unpinned.updater(&[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no release public key is pinned"), "{out}");
    assert!(unpinned.binary() == unpinned.original);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_binary_that_exits_at_start_is_rolled_back() {
    let t = TenantFixture::start();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keygen(work.path(), "release.key");
    let rig = Rig::new(&t, Some(&public), "");
    rig.start_agent();
    let agent = rig.agent_id();
    wait_for_binary(&t, &agent, &sha(&rig.original), Duration::from_secs(30)).await;

    let broken = work.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 1\n").unwrap();
    publish(&t, &key, &broken, "99.0.0");
    let started = Instant::now();
    let (code, out) = rig.updater(&["updater.health_deadline_secs=6"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("ERROR"), "{out}");
    assert!(out.contains("rolled back to the previous binary"), "{out}");
    assert!(out.contains("ROLLED BACK cloudsync 99.0.0: the tenant did not see this agent Active on the new binary within 6 s; the previous binary runs again"), "{out}");
    // It waited (nearly) the whole deadline: polls stop when the next one would pass it.
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(
        rig.binary() == rig.original,
        "the previous binary is not back"
    );
    assert!(!rig.path("bin/cloudsync.previous").exists());
    // The previous binary runs and heartbeats again.
    wait_for_binary(&t, &agent, &sha(&rig.original), Duration::from_secs(10)).await;
    let pid = std::fs::read_to_string(rig.path("agent.pid")).unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", pid.trim())).unwrap();
    assert_eq!(exe, rig.path("bin/cloudsync"));
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_of_one_tenant_upgrade_one_at_a_time() {
    let t = TenantFixture::start();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keygen(work.path(), "release.key");
    let a = Rig::new(&t, Some(&public), "");
    let b = Rig::new(&t, Some(&public), "");
    // A's restart waits until the test opens a gate: A holds the slot until then, however slowly
    // B's updater downloads on a loaded machine (a fixed 6 s sleep lost that race at load 18).
    let gate = a.path("restart.gate");
    std::fs::write(
        a.path("slow-restart.sh"),
        format!(
            "#!/bin/sh\nwhile [ ! -e {} ]; do sleep 0.1; done\nexec /bin/sh {}\n",
            gate.display(),
            a.path("restart.sh").display()
        ),
    )
    .unwrap();
    a.start_agent();
    b.start_agent();
    wait_for_binary(
        &t,
        &a.agent_id(),
        &sha(&a.original),
        Duration::from_secs(30),
    )
    .await;
    wait_for_binary(
        &t,
        &b.agent_id(),
        &sha(&b.original),
        Duration::from_secs(30),
    )
    .await;
    let new = newer_build(work.path(), "s");
    publish(&t, &key, &new, "99.0.0");
    let new_bytes = std::fs::read(&new).unwrap();

    let a_restart = format!(
        "updater.restart_command=[\"/bin/sh\", \"{}\"]",
        a.path("slow-restart.sh").display()
    );
    let a_cfg = a.config();
    let a_bin = a.path("bin/cloudsync");
    let a_run = std::thread::spawn(move || {
        let o = run(
            &a_bin,
            &["updater", "run", "--config", &a_cfg, "--set", &a_restart],
            "",
        );
        (o.status.code(), text(&o), Instant::now())
    });
    // Wait until A has the slot (its binary is swapped before the slow restart).
    let until = Instant::now() + Duration::from_secs(30);
    while a.binary() != new_bytes {
        assert!(Instant::now() < until, "A never swapped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B, with a short wait: deferred, untouched.
    let (code, out) = b.updater(&["updater.slot_wait_secs=1"]);
    assert_eq!(code, Some(5), "{out}");
    assert!(
        out.contains("Deferred cloudsync 99.0.0: another agent of this tenant is upgrading"),
        "{out}"
    );
    assert!(b.binary() == b.original);
    // B, waiting: it gets the slot only once A's new binary heartbeats, then upgrades.
    // The gate opens once B has said it waits for the slot (its log, read as it is written).
    let b_log = b.path("updater-b.log");
    let log_file = std::fs::File::create(&b_log).unwrap();
    let b_config = b.config();
    let mut b_run = Command::new(b.path("bin/cloudsync"))
        .args(["updater", "run", "--config", &b_config])
        .args(["--set", "updater.slot_wait_secs=60"])
        .env("CLOUDSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&b_log)
        .unwrap_or_default()
        .contains("waiting for the upgrade slot")
    {
        assert!(
            Instant::now() < until,
            "B never waited for the slot:\n{}",
            std::fs::read_to_string(&b_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&gate, b"").unwrap();
    let status = b_run.wait().unwrap();
    let b_done = Instant::now();
    let out = std::fs::read_to_string(&b_log).unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    let (a_code, a_out, a_done) = a_run.join().unwrap();
    assert_eq!(a_code, Some(0), "{a_out}");
    assert!(a_done < b_done, "B finished before A");
    assert!(b.binary() == new_bytes);
    wait_for_binary(&t, &a.agent_id(), &sha(&new_bytes), Duration::from_secs(5)).await;
    wait_for_binary(&t, &b.agent_id(), &sha(&new_bytes), Duration::from_secs(5)).await;
}
