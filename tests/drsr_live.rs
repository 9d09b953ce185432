//! MS-DRSR replication against a real Samba AD DC, as the non-admin sync account that holds only the
//! two replication rights: every seeded user's replicated NT hash equals MD4 of the password the seed
//! gave it (computed here from the seed pattern), the cookie makes the next run incremental, and a
//! password reset shows up in the next incremental run with the new hash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::source::drsr::ntlm::Credentials;
use cloudsync_agent::source::drsr::{DrsrClient, DrsrError, DrsrSettings};
use common::lab::{self, LabDc};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn settings(dc: &LabDc, user: &str, password: &str, partial: bool) -> DrsrSettings {
    DrsrSettings {
        dc: dc.ip.to_string(),
        port: None,
        nc_dn: dc.base_dn.clone(),
        credentials: Credentials {
            user: user.to_owned(),
            domain: dc.netbios_domain.clone(),
            nt_hash: NtHash::from_password(password),
        },
        timeout: Duration::from_secs(30),
        page_objects: 400,
        partial_attribute_set: partial,
    }
}

/// sAMAccountName from a DN `CN=<cn>,…` (the lab's CNs equal the sAMAccountNames for seeded users).
fn cn(dn: &str) -> String {
    dn.split(',')
        .next()
        .and_then(|rdn| rdn.strip_prefix("CN="))
        .unwrap_or_default()
        .to_owned()
}

fn hashes_by_cn(
    run: &cloudsync_agent::source::drsr::ReplicationRun,
) -> HashMap<String, (String, Option<bool>)> {
    run.hashes
        .iter()
        .map(|h| (cn(&h.dn), (hex::encode(h.nt_hash.expose()), h.disabled)))
        .collect()
}

#[test]
fn full_then_incremental_replication_with_a_partial_attribute_set() {
    full_then_incremental(true);
}

#[test]
fn full_then_incremental_replication_of_every_attribute() {
    full_then_incremental(false);
}

fn full_then_incremental(partial: bool) {
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let rt = runtime();
    let s = settings(&dc, dc.svc_sam_account_name(), &dc.svc_password, partial);

    let full = rt.block_on(DrsrClient::replicate(&s, None)).unwrap();
    eprintln!(
        "full (partial attribute set: {partial}): {} objects, {} hashes, {} pages, {:?}",
        full.objects,
        full.hashes.len(),
        full.pages,
        full.elapsed
    );
    assert!(full.pages >= 3, "400 objects per page over >2000 objects");
    assert_eq!(full.undecryptable, 0);
    let by_cn = hashes_by_cn(&full);
    // krbtgt and the DC's computer account replicate a password but are never synced.
    assert!(!by_cn.contains_key("krbtgt"));
    assert!(!by_cn.keys().any(|cn| cn.eq_ignore_ascii_case("dc1")));
    assert!(full.not_users >= 2, "{}", full.not_users);
    assert!(by_cn.contains_key("Administrator"));
    for i in 1..=lab::TEMPLATE_USERS {
        let sam = format!("user{i:05}");
        let (hash, disabled) = by_cn
            .get(&sam)
            .unwrap_or_else(|| panic!("{sam} has no replicated hash"));
        assert_eq!(hash, &common::md4_hex(&lab::seeded_password(&sam)), "{sam}");
        assert_eq!(*disabled, Some(false), "{sam}");
    }
    for i in 1..=lab::STAFF_USERS {
        let sam = format!("staff{i:03}");
        assert_eq!(by_cn[&sam].0, common::md4_hex(&lab::seeded_password(&sam)));
    }

    // Nothing changed: the incremental run carries no passwords.
    let again = rt
        .block_on(DrsrClient::replicate(&s, Some(&full.cookie)))
        .unwrap();
    assert!(again.hashes.is_empty(), "{:?}", again.hashes.len());

    // Reset one password and disable another account.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(42),
        lab::unicode_pwd_base64("New!Secret4242")
    ));
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n",
        dc.user_dn(43),
    ));
    let delta = rt
        .block_on(DrsrClient::replicate(&s, Some(&again.cookie)))
        .unwrap();
    let by_cn = hashes_by_cn(&delta);
    assert_eq!(by_cn["user00042"].0, common::md4_hex("New!Secret4242"));
    assert_ne!(
        by_cn["user00042"].0,
        common::md4_hex(&lab::seeded_password("user00042"))
    );
    assert!(
        delta.objects < 20,
        "incremental run replicated {} objects",
        delta.objects
    );
    // The disabled account's hash still replicates when its object does (UAC changed).
    if let Some((hash, disabled)) = by_cn.get("user00043") {
        assert_eq!(hash, &common::md4_hex(&lab::seeded_password("user00043")));
        assert_eq!(*disabled, Some(true));
    }
    let _ = NtHash::from_password("unused"); // the public API the PHS stage consumes
}

#[test]
fn an_unknown_dc_name_is_a_clear_retriable_error() {
    let dc = LabDc::start();
    let rt = runtime();
    let mut s = settings(&dc, dc.svc_sam_account_name(), &dc.svc_password, true);
    s.dc = "nonexistent.invalid".into(); // RFC 6761: never resolves
    let err = rt.block_on(DrsrClient::replicate(&s, None)).unwrap_err();
    assert!(matches!(err, DrsrError::Io(_)), "{err:?}");
    assert!(err.is_retriable());
}

#[test]
fn wrong_password_is_an_authentication_error() {
    let dc = LabDc::start();
    let rt = runtime();
    let s = settings(&dc, dc.svc_sam_account_name(), "not-the-password", true);
    let err = rt.block_on(DrsrClient::replicate(&s, None)).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, DrsrError::Ntlm(_)), "{err:?}");
    assert!(err.is_access_denied() && !err.is_retriable());
}

#[test]
fn an_account_without_replication_rights_is_refused_clearly() {
    let dc = LabDc::start();
    let rt = runtime();
    let s = settings(&dc, "user00001", &lab::seeded_password("user00001"), true);
    let err = rt.block_on(DrsrClient::replicate(&s, None)).unwrap_err();
    eprintln!("{err}");
    assert!(err.is_access_denied(), "{err:?}");
    assert!(
        err.to_string().contains("Replicating Directory Changes"),
        "{err}"
    );
}

/// Runs `cloudsync phs <args>` with `stdin`; returns (exit code, stdout, stderr).
fn cli(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
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
fn check_replicates_as_the_sync_account_and_explains_refusals() {
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let ip = dc.ip.to_string();
    let args = [
        "check",
        "--dc",
        &ip,
        "--base-dn",
        &dc.base_dn,
        "--user",
        dc.svc_sam_account_name(),
        "--domain",
        &dc.netbios_domain,
    ];
    let (code, out, err) = cli(&args, &format!("{}\n", dc.svc_password));
    assert_eq!(code, Some(0), "{out}{err}");
    eprint!("{out}");
    let decrypted: usize = out
        .split("passwords: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let seeded = lab::TEMPLATE_USERS + lab::STAFF_USERS + lab::INET_ORG_PERSONS;
    assert!(decrypted >= seeded, "{out}");
    assert!(out.contains("0 undecryptable"), "{out}");
    // No hash material on stdout: no 32-hex-digit run.
    assert!(
        !out.split(|c: char| !c.is_ascii_hexdigit())
            .any(|w| w.len() >= 32),
        "{out}"
    );

    let (code, _, err) = cli(&args, "wrong-password");
    assert_eq!(code, Some(1));
    assert!(err.contains("refused the credentials"), "{err}");
}
