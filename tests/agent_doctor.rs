//! `cloudsync agent doctor` against the real parts: a lab DC and the real tenant, the agent
//! registered by the real binary. Healthy → exit 0, every line `ok`; a foreign CA for the DC and
//! for the tenant → exit 1 naming TLS and the `ca_file` fix; the DC stopped → exit 1 naming the
//! TCP reachability failure and its fix; an unloadable configuration → exit 2; a skewed clock (the
//! library with an injected `now`, as the machine clock cannot be changed) → the clock checks
//! FAIL with the chrony/ntp fix. The rights: an account without any replication right fails the
//! DirSync probe (AD's insufficientAccessRights, the grant or `object_security` fix) and the PHS
//! probe (the "Replicating Directory Changes All" fix); with `object_security` DirSync passes; with
//! only "Replicating Directory Changes" granted DirSync passes and PHS still fails. StartTLS gets
//! the certificate expiry check as LDAPS does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/agent_run.rs"]
mod agent_run;
#[allow(unused_imports)]
mod common;
#[path = "common/tenant.rs"]
mod tenant_fixture;

use std::path::Path;
use std::time::{Duration, SystemTime};

use agent_run::{agent, register, write_config};
use cloudsync_agent::config::Config;
use cloudsync_agent::control::doctor::{self, Status};
use common::lab::LabDc;
use tenant_fixture::TenantFixture;

/// `agent doctor`'s exit code and its report (stdout). The log (stderr, WARN and above) is not part
/// of the report: a DC just started may reset a first connection, which the agent retries and logs.
fn doctor(config: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["agent", "doctor", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = agent(&args, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !stderr.is_empty() {
        eprintln!("doctor's log:\n{stderr}");
    }
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// A CA that signed nothing the lab serves.
fn foreign_ca(dir: &Path) -> String {
    let path = dir.join("foreign-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path.display().to_string()
}

/// The line of `out` whose check starts with `what` (after the status).
fn line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(5..).is_some_and(|rest| rest.starts_with(what)))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{out}"))
}

#[test]
fn doctor_on_a_healthy_agent_then_a_foreign_ca_then_a_stopped_dc() {
    let mut dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dc, &t, dir.path(), &[]);
    register(&config);

    // Healthy: exit 0, and every check the oracle expects is there and ok.
    let (code, out) = doctor(&config, &[]);
    assert_eq!(code, Some(0), "{out}");
    for l in out.lines() {
        // The disk line reports this machine's real file system, which may be under 10 % free (a
        // warning, still exit 0); every other check of a healthy agent is ok.
        let disk_warning = l.starts_with("warn disk space under ");
        assert!(l.starts_with("ok ") || disk_warning, "not ok: {l}\n{out}");
    }
    for what in [
        "configuration",
        "state ",
        &format!("corp: DNS {}", dc.ip),
        "corp: TCP",
        "corp: certificate expiry",
        "corp: TLS",
        "corp: bind",
        &format!("corp: read {}", dc.base_dn),
        "corp: DirSync rights",
        "corp: replication rights (password hash sync)",
        "corp: clock",
        "tenant: reach",
        "tenant: credentials",
        "tenant: token",
        "tenant: heartbeat",
        "tenant: clock",
        "disk space under",
    ] {
        line(&out, what);
    }
    // The DC certificate's expiry date, as openssl reads it from the file Samba serves.
    let end = std::process::Command::new("openssl")
        .args(["x509", "-enddate", "-noout", "-in"])
        .arg(dc.dir.join("tls/cert.pem"))
        .output()
        .unwrap();
    let end = String::from_utf8(end.stdout).unwrap();
    let end = end.trim().strip_prefix("notAfter=").unwrap().to_string();
    let day = std::process::Command::new("date")
        .args(["-u", "-d", &end, "+%F"])
        .output()
        .unwrap();
    let day = String::from_utf8(day.stdout).unwrap();
    let expiry = line(&out, "corp: certificate expiry");
    assert!(
        expiry.contains(&format!("expires on {}", day.trim())),
        "{expiry} vs {end}"
    );
    let (code, json) = doctor(&config, &["--json"]);
    assert_eq!(code, Some(0), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["checks"].as_array().unwrap().len() >= 15, "{json}");

    // A foreign CA for the DC: the TLS check fails and names ca_file; nothing after it runs.
    let foreign = foreign_ca(dir.path());
    let (code, out) = doctor(
        &config,
        &["--set", &format!("domains.corp.ca_file={foreign:?}")],
    );
    assert_eq!(code, Some(1), "{out}");
    let tls = line(&out, "corp: TLS");
    assert!(tls.starts_with("FAIL"), "{out}");
    assert!(tls.contains("fix: set [domains.corp] ca_file to a PEM file holding the CA that issued the DC's certificate"), "{out}");
    assert!(!out.contains("corp: bind"), "{out}");
    assert!(line(&out, "tenant: heartbeat").starts_with("ok"), "{out}");

    // A foreign CA for the tenant.
    let (code, out) = doctor(&config, &["--set", &format!("tenant.ca_file={foreign:?}")]);
    assert_eq!(code, Some(1), "{out}");
    let tls = line(&out, "tenant: TLS");
    assert!(tls.starts_with("FAIL"), "{out}");
    assert!(tls.contains("fix: set [tenant] ca_file"), "{out}");
    assert!(line(&out, "corp: bind").starts_with("ok"), "{out}");

    // An unloadable configuration: exit 2.
    let (code, out) = doctor(&config, &["--set", "domains.corp.url=42"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.starts_with("FAIL configuration:"), "{out}");

    // The DC stopped: TCP reachability fails with its fix.
    dc.stop();
    let (code, out) = doctor(&config, &[]);
    assert_eq!(code, Some(1), "{out}");
    let tcp = line(&out, "corp: TCP");
    assert!(
        tcp.starts_with("FAIL") && tcp.contains("unreachable"),
        "{out}"
    );
    assert!(
        tcp.contains("fix: start the DC's LDAP service or open TCP port 636"),
        "{out}"
    );
    assert!(line(&out, "tenant: heartbeat").starts_with("ok"), "{out}");
}

#[test]
fn a_skewed_clock_fails_against_the_dc_and_the_tenant() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dc, &t, dir.path(), &[]);
    register(&path);
    let config = Config::load_layered(&path, "CLOUDSYNC_", &[]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // The DC and the tenant run on this machine's clock: ten minutes ahead is ten minutes of skew.
    let ahead = SystemTime::now() + Duration::from_secs(600);
    let report = rt.block_on(doctor::run(&config, ahead));
    assert_eq!(report.exit_code(), 1);
    for what in ["corp: clock", "tenant: clock"] {
        let c = report.checks.iter().find(|c| c.what == what).unwrap();
        assert_eq!(c.status, Status::Fail, "{c}");
        assert!(c.detail.contains("ahead of"), "{c}");
    }
    let dc_clock = report
        .checks
        .iter()
        .find(|c| c.what == "corp: clock")
        .unwrap();
    assert_eq!(
        dc_clock.fix.as_deref(),
        Some("synchronise the clock (chrony/ntp) with the DC")
    );

    // Two minutes behind: a warning, exit code still 0 when nothing else fails.
    let behind = SystemTime::now() - Duration::from_secs(120);
    let report = rt.block_on(doctor::run(&config, behind));
    let c = report
        .checks
        .iter()
        .find(|c| c.what == "corp: clock")
        .unwrap();
    assert_eq!(c.status, Status::Warn, "{c}");
    assert_eq!(report.exit_code(), 0, "{:#?}", report.checks);
}

#[test]
fn rights_are_probed_for_real_and_each_refusal_names_its_fix() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dc, &t, dir.path(), &[]);

    // An ordinary user: it binds and reads, but holds no replication right.
    let password = "No!Rights2024x";
    let dn = format!("CN=norights,CN=Users,{}", dc.base_dn);
    let upn = format!("norights@{}", dc.dns_domain);
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: norights\n\
         userPrincipalName: {upn}\nunicodePwd:: {}\nuserAccountControl: 512\n",
        common::lab::unicode_pwd_base64(password)
    ));
    // The same configuration, bound as that user (its password in the file, not on argv).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            &format!("bind_dn = \"{}\"", dc.svc_upn),
            &format!("bind_dn = \"{upn}\""),
        )
        .replace(
            &format!("password = \"{}\"", dc.svc_password),
            &format!("password = \"{password}\""),
        );
    assert!(text.contains(&upn) && text.contains(password), "{text}");
    let config = dir.path().join("norights.toml");
    std::fs::write(&config, text).unwrap();
    let args: Vec<&str> = Vec::new();
    let (code, out) = doctor(&config, &args);
    assert_eq!(code, Some(1), "{out}");
    assert!(line(&out, "corp: bind").starts_with("ok"), "{out}");
    let dirsync = line(&out, "corp: DirSync rights");
    assert!(dirsync.starts_with("FAIL"), "{out}");
    assert!(dirsync.contains("insufficientAccessRights (50)"), "{out}");
    assert!(
        dirsync.contains(&format!("fix: grant {upn} \"Replicating Directory Changes\" on the domain root, or set [domains.corp] object_security = true")),
        "{out}"
    );
    let phs = line(&out, "corp: replication rights (password hash sync)");
    assert!(phs.starts_with("FAIL"), "{out}");
    // ERROR_DS_DRA_ACCESS_DENIED (8453), as the DC answered the GetNCChanges.
    assert!(phs.contains("0x2105"), "{out}");
    assert!(
        phs.contains("\"Replicating Directory Changes All\" on the domain root"),
        "{out}"
    );

    // With object_security the same account may use DirSync.
    let mut with_os = args.clone();
    with_os.extend(["--set", "domains.corp.object_security=true"]);
    let (_, out) = doctor(&config, &with_os);
    assert!(
        line(&out, "corp: DirSync rights").starts_with("ok"),
        "{out}"
    );

    // Granted only "Replicating Directory Changes": DirSync passes, password hash sync does not.
    let o = std::process::Command::new("samba-tool")
        .args(["dsacl", "set", "-s"])
        .arg(&dc.smb_conf)
        .arg(format!("--objectdn={}", dc.base_dn))
        .args(["--car=get-changes", "--action=allow"])
        .arg(format!("--trusteedn={dn}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", agent_run::text(&o));
    let (code, out) = doctor(&config, &args);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line(&out, "corp: DirSync rights").starts_with("ok"),
        "{out}"
    );
    let phs = line(&out, "corp: replication rights (password hash sync)");
    assert!(
        phs.starts_with("FAIL") && phs.contains("Replicating Directory Changes All"),
        "{out}"
    );

    // Without password hash sync there is no replication probe.
    let mut no_phs = args.clone();
    no_phs.extend(["--set", "phs.enabled=false"]);
    let (_, out) = doctor(&config, &no_phs);
    assert!(!out.contains("replication rights"), "{out}");
}

#[test]
fn starttls_connections_get_the_certificate_expiry_check() {
    let dc = LabDc::start();
    let t = TenantFixture::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dc, &t, dir.path(), &[]);
    let (_, ldaps) = doctor(&config, &[]);
    let expected = line(&ldaps, "corp: certificate expiry").to_string();
    let url = format!("domains.corp.url={:?}", dc.ldap_url);
    let (_, out) = doctor(
        &config,
        &["--set", &url, "--set", "domains.corp.starttls=true"],
    );
    assert!(line(&out, "corp: TLS").starts_with("ok"), "{out}");
    // The same certificate over StartTLS: the same line.
    assert_eq!(line(&out, "corp: certificate expiry"), expected, "{out}");
}
