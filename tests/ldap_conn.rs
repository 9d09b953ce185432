//! Connecting to the lab DC: LDAPS and StartTLS verified against the lab CA, a foreign CA refused,
//! plain LDAP only when allowed, and AD's bind sub-codes turned into typed failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use cloudsync_agent::config::Config;
use cloudsync_agent::source::ldap::conn;
use cloudsync_agent::source::ldap::{BindFailure, LdapSourceError};
use common::lab::{self, LabDc};
use ldap_support::runtime;

fn domain(toml: &str) -> cloudsync_agent::source::ldap::DomainConfig {
    Config::from_toml_str(toml).unwrap().domains["lab"].clone()
}

fn toml(dc: &LabDc, url: &str, extra: &str, bind: &str, pw: &str) -> String {
    format!(
        "[domains.lab]\ndns_name = {:?}\nurl = {url:?}\nbind_dn = {bind:?}\npassword = {pw:?}\n{extra}\n",
        dc.dns_domain
    )
}

fn ca(dc: &LabDc) -> String {
    format!("ca_file = {:?}", dc.ca_file.display().to_string())
}

#[test]
fn tls_modes_and_verification() {
    let dc = LabDc::start();
    let rt = runtime();
    let (svc, pw) = (dc.svc_upn.clone(), dc.svc_password.clone());

    let ldaps = domain(&toml(&dc, &dc.ldaps_url, &ca(&dc), &svc, &pw));
    rt.block_on(conn::connect(&ldaps)).unwrap();

    let starttls = domain(&toml(
        &dc,
        &dc.ldap_url,
        &format!("starttls = true\n{}", ca(&dc)),
        &svc,
        &pw,
    ));
    rt.block_on(conn::connect(&starttls)).unwrap();

    let plain = domain(&toml(
        &dc,
        &dc.ldap_url,
        "allow_plaintext = true",
        &svc,
        &pw,
    ));
    rt.block_on(conn::connect(&plain)).unwrap();

    // A CA that did not sign the DC's certificate: the handshake must fail.
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&foreign, params.self_signed(&key).unwrap().pem()).unwrap();
    let wrong_ca = domain(&toml(
        &dc,
        &dc.ldaps_url,
        &format!("ca_file = {:?}", foreign.display().to_string()),
        &svc,
        &pw,
    ));
    let err = rt.block_on(conn::connect(&wrong_ca)).unwrap_err();
    assert!(matches!(err, LdapSourceError::Connection { .. }), "{err:?}");

    let insecure = domain(&toml(
        &dc,
        &dc.ldaps_url,
        "insecure_skip_verify = true",
        &svc,
        &pw,
    ));
    rt.block_on(conn::connect(&insecure)).unwrap();
}

fn bind_failure(dc: &LabDc, rt: &tokio::runtime::Runtime, bind: &str, pw: &str) -> BindFailure {
    let cfg = domain(&toml(dc, &dc.ldaps_url, &ca(dc), bind, pw));
    match rt.block_on(conn::connect(&cfg)) {
        Err(LdapSourceError::Bind { failure, .. }) => failure,
        other => panic!("expected a bind failure for {bind}, got {other:?}"),
    }
}

#[test]
fn bind_sub_codes_become_clear_failures() {
    let dc = LabDc::start();
    let rt = runtime();
    let realm = dc.dns_domain.clone();
    let upn = |i: usize| format!("user{i:05}@{realm}");
    let pw = |i: usize| lab::seeded_password(&format!("user{i:05}"));

    assert_eq!(
        bind_failure(&dc, &rt, &dc.svc_upn, "wrong-password"),
        BindFailure::BadCredentials
    );

    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n",
        dc.user_dn(101)
    ));
    assert_eq!(
        bind_failure(&dc, &rt, &upn(101), &pw(101)),
        BindFailure::Disabled
    );

    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: accountExpires\naccountExpires: 1\n",
        dc.user_dn(102)
    ));
    assert_eq!(
        bind_failure(&dc, &rt, &upn(102), &pw(102)),
        BindFailure::AccountExpired
    );

    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: pwdLastSet\npwdLastSet: 0\n",
        dc.user_dn(103)
    ));
    assert_eq!(
        bind_failure(&dc, &rt, &upn(103), &pw(103)),
        BindFailure::MustChangePassword
    );

    // The lab's lockout threshold is 5 bad attempts.
    for _ in 0..5 {
        let _ = bind_failure(&dc, &rt, &upn(104), "bad-password");
    }
    assert_eq!(
        bind_failure(&dc, &rt, &upn(104), &pw(104)),
        BindFailure::LockedOut
    );
}
