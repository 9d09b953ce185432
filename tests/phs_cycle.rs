//! The PHS cycle end to end against a real lab DC and a real on-disk journal, as the non-admin sync
//! account: every seeded user gets a `PasswordHashChanged` event whose OrgId string verifies against
//! the seed's password (and not a wrong one); the DRSR cookie makes the next cycle incremental; a
//! password reset shows up in the next cycle; no NT hash ever reaches the journal's files; FIPS mode
//! stops the stage with the setting that allows it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cloudsync_agent::event::{Event, SourceKind};
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::phs::{FipsSettings, HashPool, OrgIdHash, PhsError};
use cloudsync_agent::source::drsr::DrsrSettings;
use cloudsync_agent::source::drsr::ntlm::Credentials;
use cloudsync_agent::source::phs::cycle::{PhsCycle, PhsSource};
use cloudsync_agent::source::{EventSink, SinkError, SourceCheckpoint};
use common::lab::{self, LabDc};

fn drsr(dc: &LabDc) -> PhsSource {
    drsr_paged(dc, 1000)
}

fn drsr_paged(dc: &LabDc, page_objects: u32) -> PhsSource {
    PhsSource::Drsr(DrsrSettings {
        dc: dc.ip.to_string(),
        port: None,
        nc_dn: dc.base_dn.clone(),
        credentials: Credentials {
            user: dc.svc_sam_account_name().to_owned(),
            domain: dc.netbios_domain.clone(),
            nt_hash: NtHash::from_password(&dc.svc_password),
        },
        timeout: Duration::from_secs(30),
        page_objects,
        partial_attribute_set: true,
    })
}

fn hash_events(journal: &Journal, from: u64) -> Vec<([u8; 16], String)> {
    journal
        .read(from)
        .map(|r| r.unwrap())
        .filter_map(|r| match r.event {
            Event::PasswordHashChanged {
                guid, org_id_hash, ..
            } => Some((guid.0, org_id_hash)),
            _ => None,
        })
        .collect()
}

/// A lab DC, a runtime, and a journal in a temporary directory with FIPS mode off.
struct Setup {
    dc: LabDc,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    fips_off: std::path::PathBuf,
    journal: Journal,
}

fn setup() -> Setup {
    lab::check_prerequisites(std::env::var_os("PATH").as_deref()).unwrap();
    let dc = LabDc::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fips_off = dir.path().join("fips_enabled");
    std::fs::write(&fips_off, "0\n").unwrap();
    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    Setup {
        dc,
        rt,
        dir,
        fips_off,
        journal,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn cycles_journal_only_salted_strings_and_follow_resets() {
    let Setup {
        dc,
        rt,
        dir,
        fips_off,
        journal,
    } = setup();
    let cycle = PhsCycle::new(
        journal.clone(),
        HashPool::with_all_cores().unwrap(),
        dc.dns_domain.clone(),
        drsr(&dc),
        &FipsSettings::default(),
        &fips_off,
    )
    .unwrap();
    let names = rt.block_on(dc.sam_by_guid());

    let first = rt.block_on(cycle.run_once()).unwrap();
    eprintln!("first cycle: {first:?}");
    let events = hash_events(&journal, 0);
    assert_eq!(events.len(), first.hashes);
    let mut checked = 0;
    for (guid, s) in &events {
        let Some(sam) = names.get(guid) else { continue };
        if !(sam.starts_with("user") || sam.starts_with("staff")) {
            continue;
        }
        let h: OrgIdHash = s.parse().unwrap();
        assert_eq!((h.iterations(), h.salt().len()), (1000, 10));
        // Verify only a sample with the (slow) full check; every string parses.
        if checked < 40 {
            assert!(
                h.matches(&NtHash::from_password(&lab::seeded_password(sam))),
                "{sam}"
            );
            assert!(
                !h.matches(&NtHash::from_password("Init!Pass99999")),
                "{sam}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, lab::TEMPLATE_USERS + lab::STAFF_USERS);
    assert!(
        journal
            .checkpoint(&dc.dns_domain, SourceKind::Drsr)
            .unwrap()
            .is_some()
    );

    // Nothing changed: an empty cycle that still advances the cookie.
    let second = rt.block_on(cycle.run_once()).unwrap();
    assert_eq!(second.hashes, 0);

    dc.ldif_admin(&format!(
        "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        dc.user_dn(5),
        lab::unicode_pwd_base64("Reset!Pass0005")
    ));
    let before = journal.last_seq().unwrap();
    let third = rt.block_on(cycle.run_once()).unwrap();
    assert_eq!(third.hashes, 1);
    let delta = hash_events(&journal, before + 1);
    assert_eq!(names[&delta[0].0], "user00005");
    let h: OrgIdHash = delta[0].1.parse().unwrap();
    assert!(h.matches(&NtHash::from_password("Reset!Pass0005")));
    assert!(!h.matches(&NtHash::from_password(&lab::seeded_password("user00005"))));

    // DESIGN invariant 4: no NT hash (raw or hex) in any journal file.
    drop(cycle);
    let bytes = common::all_bytes(&dir.path().join("journal"));
    let mut passwords: Vec<String> = (1..=50)
        .map(|i| lab::seeded_password(&format!("user{i:05}")))
        .collect();
    passwords.push("Reset!Pass0005".into());
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

#[test]
fn fips_mode_stops_password_hash_sync_with_the_setting_that_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let fips_on = dir.path().join("fips_enabled");
    std::fs::write(&fips_on, "1\n").unwrap();
    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    let source = PhsSource::SambaPriv {
        socket: dir.path().join("ldapi"),
        base_dn: "DC=x".into(),
    };
    let err = PhsCycle::new(
        journal.clone(),
        HashPool::new(1, 1).unwrap(),
        "corp.example.test".into(),
        source,
        &FipsSettings::default(),
        &fips_on,
    )
    .unwrap_err();
    assert!(matches!(err, PhsError::Fips(_)));
    assert!(
        err.to_string()
            .contains("fips.allow_md5_for_password_hash_sync = true")
    );
    let allowed = FipsSettings {
        enforce: false,
        allow_md5_for_password_hash_sync: true,
    };
    let source = PhsSource::SambaPriv {
        socket: dir.path().join("ldapi"),
        base_dn: "DC=x".into(),
    };
    assert!(
        PhsCycle::new(
            journal,
            HashPool::new(1, 1).unwrap(),
            "corp.example.test".into(),
            source,
            &allowed,
            &fips_on
        )
        .is_ok()
    );
}

/// The journal as the cycle's sink, recording each append's event count and whether it carried the
/// checkpoint.
struct Recording {
    journal: Journal,
    appends: std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>>,
}

impl EventSink for Recording {
    fn checkpoint(&self, domain: &str, source: SourceKind) -> Result<Option<Vec<u8>>, SinkError> {
        EventSink::checkpoint(&self.journal, domain, source)
    }

    async fn append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<SourceCheckpoint>,
    ) -> Result<Option<u64>, SinkError> {
        self.appends
            .lock()
            .unwrap()
            .push((events.len(), checkpoint.is_some()));
        EventSink::append(&self.journal, events, checkpoint).await
    }
}

/// Memory stays bounded by the page, not the directory: every replicated page is appended on its
/// own as soon as it is hashed, and the cookie comes last, alone, once every page is durable (one
/// append of a whole cycle held ~10 KB per hash: 9.9 GB at 900,000 accounts).
#[test]
fn a_cycle_appends_page_by_page_and_the_cookie_last() {
    let Setup {
        dc,
        rt,
        dir: _dir,
        fips_off,
        journal,
    } = setup();
    let appends = std::sync::Arc::default();
    let page = 100;
    let cycle = PhsCycle::new(
        Recording {
            journal: journal.clone(),
            appends: std::sync::Arc::clone(&appends),
        },
        HashPool::with_all_cores().unwrap(),
        dc.dns_domain.clone(),
        drsr_paged(&dc, page),
        &FipsSettings::default(),
        &fips_off,
    )
    .unwrap();
    let report = rt.block_on(cycle.run_once()).unwrap();
    let appends = appends.lock().unwrap().clone();
    eprintln!("{report:?}: {} appends", appends.len());
    // The whole seeded directory, in many appends of at most a page each.
    assert!(report.hashes >= lab::TEMPLATE_USERS + lab::STAFF_USERS);
    let (last, pages) = appends.split_last().unwrap();
    assert_eq!(*last, (0, true), "the cookie comes last, alone");
    assert!(
        pages
            .iter()
            .all(|&(n, cp)| n > 0 && n <= page as usize && !cp)
    );
    assert!(pages.len() >= report.hashes / page as usize);
    assert_eq!(pages.iter().map(|p| p.0).sum::<usize>(), report.hashes);
    assert_eq!(hash_events(&journal, 0).len(), report.hashes);
    let (first_seq, last_seq) = report.seqs.unwrap();
    assert_eq!(last_seq - first_seq + 1, report.hashes as u64);
    assert!(
        journal
            .checkpoint(&dc.dns_domain, SourceKind::Drsr)
            .unwrap()
            .is_some()
    );
}
