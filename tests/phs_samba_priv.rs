//! The Samba-only local source: NT hashes over the root-only `ldap_priv` socket of a real lab DC.
//! Expected hashes are MD4 of the seed's passwords, computed here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use cloudsync_agent::source::samba_priv;
use common::lab::{self, LabDc};

#[test]
fn reads_every_hash_then_only_changes() {
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let full = rt
        .block_on(samba_priv::read_hashes(&dc.priv_ldapi, &dc.base_dn, 0))
        .unwrap();
    let by_cn: HashMap<String, String> = full
        .hashes
        .iter()
        .map(|h| {
            let cn = h.dn.split(',').next().unwrap().trim_start_matches("CN=");
            (cn.to_owned(), hex::encode(h.nt_hash.expose()))
        })
        .collect();
    for i in 1..=lab::TEMPLATE_USERS {
        let sam = format!("user{i:05}");
        assert_eq!(
            by_cn[&sam],
            common::md4_hex(&lab::seeded_password(&sam)),
            "{sam}"
        );
    }
    assert!(full.highest_usn > 0);

    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(7),
        lab::unicode_pwd_base64("Fresh!Pass0007")
    ));
    let delta = rt
        .block_on(samba_priv::read_hashes(
            &dc.priv_ldapi,
            &dc.base_dn,
            full.highest_usn,
        ))
        .unwrap();
    assert_eq!(delta.hashes.len(), 1, "{:?}", delta.hashes);
    assert_eq!(
        hex::encode(delta.hashes[0].nt_hash.expose()),
        common::md4_hex("Fresh!Pass0007")
    );
    assert!(delta.highest_usn > full.highest_usn);
}

#[test]
fn a_missing_socket_is_a_clear_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(samba_priv::read_hashes(
            std::path::Path::new("/nonexistent/ldap_priv/ldapi"),
            "DC=x",
            0,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("needs root"), "{err}");
    assert!(!err.is_retriable());
}
