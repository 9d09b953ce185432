//! `cloudsync agent permissions set|check` against a real lab DC (no version-specific expectation:
//! Samba 4.17 or 4.22). A fresh account without rights: `check --type all` fails naming the
//! `permissions set` command for each type, and its DirSync and GetNCChanges probes fail; `set --type
//! all` as the domain admin (password from a 0600 file) adds the ACEs; `check` passes, the probes
//! included; a second `set` adds nothing (ACEs counted with `samba-tool dsacl get`, not with the code
//! under test); one ACE removed ("Replicating Directory Changes All") → `check --type
//! password-hash-sync` fails naming it and its fix. The descriptor the DC serves round-trips byte for
//! byte through the project's parser and writer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cloudsync_agent::account::permissions::{self, Target};
use cloudsync_agent::account::security_descriptor::{Ace, SecurityDescriptor};
use cloudsync_agent::source::ldap::DomainConfig;
use cloudsync_agent::source::ldap::conn;
use common::lab::{LabDc, unicode_pwd_base64};

const GET_CHANGES_ALL: &str = "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2";

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(args)
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The SID of `sam` as samba-tool shows it (the oracle, not the code under test).
fn sid_of(dc: &LabDc, sam: &str) -> String {
    let o = Command::new("samba-tool")
        .args(["user", "show", sam, "--attributes=objectSid", "-s"])
        .arg(&dc.smb_conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    out.lines()
        .find_map(|l| l.strip_prefix("objectSid: "))
        .unwrap_or_else(|| panic!("no objectSid in {out}"))
        .trim()
        .to_string()
}

/// The domain root's DACL ACEs naming `sid`, as `samba-tool dsacl get` prints them.
fn root_aces_of(dc: &LabDc, sid: &str) -> Vec<String> {
    let o = Command::new("samba-tool")
        .args(["dsacl", "get", "-s"])
        .arg(&dc.smb_conf)
        .arg(format!("--objectdn={}", dc.base_dn))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sddl = String::from_utf8_lossy(&o.stdout).to_string();
    let dacl = sddl.split("D:").nth(1).unwrap_or_default();
    let dacl = dacl.split("S:").next().unwrap_or_default();
    dacl.split('(')
        .filter(|a| a.contains(&format!(";{sid})")))
        .map(|a| format!("({}", a.trim()))
        .collect()
}

fn line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(5..).is_some_and(|rest| rest.contains(what)))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_set_twice_check_and_a_removed_right() {
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();

    // A fresh account: it binds and reads, but holds no right of its own.
    let password = "Perm!Fresh2024x";
    let dn = format!("CN=permsvc,CN=Users,{}", dc.base_dn);
    let upn = format!("permsvc@{}", dc.dns_domain);
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: permsvc\n\
         userPrincipalName: {upn}\nunicodePwd:: {}\nuserAccountControl: 512\n",
        unicode_pwd_base64(password)
    ));
    let sid = sid_of(&dc, "permsvc");
    let pw_file = secret_file(dir.path(), "svc.pw", password);
    let admin_pw = secret_file(dir.path(), "admin.pw", &dc.admin_password);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\njournal_dir = \"{}\"\n[domains.corp]\ndns_name = \"{}\"\nurl = \"{}\"\n\
             ca_file = \"{}\"\nbind_dn = \"{upn}\"\npassword_file = \"{}\"\n",
            dir.path().join("journal").display(),
            dc.dns_domain,
            dc.ldaps_url,
            dc.ca_file.display(),
            pw_file.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let fix = |kind: &str| {
        format!(
            "cloudsync agent permissions set --type {kind} --domain {} --config {cfg}",
            dc.dns_domain
        )
    };

    // Before: every type fails, each naming its own fix; the probes fail too. (Unexpire Password is
    // not asserted: Samba's default domain descriptor grants it to Authenticated Users, which the
    // check counts through the account's groups.)
    let o = agent(&[
        "agent",
        "permissions",
        "check",
        "--type",
        "all",
        "--config",
        cfg,
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    for (right, kind) in [
        ("Read all properties on descendant users", "basic-read"),
        ("Read and list CN=Deleted Objects", "basic-read"),
        (
            "Replicating Directory Changes All on the domain root",
            "password-hash-sync",
        ),
        ("Reset Password on descendant users", "password-writeback"),
        (
            "Read/write pwdLastSet on descendant users",
            "password-writeback",
        ),
    ] {
        let l = line(&out, right);
        assert!(
            l.starts_with("FAIL") && l.contains(&fix(kind)),
            "{right}: {out}"
        );
    }
    let dirsync = line(&out, "corp: DirSync rights");
    assert!(
        dirsync.starts_with("FAIL") && dirsync.contains(&fix("basic-read")),
        "{out}"
    );
    let drs = line(&out, "corp: replication rights");
    assert!(
        drs.starts_with("FAIL") && drs.contains(&fix("password-hash-sync")),
        "{out}"
    );
    assert!(root_aces_of(&dc, &sid).is_empty(), "{out}");

    // set: as the domain admin, password from a file.
    let set = |extra: &[&str]| {
        let mut args = vec![
            "agent",
            "permissions",
            "set",
            "--type",
            "all",
            "--config",
            cfg,
        ];
        args.extend_from_slice(&["--domain", &dc.dns_domain]);
        args.extend_from_slice(&["--domain-admin", &dc.admin_upn]);
        args.extend_from_slice(&["--domain-admin-password-file", admin_pw.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let o = agent(&args);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(!out.contains(&dc.admin_password), "{out}");
        out
    };
    let out = set(&[]);
    assert!(out.contains("11 ACE(s) added"), "{out}");
    let after_first = root_aces_of(&dc, &sid);
    // 4 classes read + 2 replication + 3 writeback on users + Unexpire Password.
    assert_eq!(after_first.len(), 10, "{after_first:#?}");
    assert!(
        after_first.iter().any(|a| a.contains(GET_CHANGES_ALL)),
        "{after_first:#?}"
    );

    let o = agent(&[
        "agent",
        "permissions",
        "check",
        "--type",
        "all",
        "--config",
        cfg,
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        line(&out, "corp: DirSync rights").starts_with("ok"),
        "{out}"
    );
    assert!(
        line(&out, "corp: replication rights").starts_with("ok"),
        "{out}"
    );
    assert!(
        line(&out, "Read and list CN=Deleted Objects").starts_with("ok"),
        "{out}"
    );

    // A second set adds nothing and says so.
    let out = set(&[]);
    assert!(out.contains("nothing to add"), "{out}");
    assert_eq!(root_aces_of(&dc, &sid), after_first);

    // The descriptor as served round-trips byte for byte; then one ACE goes (the project's writer).
    let admin_cfg: DomainConfig = toml::from_str(&format!(
        "dns_name = \"{}\"\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{}\"\npassword = \"{}\"\n",
        dc.dns_domain,
        dc.ldaps_url,
        dc.ca_file.display(),
        dc.admin_upn,
        dc.admin_password
    ))
    .unwrap();
    let mut admin = conn::connect(&admin_cfg).await.unwrap();
    let (mut sd, raw) = permissions::read_dacl(&mut admin, &dc.base_dn, Target::DomainRoot)
        .await
        .unwrap();
    assert_eq!(sd.to_bytes().unwrap(), raw);
    assert_eq!(SecurityDescriptor::parse(&raw).unwrap(), sd);
    let acl = sd.dacl.as_mut().unwrap();
    let before = acl.aces.len();
    acl.aces.retain(|a| match a {
        Ace::Access(a) => {
            !(a.sid.to_string() == sid
                && a.object_type
                    .is_some_and(|g| g.to_string() == GET_CHANGES_ALL))
        }
        Ace::Other { .. } => true,
    });
    assert_eq!(acl.aces.len(), before - 1);
    permissions::write_dacl(&mut admin, &dc.base_dn, Target::DomainRoot, &sd)
        .await
        .unwrap();
    admin.close().await;
    assert_eq!(root_aces_of(&dc, &sid).len(), 9);

    let o = agent(&[
        "agent",
        "permissions",
        "check",
        "--type",
        "password-hash-sync",
        "--config",
        cfg,
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let l = line(&out, "Replicating Directory Changes All on the domain root");
    assert!(
        l.starts_with("FAIL") && l.contains(&fix("password-hash-sync")),
        "{out}"
    );
    assert!(
        line(&out, "Replicating Directory Changes on the domain root").starts_with("ok"),
        "{out}"
    );
    assert!(
        line(&out, "corp: replication rights").starts_with("FAIL"),
        "{out}"
    );

    // set puts back exactly the missing one.
    let out = set(&[]);
    assert!(out.contains("1 ACE(s) added"), "{out}");
    assert_eq!(root_aces_of(&dc, &sid).len(), 10);
}
