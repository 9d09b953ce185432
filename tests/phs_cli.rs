//! `cloudsync phs compute|verify` as an admin runs them: password on stdin, string on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

/// DSInternals' published ConvertTo-OrgIdHash example: 'Pa$$w0rd' with salt 317ee9d1dec6508fa510.
const DSINTERNALS: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";

fn run(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let (code, out, _) = run_full(args, stdin);
    (code, out)
}

fn run_full(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .arg("phs")
        .args(args)
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
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn compute_prints_the_published_value_for_a_fixed_salt() {
    let (code, out) = run(&["compute", "--salt", "317ee9d1dec6508fa510"], "Pa$$w0rd\n");
    assert_eq!(code, Some(0));
    assert_eq!(out.trim_end(), DSINTERNALS);
}

#[test]
fn compute_without_salt_uses_a_fresh_random_one() {
    let (_, a) = run(&["compute"], "Pa$$w0rd");
    let (_, b) = run(&["compute"], "Pa$$w0rd");
    assert!(a.starts_with("v1;PPH1_MD4,") && a.contains(",1000,"), "{a}");
    assert_ne!(a, b);
    let (code, _) = run(&["verify", a.trim_end()], "Pa$$w0rd");
    assert_eq!(code, Some(0));
}

#[test]
fn verify_reports_a_wrong_password_with_exit_code_2() {
    assert_eq!(run(&["verify", DSINTERNALS], "Pa$$w0rd\r\n").0, Some(0));
    assert_eq!(run(&["verify", DSINTERNALS], "Pa$$w0rD").0, Some(2));
    assert_eq!(run(&["verify", "v1;nonsense;"], "x").0, Some(1));
}
