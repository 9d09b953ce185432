//! `cloudsync agent units`: the generated `cloudsync-agent.service`, `cloudsync-updater.service` and
//! `cloudsync-updater.timer` pass `systemd-analyze verify` (systemd's own parser, the oracle for what a
//! unit means) with no warning; the agent runs this binary on this configuration and writes nothing
//! but the configuration's state directories; the updater runs `updater run` once, writing only beside the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn verify(unit: &std::path::Path) -> (bool, String) {
    verify_all(&[unit])
}

fn verify_all(units: &[&std::path::Path]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed: scripts/test.sh installs it");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success() && stderr.trim().is_empty(), stderr)
}

#[test]
fn the_generated_unit_is_valid_and_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\njournal_dir = \"{}\"\n[domains.corp]\ndns_name = \"corp.example.test\"\n\
             url = \"ldap://127.0.0.1\"\nallow_plaintext = true\nbind_dn = \"svc@corp.example.test\"\n\
             password_file = \"{}\"\n",
            state.join("journal").display(),
            dir.path().join("pw").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("pw"), "x\n").unwrap();
    let out_dir = dir.path().join("units");
    std::fs::create_dir(&out_dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_cloudsync");
    let out = Command::new(bin)
        .args([
            "agent",
            "units",
            "--config",
            config.to_str().unwrap(),
            "--out",
        ])
        .arg(&out_dir)
        .args(["--user", "cloudsync"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("systemctl daemon-reload && systemctl enable --now cloudsync-agent.service"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "install -d -m 0700 -o cloudsync -g cloudsync {}",
            state.display()
        )),
        "{stdout}"
    );

    let unit_path = out_dir.join("cloudsync-agent.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart=\"{bin}\" --log-json agent run --config \"{}\"",
            config.display()
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("\nReadWritePaths=\"{}\"\n", state.display())),
        "{unit}"
    );
    let (ok, stderr) = verify(&unit_path);
    assert!(ok, "systemd-analyze verify: {stderr}\n{unit}");

    // The check can fail: a unit with a directive systemd cannot parse is reported.
    std::fs::write(
        &unit_path,
        unit.replace("ProtectSystem=strict", "ProtectSystem=bogus"),
    )
    .unwrap();
    let (ok, stderr) = verify(&unit_path);
    assert!(!ok && stderr.contains("protect system value"), "{stderr}");

    // The updater: a oneshot of `updater run` on the same configuration, and its timer.
    assert!(
        stdout.contains("systemctl enable --now cloudsync-agent.service cloudsync-updater.timer"),
        "{stdout}"
    );
    let service = out_dir.join("cloudsync-updater.service");
    let timer = out_dir.join("cloudsync-updater.timer");
    let text = std::fs::read_to_string(&service).unwrap();
    assert!(
        text.contains(&format!(
            "ExecStart=\"{bin}\" --log-json updater run --config \"{}\"",
            config.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("\nType=oneshot\n")
            && text.contains(&format!(
                "\nReadWritePaths=\"{}\"\n",
                std::path::Path::new(&bin).parent().unwrap().display()
            )),
        "{text}"
    );
    let (ok, stderr) = verify_all(&[&service, &timer]);
    assert!(ok, "systemd-analyze verify: {stderr}\n{text}");
    // The check can fail here too: a timer with a schedule systemd cannot parse is reported.
    let timer_text = std::fs::read_to_string(&timer).unwrap();
    std::fs::write(
        &timer,
        timer_text.replace("OnCalendar=daily", "OnCalendar=someday"),
    )
    .unwrap();
    let (ok, stderr) = verify_all(&[&service, &timer]);
    assert!(!ok, "a bad OnCalendar= passed: {stderr}");
}

#[test]
fn a_relative_state_path_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[agent]\njournal_dir = \"relative/journal\"\n[domains.corp]\ndns_name = \"corp.example.test\"\n\
         url = \"ldap://127.0.0.1\"\nallow_plaintext = true\nbind_dn = \"svc@corp.example.test\"\npassword = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args([
            "agent",
            "units",
            "--config",
            config.to_str().unwrap(),
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"relative\"") && stderr.contains("not absolute"),
        "{stderr}"
    );
    assert!(!dir.path().join("cloudsync-agent.service").exists());
}
