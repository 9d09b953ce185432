//! A gMSA's password changing while the agent runs, on a lab DC whose clock runs under libfaketime
//! (`LabOptions::faketime_file`: the offset is a file the test rewrites).
//!
//! - `samba_serves_and_accepts_around_a_change_as_documented`: the oracle for the agent's schedule,
//!   measured with tools independent of the agent (ldapsearch as the host for the blob, `ldbsearch
//!   --pw-nt-hash` for which hash the DC accepts): more than 5 minutes before the change the blob's
//!   current password is accepted and no previous one is listed; in the last 5 minutes the blob lists
//!   the *next* password as current and the accepted one as previous; after the change only the new
//!   one is accepted. (`account::gmsa::Held`'s table.)
//! - `the_agent_rides_across_a_password_change_without_a_refused_bind`: the agent installed with
//!   "Create gMSA" runs as a daemon under the same fake clock (its monotonic clock too, so its schedule
//!   and the DC's move together); the clock is stepped from before the window, into it, and past the
//!   change; after each step an AD change (an attribute, then a password) must reach the tenant. The
//!   daemon's log must show the password read again at each stage and no refused bind, and the DC's
//!   blob must really have changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudsync_agent::account::gmsa_blob::ManagedPassword;
use cloudsync_agent::nt_hash::NtHash;
use common::lab::{LabDc, LabOptions, unicode_pwd_base64};
use tenant_fixture::{HIA, TenantFixture, signin};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The offset file both clocks read; `set` waits for libfaketime's one-second cache to expire.
struct FakeClock(PathBuf);

impl FakeClock {
    fn new(dir: &Path) -> FakeClock {
        let c = FakeClock(dir.join("faketime"));
        c.set(0);
        c
    }

    fn set(&self, offset_secs: i64) {
        std::fs::write(&self.0, format!("{offset_secs:+}\n")).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
    }
}

fn faked_dc(clock: &FakeClock) -> LabDc {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: scripts/lab.sh install (package faketime)"
    );
    LabDc::start_with(LabOptions {
        faketime_file: Some(clock.0.clone()),
        ..Default::default()
    })
}

#[test]
fn samba_serves_and_accepts_around_a_change_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(tmp.path());
    let dc = faked_dc(&clock);
    let gmsa_dn = dc.create_gmsa("rotgmsa");
    let host = dc.create_computer("ROTHOST");
    dc.gmsa_allow("rotgmsa", &host.sam_account_name);
    let read = || {
        ManagedPassword::decode(
            &dc.read_managed_password(&gmsa_dn, &host.dn, &host.password)
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    };
    let accepts = |h: &NtHash| dc.ldap_bind_with_nt_hash("rotgmsa$", h.expose()).is_ok();
    let p0 = read();
    let n0 = i64::try_from(p0.next_change_in.as_secs()).unwrap();
    assert!(n0 > 24 * 3600, "a new gMSA changes in days: {n0} s");
    assert!(p0.previous.is_none());
    assert!(accepts(&p0.current));

    // 10 minutes before the change: as at the start.
    clock.set(n0 - 600);
    let b = read();
    assert_eq!(b.current, p0.current);
    assert!(b.previous.is_none());
    assert!(b.next_change_in <= Duration::from_secs(600));

    // 2 minutes before: the next password is served as current, the accepted one as previous.
    clock.set(n0 - 120);
    let b = read();
    let p1 = b.current.clone();
    assert_ne!(p1, p0.current);
    assert_eq!(b.previous.as_ref(), Some(&p0.current));
    assert!(b.next_change_in <= Duration::from_secs(120));
    assert!(accepts(&p0.current), "the old password is still accepted");
    assert!(!accepts(&p1), "the next one is not accepted yet");

    // After the change: only the new one.
    clock.set(n0 + 60);
    let b = read();
    assert_eq!(b.current, p1);
    assert!(b.previous.is_none());
    assert!(accepts(&p1));
    assert!(!accepts(&p0.current));
}

/// The user as the tenant's Graph API returns it (`None`: not there).
async fn graph_user(t: &TenantFixture, upn: &str) -> Option<serde_json::Value> {
    let token = t.user_token(HIA).await;
    let r = t
        .client
        .get(t.at(&format!("/v1.0/users/{upn}?$select=id,jobTitle")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return None;
    }
    Some(r.json().await.unwrap())
}

async fn job_title(t: &TenantFixture, upn: &str) -> Option<String> {
    graph_user(t, upn).await?["jobTitle"]
        .as_str()
        .map(str::to_string)
}

/// Polls `check` every 500 ms until it holds or `within` passed; the daemon's log on failure.
async fn eventually<F, Fut>(
    what: &str,
    within: Duration,
    log: &Path,
    t: &TenantFixture,
    mut check: F,
) where
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
    let tenant_log = t.log();
    let tail: Vec<&str> = tenant_log.lines().rev().take(40).collect();
    panic!(
        "{what}: not within {within:?}\n--- daemon log\n{}\n--- tenant log (last 40 lines, newest first)\n{}",
        std::fs::read_to_string(log).unwrap_or_default(),
        tail.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_rides_across_a_password_change_without_a_refused_bind() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(tmp.path());
    let dc = faked_dc(&clock);
    // The tenant runs on the same fake clock as the DC and the agent (tokens and client assertions
    // carry times); the test process itself keeps the real one and only talks HTTP to it.
    let ft = clock.0.display().to_string();
    let t = TenantFixture::start_with_env(
        &[],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", ft.as_str()),
            ("FAKETIME_CACHE_DURATION", "1"),
        ],
    );
    let prefix = tmp.path().join("agent");
    let scope = format!("projection.scope.ous=[\"OU=SyncUsers,{}\"]", dc.base_dn);
    let (code, out) = agent_run::install(
        &dc,
        &t,
        &prefix,
        HIA,
        &[
            "--service-account-type",
            "create-gmsa",
            "--host-account",
            "ROTAGENT",
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
    let host_file = prefix
        .join("var/lib/cloudsync")
        .join(format!("host-account.{}.pw", dc.dns_domain));
    let host_password = std::fs::read_to_string(&host_file)
        .unwrap()
        .trim()
        .to_string();
    let host_dn = format!("CN=ROTAGENT,CN=Computers,{}", dc.base_dn);
    let gmsa_dn = dc.gmsa_dn("provAgentgMSA");
    let read = || {
        ManagedPassword::decode(
            &dc.read_managed_password(&gmsa_dn, &host_dn, &host_password)
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    };
    let p0 = read();
    let n0 = i64::try_from(p0.next_change_in.as_secs()).unwrap();

    // Six minutes before the change (outside the window) the agent starts and syncs everything.
    clock.set(n0 - 360);
    let log = tmp.path().join("daemon.log");
    // The daemon on the same fake clock, its monotonic clock faked too, so its schedule moves with
    // the DC's.
    let _daemon = agent_run::Daemon::start(
        &config,
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", ft.as_str()),
            ("FAKETIME_CACHE_DURATION", "1"),
        ],
        &log,
    );
    let upn3 = format!("user00003@{}", dc.dns_domain);
    let upn4 = format!("user00004@{}", dc.dns_domain);
    eventually(
        "the initial sync",
        Duration::from_secs(120),
        &log,
        &t,
        || async { graph_user(&t, &upn3).await.is_some() },
    )
    .await;

    // Into the window, past the change, and well after it: each time an AD change must arrive.
    for (offset, title) in [
        (n0 - 240, "in the window"),
        (n0 + 40, "after the change"),
        (n0 + 400, "settled"),
    ] {
        clock.set(offset);
        dc.ldif_admin(&format!(
            "dn: {}\nchangetype: modify\nreplace: title\ntitle: {title}\n",
            dc.user_dn(3)
        ));
        eventually(title, Duration::from_secs(90), &log, &t, || async {
            job_title(&t, &upn3).await.as_deref() == Some(title)
        })
        .await;
    }
    // A password changed after the rotation reaches the tenant through MS-DRSR as the gMSA.
    let new_password = "Rotated!Pass4";
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(4),
        unicode_pwd_base64(new_password)
    ));
    eventually(
        "the new password signs in",
        Duration::from_secs(90),
        &log,
        &t,
        || async { signin(&t, &upn4, new_password).await == 200 },
    )
    .await;

    // The DC did rotate; the agent read the password at each stage and was never refused.
    let now = read();
    assert_ne!(now.current, p0.current, "the DC's password changed");
    let text = std::fs::read_to_string(&log).unwrap();
    let reads = text.matches("read the gMSA password").count();
    assert!(
        reads >= 3,
        "expected a read at start, at the window and after the change, got {reads}:\n{text}"
    );
    for refused in ["refused", "reading it again", "data 52e"] {
        assert!(
            !text.contains(refused),
            "{refused:?} in the daemon log:\n{text}"
        );
    }
    assert!(!text.contains(&host_password));
}
