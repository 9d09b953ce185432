//! Configuration layering through the binary: TOML, then `CLOUDSYNC_*` environment with `__` nesting;
//! every problem reported with its key; secrets never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const TOML: &str = r#"
[agent]
journal_dir = "/from/the/file"

[domains.corp]
dns_name = "corp.example.test"
url = "ldap://127.0.0.1:389"
allow_plaintext = true
bind_dn = "svc-sync@corp.example.test"
"#;

fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
    cmd.args(["agent", "check-config", "--config", path.to_str().unwrap()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn environment_overrides_the_file_and_secrets_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, TOML).unwrap();

    let missing = check_config(&path, &[]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("domains.corp.password"), "{stderr}");

    let ok = check_config(
        &path,
        &[
            ("CLOUDSYNC_DOMAINS__CORP__PASSWORD", "S3cret-from-env"),
            ("CLOUDSYNC_AGENT__JOURNAL_DIR", "/from/the/env"),
            ("CLOUDSYNC_DOMAINS__CORP__POLL_INTERVAL_SECS", "1"),
            ("CLOUDSYNC_PHS__INTERVAL_SECS", "7"),
        ],
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("/from/the/env"), "{stdout}");
    assert!(stdout.contains("poll_interval_secs: 1,"), "{stdout}");
    // [phs] and [fips] are layered like every other section (they once were silently not).
    assert!(stdout.contains("interval_secs: 7,"), "{stdout}");
    assert!(!stdout.contains("S3cret-from-env"), "{stdout}");
}

/// A variable naming a section the file has not (`DOMAIN` for `DOMAINS`) is an error naming it, not a
/// setting silently ignored.
#[test]
fn an_environment_variable_for_an_unknown_section_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, TOML).unwrap();
    let out = check_config(
        &path,
        &[
            ("CLOUDSYNC_DOMAINS__CORP__PASSWORD", "S3cret-from-env"),
            ("CLOUDSYNC_DOMAIN__CORP__URL", "ldap://typo.example.test"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("CLOUDSYNC_DOMAIN__CORP__URL"), "{stderr}");
    assert!(
        stderr.contains("no configuration section `domain`"),
        "{stderr}"
    );
    assert!(!stderr.contains("S3cret-from-env"), "{stderr}");
}

/// `--set` is the last layer: over the file and over the environment; a bad one names itself.
#[test]
fn a_set_flag_overrides_the_environment_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, TOML).unwrap();
    let run = |set: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
        cmd.args(["agent", "check-config", "--config", path.to_str().unwrap()]);
        for s in set {
            cmd.args(["--set", s]);
        }
        cmd.env("CLOUDSYNC_DOMAINS__CORP__PASSWORD", "S3cret-from-env");
        cmd.env("CLOUDSYNC_AGENT__JOURNAL_DIR", "/from/the/env");
        cmd.output().unwrap()
    };
    let out = run(&[
        "agent.journal_dir=/from/the/flag",
        "domains.corp.poll_interval_secs=9",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/from/the/flag"), "{stdout}");
    assert!(!stdout.contains("/from/the/env"), "{stdout}");
    assert!(stdout.contains("poll_interval_secs: 9,"), "{stdout}");

    let bad = run(&["domain.corp.url=ldap://x"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("--set") && stderr.contains("no configuration section `domain`"),
        "{stderr}"
    );
}

/// The real installer's `ENVIRONMENTNAME=AzureUSGovernment` selects the cloud of an agent with a tenant;
/// `CLOUDSYNC_TENANT__ENVIRONMENT` (and `--set`) still win over it; without a `[tenant]` it adds none.
#[test]
fn environmentname_selects_the_cloud_as_the_real_installer_does() {
    let dir = tempfile::tempdir().unwrap();
    let with_tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &with_tenant,
        format!(
            "{TOML}\n[tenant]\nurl = \"https://127.0.0.1:8443\"\ntenant_id = \"contoso.onmicrosoft.com\"\n\
             credentials_file = \"{}\"\n",
            dir.path().join("creds.json").display()
        ),
    )
    .unwrap();
    let pw = ("CLOUDSYNC_DOMAINS__CORP__PASSWORD", "S3cret-from-env");
    let gov = check_config(
        &with_tenant,
        &[pw, ("ENVIRONMENTNAME", "AzureUSGovernment")],
    );
    let stdout = String::from_utf8_lossy(&gov.stdout);
    assert!(
        gov.status.success(),
        "{}",
        String::from_utf8_lossy(&gov.stderr)
    );
    assert!(
        stdout.contains("environment: AzureUSGovernment"),
        "{stdout}"
    );

    let explicit = check_config(
        &with_tenant,
        &[
            pw,
            ("ENVIRONMENTNAME", "AzureUSGovernment"),
            ("CLOUDSYNC_TENANT__ENVIRONMENT", "AzureChinaCloud"),
        ],
    );
    let stdout = String::from_utf8_lossy(&explicit.stdout);
    assert!(stdout.contains("environment: AzureChinaCloud"), "{stdout}");

    let bad = check_config(&with_tenant, &[pw, ("ENVIRONMENTNAME", "AzureGermanCloud")]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("AzureGermanCloud"), "{stderr}");

    let path = dir.path().join("agent.toml");
    std::fs::write(&path, TOML).unwrap();
    let no_tenant = check_config(&path, &[pw, ("ENVIRONMENTNAME", "AzureUSGovernment")]);
    let stdout = String::from_utf8_lossy(&no_tenant.stdout);
    assert!(
        no_tenant.status.success(),
        "{}",
        String::from_utf8_lossy(&no_tenant.stderr)
    );
    assert!(stdout.contains("tenant: None"), "{stdout}");
}
