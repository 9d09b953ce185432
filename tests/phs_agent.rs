//! Password hash sync through the real binary (`agent sync-once`) against a lab DC, as the non-admin
//! sync account over MS-DRSR: with `fips.enforce = true` the feed still runs, PHS does not, and the
//! log names the setting that allows it; with `[phs] enabled = true` every seeded user gets a
//! `PasswordHashChanged` event whose OrgId string verifies against the seed's password; no NT hash
//! reaches the journal's files; a password reset in AD gives exactly one new event, for that user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use cloudsync::event::Event;
use cloudsync::journal::{Journal, JournalOptions};
use cloudsync::phs::{NtHash, OrgIdHash};
use common::lab::{self, LabDc};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

fn sync_once(config: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["agent", "sync-once", "--config", config.to_str().unwrap()])
        .env("CLOUDSYNC_LOG", "info")
        .output()
        .unwrap();
    eprintln!(
        "--- sync-once stdout:\n{}--- stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// All events in the journal at `dir` from `from` on (the binary has exited, so it is closed).
fn events(dir: &Path, from: u64) -> Vec<Event> {
    let journal = Journal::open(dir, JournalOptions::default()).unwrap();
    journal.read(from).map(|r| r.unwrap().event).collect()
}

fn hash_events(events: &[Event]) -> Vec<([u8; 16], String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PasswordHashChanged {
                guid, org_id_hash, ..
            } => Some((guid.0, org_id_hash.clone())),
            _ => None,
        })
        .collect()
}

/// sAMAccountName by objectGUID for every user, read over LDAPS as Administrator (not via the agent).
async fn sam_by_guid(dc: &LabDc) -> HashMap<[u8; 16], String> {
    let settings = LdapConnSettings::new().set_config(dc.rustls_config());
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &dc.ldaps_url)
        .await
        .unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&dc.admin_upn, &dc.admin_password)
        .await
        .unwrap()
        .success()
        .unwrap();
    let (entries, _) = ldap
        .search(
            &dc.base_dn,
            Scope::Subtree,
            "(&(objectCategory=person)(objectClass=user))",
            vec!["sAMAccountName", "objectGUID"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    entries
        .into_iter()
        .map(SearchEntry::construct)
        .filter_map(|e| {
            let guid = e.bin_attrs.get("objectGUID")?.first()?.clone();
            Some((
                guid.try_into().ok()?,
                e.attrs.get("sAMAccountName")?[0].clone(),
            ))
        })
        .collect()
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sync_once_journals_salted_hashes_follows_resets_and_yields_to_fips() {
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let base = ldap_support::config_toml(&dc, &journal_dir, "");
    let config = dir.path().join("agent.toml");

    // 1. FIPS policy enforced: exit 0, the feed ran, PHS did not, and the log says how to allow it.
    std::fs::write(
        &config,
        format!("{base}\n[fips]\nenforce = true\n\n[phs]\nenabled = true\n"),
    )
    .unwrap();
    let out = sync_once(&config);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warn = stderr
        .lines()
        .find(|l| l.contains("fips.allow_md5_for_password_hash_sync"))
        .unwrap_or_else(|| panic!("no FIPS message in:\n{stderr}"));
    assert!(warn.contains("WARN"), "{warn}");
    let fed = events(&journal_dir, 0);
    assert!(
        fed.iter()
            .filter(|e| matches!(e, Event::ObjectUpserted { .. }))
            .count()
            > lab::TEMPLATE_USERS
    );
    assert!(hash_events(&fed).is_empty());

    // 2. PHS on: one salted string per user, verifying against the seeded password.
    std::fs::write(&config, format!("{base}\n[phs]\nenabled = true\n")).unwrap();
    let out = sync_once(&config);
    assert!(out.status.success());
    let names = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sam_by_guid(&dc));
    let all = events(&journal_dir, 0);
    let hashes = hash_events(&all);
    let mut seeded = 0;
    for (guid, s) in &hashes {
        let Some(sam) = names.get(guid) else { continue };
        if !(sam.starts_with("user") || sam.starts_with("staff")) {
            continue;
        }
        let h: OrgIdHash = s.parse().unwrap();
        assert_eq!((h.iterations(), h.salt().len()), (1000, 10));
        // The full check is slow in a debug build: a sample of 20.
        if seeded < 20 {
            assert!(h.matches(&NtHash::from_password(&lab::seeded_password(sam))));
            assert!(!h.matches(&NtHash::from_password("Init!Pass99999")));
        }
        seeded += 1;
    }
    assert_eq!(seeded, lab::TEMPLATE_USERS + lab::STAFF_USERS);

    // 3. A reset in AD: the next sync-once journals one new string, for that user only.
    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(7),
        lab::unicode_pwd_base64("Reset!Pass0007")
    ));
    let before = Journal::open(&journal_dir, JournalOptions::default())
        .unwrap()
        .last_seq()
        .unwrap();
    let out = sync_once(&config);
    assert!(out.status.success());
    let delta = hash_events(&events(&journal_dir, before + 1));
    assert_eq!(delta.len(), 1, "{delta:?}");
    assert_eq!(names[&delta[0].0], "user00007");
    let h: OrgIdHash = delta[0].1.parse().unwrap();
    assert!(h.matches(&NtHash::from_password("Reset!Pass0007")));
    assert!(!h.matches(&NtHash::from_password(&lab::seeded_password("user00007"))));

    // DESIGN invariant 4: no NT hash (raw or hex) in any journal file.
    let bytes = all_bytes(&journal_dir);
    let mut passwords: Vec<String> = (1..=50)
        .map(|i| lab::seeded_password(&format!("user{i:05}")))
        .collect();
    passwords.push("Reset!Pass0007".into());
    for pw in passwords {
        let nt = NtHash::from_password(&pw);
        assert!(
            !contains(&bytes, nt.expose()),
            "raw NT hash of {pw} on disk"
        );
        assert!(!contains(&bytes, hex::encode(nt.expose()).as_bytes()));
        assert!(!contains(&bytes, hex::encode_upper(nt.expose()).as_bytes()));
    }
}
