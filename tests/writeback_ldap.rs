//! Password writeback's LDAP side (`cloudsync_agent::writeback`) against a real lab DC, as the
//! lab's service account `svc-sync` (Reset Password and write `lockoutTime`/`pwdLastSet` inherited
//! by users, `scripts/lab.sh` `grant_svc_rights`) over LDAPS.
//!
//! Oracles independent of the code under test: `ldapwhoami` binds as the user (the password from a
//! 0600 file with `-y`, never on a command line) and AD's bind sub-code (52e wrong password, 773
//! must change, 775 locked out); attributes read back with `ldapsearch` as Administrator; anchors
//! from the fixture's own objectGUID read.
//!
//! Cases: a reset (new password binds, old one refused); "must change" (`pwdLastSet` 0, bind says
//! 773); too short and complexity → 33008 with Samba's reason; history (Samba 4.22 does not apply it
//! to a reset, even with the policy-hints control: measured and accepted either way); disabled →
//! 33005; Administrator and an `adminCount=1` user → 33004, unchanged; not found (anchor, UPN, a
//! malformed anchor) → 33002; an anchor that is one user's objectGUID and another's
//! ms-DS-ConsistencyGuid → 33003; plain `ldap://` → 33009 by our check and, past it, by AD's own
//! refusal, nothing changed; a fresh account without rights → 33004 naming `permissions set --type
//! password-writeback`, and after `permissions::set` that very account resets; a lockout by three
//! failed binds: reset without unlock → 33006, unlock → lockoutTime 0 and the old password binds,
//! unlock again → success saying so, a reset allowed to unlock → unlocked with the new password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloudsync_agent::account::permissions::{self, PermissionType};
use cloudsync_agent::secret::Secret;
use cloudsync_agent::source::ldap::DomainConfig;
use cloudsync_agent::source::ldap::conn::{self, DcConn};
use cloudsync_agent::writeback::{
    self, Answer, Domain, ResetRequest, UserRef, WritebackCode, reset, unlock,
};
use common::lab::{LabDc, seeded_password, unicode_pwd_base64};

/// The lab DC's users by sAMAccountName → source anchor (base64 objectGUID), read by the fixture.
async fn anchors(dc: &LabDc) -> HashMap<String, String> {
    dc.sam_by_guid()
        .await
        .into_iter()
        .map(|(guid, sam)| (sam, STANDARD.encode(guid)))
        .collect()
}

fn domain_config(dc: &LabDc, url: &str, bind: &str, password: &str, extra: &str) -> DomainConfig {
    let text = format!(
        "dns_name = {:?}\nurl = {url:?}\nbind_dn = {bind:?}\npassword = {password:?}\nca_file = {:?}\n{extra}\n",
        dc.dns_domain,
        dc.ca_file.display().to_string()
    );
    toml::from_str(&text).unwrap()
}

/// Bound as `bind` over `url`, with the writeback view of the same configuration.
async fn connect(dc: &LabDc, url: &str, bind: &str, password: &str) -> (DcConn, Domain) {
    let extra = if url.starts_with("ldap://") {
        "allow_plaintext = true"
    } else {
        ""
    };
    let cfg = domain_config(dc, url, bind, password, extra);
    let c = conn::connect(&cfg)
        .await
        .unwrap_or_else(|e| panic!("bind as {bind}: {e}"));
    (c, Domain::of(&cfg))
}

/// `ldapwhoami` as `upn` with `password` (from a 0600 file) over LDAPS: Ok, or the tool's output.
fn bind_as(dc: &LabDc, upn: &str, password: &str) -> Result<(), String> {
    let mut file = tempfile::NamedTempFile::new().unwrap(); // 0600
    file.write_all(password.as_bytes()).unwrap();
    let out = Command::new("ldapwhoami")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .env_remove("LDAPCONF")
        .env_remove("LDAPRC")
        .args(["-x", "-H", &dc.ldaps_url, "-o", "nettimeout=10", "-D", upn])
        .arg("-y")
        .arg(file.path())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn upn(dc: &LabDc, sam: &str) -> String {
    format!("{sam}@{}", dc.dns_domain)
}

fn request(user: UserRef, password: &str) -> ResetRequest {
    ResetRequest {
        user,
        password: Secret::new(password.into()),
        force_change: false,
        unlock: false,
        apply_history: false,
    }
}

fn assert_code(answer: &Answer, code: WritebackCode, contains: &[&str]) {
    assert_eq!(answer.code, code, "{}", answer.message);
    for needle in contains {
        assert!(
            answer.message.contains(needle),
            "{needle:?} not in {:?}",
            answer.message
        );
    }
}

/// `bind_as` failed with AD's sub-code `data`.
fn assert_refused(result: Result<(), String>, data: &str) {
    let err = result.expect_err("the bind should have been refused");
    assert!(err.contains(&format!("data {data}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_every_refusal() {
    let dc = LabDc::start();
    let anchors = anchors(&dc).await;
    let by = |sam: &str| UserRef::by_anchor(anchors[sam].clone(), upn(&dc, sam));
    let (mut svc, domain) = connect(&dc, &dc.ldaps_url, &dc.svc_upn, &dc.svc_password).await;

    // A reset: the new password binds, the old one is refused; pwdLastSet is a real time.
    let r = reset(
        &mut svc,
        &domain,
        &request(by("user00021"), "Wb!Reset0021x"),
    )
    .await;
    assert_code(
        &writeback::answer(&r),
        WritebackCode::Success,
        &["password reset"],
    );
    bind_as(&dc, &upn(&dc, "user00021"), "Wb!Reset0021x").unwrap();
    assert_refused(
        bind_as(&dc, &upn(&dc, "user00021"), &seeded_password("user00021")),
        "52e",
    );
    assert_ne!(dc.attr_values(&dc.user_dn(21), "pwdLastSet"), ["0"]);

    // Must change at next sign-in: pwdLastSet 0 in the same modify; AD then answers a bind with 773.
    let mut req = request(by("user00022"), "Wb!Reset0022x");
    req.force_change = true;
    let r = reset(&mut svc, &domain, &req).await;
    assert_code(
        &writeback::answer(&r),
        WritebackCode::Success,
        &["must change it at next sign-in"],
    );
    assert_eq!(dc.attr_values(&dc.user_dn(22), "pwdLastSet"), ["0"]);
    assert_refused(bind_as(&dc, &upn(&dc, "user00022"), "Wb!Reset0022x"), "773");

    // Policy: too short and complexity, with Samba's reason; the old password still binds.
    let short = reset(&mut svc, &domain, &request(by("user00023"), "Ab1!")).await;
    let a = writeback::answer(&short);
    eprintln!("measured, too short: {}", a.message);
    assert_code(
        &a,
        WritebackCode::PasswordPolicy,
        &[
            "the password is too short (at least 7 characters)",
            "check_password_restrictions",
        ],
    );
    let simple = reset(&mut svc, &domain, &request(by("user00023"), "aaaaaaaaaaaa")).await;
    let a = writeback::answer(&simple);
    eprintln!("measured, complexity: {}", a.message);
    assert_code(&a, WritebackCode::PasswordPolicy, &["complexity"]);
    bind_as(&dc, &upn(&dc, "user00023"), &seeded_password("user00023")).unwrap();

    // History: Samba 4.22 applies it to a user's own change only, not to a reset, even with the
    // (non-critical) policy-hints control. Accept either; a refusal must then name history.
    dc.samba_tool(&["domain", "passwordsettings", "set", "--history-length=3"])
        .unwrap();
    for pw in ["Wb!Hist0024a", "Wb!Hist0024b"] {
        let r = reset(&mut svc, &domain, &request(by("user00024"), pw)).await;
        assert_code(&writeback::answer(&r), WritebackCode::Success, &[]);
    }
    let mut req = request(by("user00024"), "Wb!Hist0024a");
    req.apply_history = true;
    let a = writeback::answer(&reset(&mut svc, &domain, &req).await);
    eprintln!("measured, a reset to a password in history: {a:?}");
    if a.code != WritebackCode::Success {
        assert_code(&a, WritebackCode::PasswordPolicy, &["history"]);
    }

    // Disabled: refused for a reset and for an unlock; nothing written.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n",
        dc.user_dn(25)
    ));
    let a = writeback::answer(
        &reset(
            &mut svc,
            &domain,
            &request(by("user00025"), "Wb!Reset0025x"),
        )
        .await,
    );
    assert_code(&a, WritebackCode::Disabled, &["user00025", "is disabled"]);
    let a = writeback::answer(&unlock(&mut svc, &domain, &by("user00025")).await);
    assert_code(&a, WritebackCode::Disabled, &[]);
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 512\n",
        dc.user_dn(25)
    ));
    bind_as(&dc, &upn(&dc, "user00025"), &seeded_password("user00025")).unwrap();

    // Protected accounts: Administrator (Samba has no AdminSDHolder: svc-sync's inherited Reset
    // Password reaches it, so only our adminCount check stands between), and a user with adminCount=1.
    let admin = UserRef::by_anchor(anchors["Administrator"].clone(), dc.admin_upn.clone());
    let a = writeback::answer(&reset(&mut svc, &domain, &request(admin, "Wb!Admin0000x")).await);
    assert_code(&a, WritebackCode::Permissions, &["adminCount=1"]);
    bind_as(&dc, &dc.admin_upn, &dc.admin_password).unwrap();
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: adminCount\nadminCount: 1\n",
        dc.user_dn(26)
    ));
    let a = writeback::answer(
        &reset(
            &mut svc,
            &domain,
            &request(by("user00026"), "Wb!Reset0026x"),
        )
        .await,
    );
    assert_code(
        &a,
        WritebackCode::Permissions,
        &["protected account", "user00026"],
    );
    bind_as(&dc, &upn(&dc, "user00026"), &seeded_password("user00026")).unwrap();

    // Not found: an anchor nobody has, a UPN nobody has, an anchor that is not a GUID.
    let nobody = UserRef::by_anchor(STANDARD.encode([0x5a; 16]), "ghost@corp.example.test");
    let a = writeback::answer(&reset(&mut svc, &domain, &request(nobody, "Wb!Ghost0000x")).await);
    assert_code(
        &a,
        WritebackCode::UserNotFound,
        &["ghost@corp.example.test"],
    );
    let a = writeback::answer(
        &unlock(
            &mut svc,
            &domain,
            &UserRef::by_upn("ghost@corp.example.test"),
        )
        .await,
    );
    assert_code(
        &a,
        WritebackCode::UserNotFound,
        &["userPrincipalName ghost@"],
    );
    let bad = UserRef::by_anchor("bm90IGEgZ3VpZA==", "ghost@corp.example.test");
    let a = writeback::answer(&unlock(&mut svc, &domain, &bad).await);
    assert_code(&a, WritebackCode::UserNotFound, &["16-byte objectGUID"]);
    // By UPN, the same user resets.
    let a = writeback::answer(
        &reset(
            &mut svc,
            &domain,
            &request(UserRef::by_upn(upn(&dc, "user00021")), "Wb!Reset0021y"),
        )
        .await,
    );
    assert_code(&a, WritebackCode::Success, &[]);
    bind_as(&dc, &upn(&dc, "user00021"), "Wb!Reset0021y").unwrap();

    // Several: user00028's ms-DS-ConsistencyGuid is user00027's objectGUID.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: mS-DS-ConsistencyGuid\nmS-DS-ConsistencyGuid:: {}\n",
        dc.user_dn(28),
        anchors["user00027"]
    ));
    let a = writeback::answer(
        &reset(
            &mut svc,
            &domain,
            &request(by("user00027"), "Wb!Reset0027x"),
        )
        .await,
    );
    assert_code(
        &a,
        WritebackCode::MultipleMatches,
        &["CN=user00027", "CN=user00028"],
    );
    bind_as(&dc, &upn(&dc, "user00027"), &seeded_password("user00027")).unwrap();

    // Plain LDAP: refused before anything is sent (33009); and past our check, by AD itself.
    let (mut plain, plain_domain) = connect(&dc, &dc.ldap_url, &dc.svc_upn, &dc.svc_password).await;
    assert!(!plain_domain.tls);
    let a = writeback::answer(
        &reset(
            &mut plain,
            &plain_domain,
            &request(by("user00029"), "Wb!Reset0029x"),
        )
        .await,
    );
    assert_code(
        &a,
        WritebackCode::DirectoryConfiguration,
        &["ldaps://", "starttls = true"],
    );
    let pretend = Domain {
        tls: true,
        ..plain_domain.clone()
    };
    let a = writeback::answer(
        &reset(
            &mut plain,
            &pretend,
            &request(by("user00029"), "Wb!Reset0029x"),
        )
        .await,
    );
    eprintln!("measured, a password over plain LDAP: {}", a.message);
    assert_code(
        &a,
        WritebackCode::DirectoryConfiguration,
        &["encrypted connection"],
    );
    bind_as(&dc, &upn(&dc, "user00029"), &seeded_password("user00029")).unwrap();
    plain.close().await;

    // A service account without rights: 33004 naming the fix; after the fix, the same account resets.
    let password = "Wb!NoRights2024x";
    let norights = upn(&dc, "wb-norights");
    dc.ldif_admin(&format!(
        "dn: CN=wb-norights,CN=Users,{}\nchangetype: add\nobjectClass: user\nsAMAccountName: wb-norights\n\
         userPrincipalName: {norights}\nunicodePwd:: {}\nuserAccountControl: 512\n",
        dc.base_dn,
        unicode_pwd_base64(password)
    ));
    let (mut weak, weak_domain) = connect(&dc, &dc.ldaps_url, &norights, password).await;
    let a = writeback::answer(
        &reset(
            &mut weak,
            &weak_domain,
            &request(by("user00030"), "Wb!Reset0030x"),
        )
        .await,
    );
    eprintln!("measured, no Reset Password: {}", a.message);
    assert_code(
        &a,
        WritebackCode::Permissions,
        &[
            "cloudsync agent permissions set --type password-writeback --domain corp.example.test",
            "insufficient access",
        ],
    );
    bind_as(&dc, &upn(&dc, "user00030"), &seeded_password("user00030")).unwrap();
    weak.close().await;
    let (mut admin_conn, _) = connect(&dc, &dc.ldaps_url, &dc.admin_upn, &dc.admin_password).await;
    permissions::set(
        &mut admin_conn,
        &dc.base_dn,
        &norights,
        PermissionType::PasswordWriteback,
    )
    .await
    .unwrap();
    admin_conn.close().await;
    let (mut weak, weak_domain) = connect(&dc, &dc.ldaps_url, &norights, password).await;
    let a = writeback::answer(
        &reset(
            &mut weak,
            &weak_domain,
            &request(by("user00030"), "Wb!Reset0030x"),
        )
        .await,
    );
    assert_code(&a, WritebackCode::Success, &[]);
    bind_as(&dc, &upn(&dc, "user00030"), "Wb!Reset0030x").unwrap();
    weak.close().await;
    svc.close().await;
}

/// Three wrong binds with `ldapwhoami` (the lockout threshold is set to 3 first).
fn lock_out(dc: &LabDc, sam: &str) {
    for _ in 0..3 {
        assert_refused(bind_as(dc, &upn(dc, sam), "Wrong!Pass0000"), "52e");
    }
    assert_refused(bind_as(dc, &upn(dc, sam), &seeded_password(sam)), "775");
}

fn lockout_time(dc: &LabDc, i: usize) -> i64 {
    dc.attr_values(&dc.user_dn(i), "lockoutTime")
        .first()
        .map(|v| v.parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_after_a_lockout_keeps_the_password() {
    let dc = LabDc::start();
    let anchors = anchors(&dc).await;
    let by = |sam: &str| UserRef::by_anchor(anchors[sam].clone(), upn(&dc, sam));
    dc.samba_tool(&[
        "domain",
        "passwordsettings",
        "set",
        "--account-lockout-threshold=3",
        "--account-lockout-duration=30",
        "--reset-account-lockout-after=30",
    ])
    .unwrap();
    let (mut svc, domain) = connect(&dc, &dc.ldaps_url, &dc.svc_upn, &dc.svc_password).await;

    lock_out(&dc, "user00041");
    assert_ne!(lockout_time(&dc, 41), 0);

    // A reset that may not unlock: 33006, nothing written.
    let a = writeback::answer(
        &reset(
            &mut svc,
            &domain,
            &request(by("user00041"), "Wb!Reset0041x"),
        )
        .await,
    );
    assert_code(&a, WritebackCode::LockedOut, &["user00041", "locked out"]);

    // Unlock: lockoutTime 0, the old password binds again.
    let a = writeback::answer(&unlock(&mut svc, &domain, &by("user00041")).await);
    assert_code(
        &a,
        WritebackCode::Success,
        &["account unlocked", "password is unchanged"],
    );
    assert_eq!(lockout_time(&dc, 41), 0);
    bind_as(&dc, &upn(&dc, "user00041"), &seeded_password("user00041")).unwrap();

    // Not locked: success, saying nothing was changed.
    let a = writeback::answer(&unlock(&mut svc, &domain, &by("user00041")).await);
    assert_code(
        &a,
        WritebackCode::Success,
        &["not locked out", "nothing was changed"],
    );

    // A reset allowed to unlock: one modify sets the password and clears the lockout.
    lock_out(&dc, "user00042");
    let mut req = request(by("user00042"), "Wb!Reset0042x");
    req.unlock = true;
    let a = writeback::answer(&reset(&mut svc, &domain, &req).await);
    assert_code(
        &a,
        WritebackCode::Success,
        &["password reset", "account unlocked"],
    );
    assert_eq!(lockout_time(&dc, 42), 0);
    bind_as(&dc, &upn(&dc, "user00042"), "Wb!Reset0042x").unwrap();
    svc.close().await;
}
