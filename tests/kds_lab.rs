//! KDS root keys on the lab DC (Samba 4.22): `account::kds` lists exactly the keys `samba-tool domain
//! kds root-key list` lists, and a key it creates over LDAP is one the DC derives gMSA passwords from.
//!
//! Measured here and asserted (docs: `crates/agent/src/account/kds.rs`):
//! - Samba's provision leaves one key, back-dated 10 h 5 min, so gMSAs work at once.
//! - With no usable key, Samba refuses to *create* a gMSA (`noSuchObject`, "failed to find a suitable
//!   root key"); a key whose use start is now (`EffectiveTime::Standard`) does not count until the next
//!   10-hour interval begins.
//! - Deleting the key an existing gMSA's password id names breaks reading that gMSA for good: the whole
//!   search fails (`operationsError`, "operational_search_post_process failed for attribute
//!   'msDS-ManagedPassword' - No such Base DN: CN=<key>,…"), and a new root key does not mend it.
//! - A key added over LDAP takes effect without a restart: the next gMSA created names it in its
//!   `msDS-ManagedPasswordId`, and the allowed host reads its password.
//! - A non-admin sees no keys (an empty list, no error) and is refused the add with rc 50.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::SystemTime;

use cloudsync_agent::account::kds::{self, EffectiveTime, KdsError, RootKey};
use cloudsync_agent::account::kds_params;
use cloudsync_agent::source::ldap::{DomainConfig, conn};
use common::lab::LabDc;

fn domain(dc: &LabDc, bind_dn: &str, password: &str) -> DomainConfig {
    let text = format!(
        "dns_name = {:?}\nurl = {:?}\nbind_dn = {bind_dn:?}\npassword = {password:?}\nca_file = {:?}\n",
        dc.dns_domain,
        dc.ldaps_url,
        dc.ca_file.display().to_string()
    );
    toml::from_str(&text).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The root keys as the project's code lists them, bound as `bind_dn`.
fn list_as(rt: &tokio::runtime::Runtime, cfg: &DomainConfig) -> Result<Vec<RootKey>, KdsError> {
    rt.block_on(async {
        let mut c = conn::connect(cfg).await.expect("bind");
        let keys = kds::root_keys(&mut c).await;
        c.close().await;
        keys
    })
}

fn create_as(
    rt: &tokio::runtime::Runtime,
    cfg: &DomainConfig,
    effective: EffectiveTime,
) -> Result<RootKey, KdsError> {
    rt.block_on(async {
        let mut c = conn::connect(cfg).await.expect("bind");
        let key = kds::create_root_key(&mut c, effective).await;
        c.close().await;
        key
    })
}

/// Root key names (GUIDs) as `samba-tool domain kds root-key list --json` prints them.
fn samba_tool_ids(dc: &LabDc) -> BTreeSet<String> {
    let out = dc
        .samba_tool(&["domain", "kds", "root-key", "list", "--json"])
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("samba-tool printed no JSON ({e}):\n{out}"));
    json.as_array()
        .unwrap_or_else(|| panic!("not a list:\n{out}"))
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_lowercase())
        .collect()
}

/// One attribute of a root key as `samba-tool domain kds root-key view --json` prints it (hex for
/// blobs, integers for lengths).
fn view(dc: &LabDc, id: &str) -> serde_json::Value {
    let out = dc
        .samba_tool(&[
            "domain",
            "kds",
            "root-key",
            "view",
            "--name",
            id,
            "--json",
            "--verbose",
        ])
        .unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("samba-tool view: {e}:\n{out}"))
}

/// The root key GUID in a gMSA's `msDS-ManagedPasswordId` (MS-GKDI 2.2.4 group key envelope: version,
/// magic `KDSK`, flags, L0, L1, L2 indexes, then the root key GUID in its little-endian form).
fn password_id_root_key(dc: &LabDc, gmsa_dn: &str) -> String {
    let out = std::process::Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .args(["-x", "-H", &dc.ldaps_url, "-LLL", "-o", "ldif-wrap=no"])
        .args(["-D", &dc.admin_upn, "-w", &dc.admin_password])
        .args([
            "-s",
            "base",
            "-b",
            gmsa_dn,
            "(objectClass=*)",
            "msDS-ManagedPasswordId",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let b64 = text
        .lines()
        .find_map(|l| l.strip_prefix("msDS-ManagedPasswordId:: "))
        .unwrap_or_else(|| panic!("no msDS-ManagedPasswordId on {gmsa_dn}:\n{text}"));
    use base64::Engine as _;
    let id = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    assert_eq!(&id[4..8], b"KDSK", "not a group key envelope");
    uuid::Uuid::from_bytes_le(id[24..40].try_into().unwrap())
        .hyphenated()
        .to_string()
}

#[test]
fn root_keys_lists_what_samba_tool_lists_and_only_admins_see_or_add_keys() {
    let dc = LabDc::start();
    let rt = runtime();
    let admin = domain(&dc, &dc.admin_upn, &dc.admin_password);

    let keys = list_as(&rt, &admin).unwrap();
    let ours: BTreeSet<String> = keys.iter().map(|k| k.id.clone()).collect();
    assert_eq!(ours, samba_tool_ids(&dc));
    assert_eq!(keys.len(), 1, "Samba's provision leaves one root key");
    // The times are the stored integers, read independently with ldapsearch.
    let provisioned = &keys[0];
    for (attr, ours) in [
        ("msKds-UseStartTime", provisioned.use_start),
        ("msKds-CreateTime", provisioned.created),
    ] {
        let stored: u64 = dc.attr_values(&provisioned.dn, attr)[0].parse().unwrap();
        assert_eq!(kds_params::nt_time(ours), Some(stored), "{attr}");
    }
    // Provision back-dates its key by 10 h 5 min so gMSAs work at once.
    assert_eq!(
        provisioned
            .created
            .duration_since(provisioned.use_start)
            .unwrap(),
        kds_params::KEY_CYCLE + kds_params::MAX_CLOCK_SKEW
    );
    assert!(provisioned.serves_gmsa_at(SystemTime::now()));

    // A non-admin (the sync service account) sees no key at all — no error — and may not add one.
    let svc = domain(&dc, &dc.svc_upn, &dc.svc_password);
    assert_eq!(list_as(&rt, &svc).unwrap(), Vec::new());
    let err = create_as(&rt, &svc, EffectiveTime::Immediately).unwrap_err();
    assert!(
        matches!(err, KdsError::InsufficientRights { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Enterprise Admins"), "{err}");
    eprintln!("measured: a non-admin's add is refused: {err}");
    assert_eq!(samba_tool_ids(&dc).len(), 1);
}

#[test]
fn a_root_key_created_over_ldap_is_the_one_the_dc_derives_gmsa_passwords_from() {
    let dc = LabDc::start();
    let rt = runtime();
    let admin = domain(&dc, &dc.admin_upn, &dc.admin_password);
    let host = dc.create_computer("AGENTHOST1");

    // What Samba's provision wrote, as samba-tool shows it: the reference for our blobs.
    let provisioned = list_as(&rt, &admin).unwrap().remove(0);
    let reference = view(&dc, &provisioned.id);

    // A gMSA made while the provisioned key exists; its password id names that key.
    let early = dc.create_gmsa("earlyGmsa");
    dc.gmsa_allow("earlyGmsa", &host.sam_account_name);
    assert_eq!(password_id_root_key(&dc, &early), provisioned.id);
    assert!(
        dc.read_managed_password(&early, &host.dn, &host.password)
            .unwrap()
            .is_some()
    );

    // Delete every root key (samba-tool, independent of the code under test).
    for id in samba_tool_ids(&dc) {
        dc.samba_tool(&["domain", "kds", "root-key", "delete", "--name", &id])
            .unwrap();
    }
    assert!(list_as(&rt, &admin).unwrap().is_empty());
    assert!(samba_tool_ids(&dc).is_empty());

    // The gMSA whose key is gone can no longer be read at all: the DC fails the whole search.
    let broken = dc
        .read_managed_password(&early, &host.dn, &host.password)
        .unwrap_err();
    assert!(
        broken.contains("No such Base DN") && broken.contains(&provisioned.id),
        "{broken}"
    );
    eprintln!("measured: reading a gMSA whose root key was deleted: {broken}");
    // And no gMSA can be created without a usable key.
    let refused = dc
        .samba_tool(&[
            "service-account",
            "create",
            "--name",
            "noKeyGmsa",
            "--dns-host-name",
            "nokeygmsa.corp.example.test",
        ])
        .unwrap_err();
    assert!(
        refused.contains("failed to find a suitable root key"),
        "{refused}"
    );

    // A key effective now (the Windows default) does not serve until the next 10-hour interval.
    let standard = create_as(&rt, &admin, EffectiveTime::Standard).unwrap();
    assert!(standard.usable_at(SystemTime::now()));
    if !standard.serves_gmsa_at(SystemTime::now()) {
        let refused = dc
            .samba_tool(&[
                "service-account",
                "create",
                "--name",
                "noKeyGmsa",
                "--dns-host-name",
                "nokeygmsa.corp.example.test",
            ])
            .unwrap_err();
        assert!(
            refused.contains("failed to find a suitable root key"),
            "{refused}"
        );
    }

    // Create one back-dated over LDAP as Administrator; it takes effect without a DC restart.
    let key = create_as(&rt, &admin, EffectiveTime::Immediately).unwrap();
    assert!(key.serves_gmsa_at(SystemTime::now()));
    let listed = list_as(&rt, &admin).unwrap();
    assert!(listed.contains(&key), "{listed:?} lacks {key:?}");
    assert_eq!(
        samba_tool_ids(&dc),
        BTreeSet::from([standard.id.clone(), key.id.clone()])
    );

    // samba-tool shows every attribute as Samba itself writes it: same blobs and algorithm names as
    // the provisioned key, the DC's computer object as the domain id, our times.
    let ours = view(&dc, &key.id);
    for attr in [
        "msKds-Version",
        "msKds-KDFAlgorithmID",
        "msKds-KDFParam",
        "msKds-SecretAgreementAlgorithmID",
        "msKds-PublicKeyLength",
        "msKds-DomainID",
    ] {
        assert_eq!(ours[attr], reference[attr], "{attr}");
    }
    assert_eq!(
        ours["msKds-KDFParam"],
        hex::encode(kds_params::KDF_PARAM_SHA512)
    );
    // Samba writes 256 here when the Server Configuration leaves it out; MS-GKDI's default is 512.
    assert_eq!(reference["msKds-PrivateKeyLength"], 256);
    assert_eq!(ours["msKds-PrivateKeyLength"], 512);
    let secret = rt_view_secret(&dc, &key.id);
    assert_eq!(secret.0, hex::encode(kds_params::FFC_DH_PARAMETERS));
    assert_eq!(secret.0, rt_view_secret(&dc, &standard.id).0);
    assert_eq!(secret.1.len(), 2 * kds_params::ROOT_KEY_LEN);
    assert_ne!(
        secret.1,
        rt_view_secret(&dc, &standard.id).1,
        "two keys, one secret"
    );
    eprintln!("samba-tool view of the created key: {ours:#}");

    // The DC uses it: a new gMSA's password id names our key, and the allowed host reads the password
    // (ldapsearch, independent of the code under test).
    let late = dc.create_gmsa("lateGmsa");
    dc.gmsa_allow("lateGmsa", &host.sam_account_name);
    assert_eq!(password_id_root_key(&dc, &late), key.id);
    let blob = dc
        .read_managed_password(&late, &host.dn, &host.password)
        .unwrap()
        .expect("the allowed host reads the password derived from the new key");
    assert!(
        blob.len() >= 16 + 256 + 2 + 16,
        "blob of {} bytes",
        blob.len()
    );

    // The gMSA whose key was deleted stays broken: its password id still names the deleted key.
    assert!(
        dc.read_managed_password(&early, &host.dn, &host.password)
            .is_err()
    );
}

/// `msKds-SecretAgreementParam` and `msKds-RootKeyData` as hex, from `samba-tool … view --show-secrets`.
fn rt_view_secret(dc: &LabDc, id: &str) -> (String, String) {
    let out = dc
        .samba_tool(&[
            "domain",
            "kds",
            "root-key",
            "view",
            "--name",
            id,
            "--json",
            "--show-secrets",
        ])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["msKds-SecretAgreementParam"].as_str().unwrap().to_owned(),
        v["msKds-RootKeyData"].as_str().unwrap().to_owned(),
    )
}
