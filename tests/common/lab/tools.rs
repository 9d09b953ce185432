//! Running `scripts/lab.sh`, checking prerequisites, and the seeded-password pattern.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

/// The password `lab.sh seed` gave an account: `Init!Pass` followed by the digits of its
/// sAMAccountName (`user00042` → `Init!Pass00042`, `staff007` → `Init!Pass007`).
pub fn seeded_password(sam_account_name: &str) -> String {
    let digits: String = sam_account_name
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    format!("Init!Pass{digits}")
}

/// The value of `unicodePwd` for `password` (quoted, UTF-16LE), base64-encoded for an LDIF
/// `unicodePwd:: …` line.
pub fn unicode_pwd_base64(password: &str) -> String {
    let quoted: Vec<u8> = format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(quoted)
}

pub(super) fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("lab.sh")
}

/// Runs `lab.sh ARGS` with the given `LAB_*` knobs (all others cleared so a developer's shell
/// cannot change the fixture) and returns stdout; panics with the script's output on failure.
pub(super) fn lab_sh(args: &[&str], knobs: &[(&str, &str)]) -> String {
    try_lab_sh(args, knobs).unwrap_or_else(|e| panic!("lab: {e}"))
}

/// [`lab_sh`] returning the failure instead of panicking.
pub(super) fn try_lab_sh(args: &[&str], knobs: &[(&str, &str)]) -> Result<String, String> {
    let script = script_path();
    let mut cmd = Command::new("bash");
    cmd.arg(&script).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LAB_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(knobs.iter().copied());
    run(&mut cmd, &format!("lab.sh {}", args.join(" ")))
}

/// Runs `cmd` to completion; `Ok(stdout)` on exit status 0, else a message with both streams.
pub(super) fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Parses `export KEY='value'` lines (the output of `lab.sh env`).
pub(super) fn parse_env_output(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(key, value)| {
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// Panics, saying what to do, unless Samba and the OpenLDAP client tools are installed and we are
/// root (Samba binds ports below 1024 and the fixture reads the root-only ldap_priv socket).
pub(super) fn require_lab_prerequisites() {
    if let Err(message) = check_prerequisites(std::env::var_os("PATH").as_deref()) {
        panic!("{message}");
    }
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|r| r.split_whitespace().nth(1).map(str::to_owned))
            })
        })
        .flatten();
    assert_eq!(
        euid.as_deref(),
        Some("0"),
        "lab: the lab DC needs root (Samba binds ports < 1024 on 127.0.0.N); run the tests as root"
    );
}

/// `Err` with an actionable message when a tool the lab needs is missing from `path_var` (plus the
/// sbin directories, which a non-login PATH may lack).
pub fn check_prerequisites(path_var: Option<&std::ffi::OsStr>) -> Result<(), String> {
    let mut dirs: Vec<PathBuf> = path_var
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    let missing: Vec<&str> = [
        "samba",
        "samba-tool",
        "ldbsearch",
        "ldapsearch",
        "ldapmodify",
    ]
    .into_iter()
    .filter(|tool| !dirs.iter().any(|d| is_executable(&d.join(tool))))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "lab: this test needs a real Samba AD DC, but {} not installed. Install the lab packages \
         (Debian 12, as root) with `scripts/lab.sh install`, then run the tests again.",
        match missing.as_slice() {
            [one] => format!("`{one}` is"),
            many => format!("`{}` are", many.join("`, `")),
        }
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
