//! Ranged retrieval of large groups. Samba does not enforce MaxValRange, so the ranged path is
//! exercised by asking for ranges explicitly — exactly what the server would force on AD.
//!
//! The fast test reads the seeded 1,000-member `group-all` in ranges of 150. The 5,000-member test
//! first adds 4,000 contacts (runs of 400 per `ldapmodify`, see `ldif_admin_bulk`) and the group.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use std::collections::HashSet;
use std::fmt::Write as _;

use cloudsync_agent::event::Event;
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::runtime::feeds::read_domains_once;
use cloudsync_agent::source::ldap::range::{ValueRange, fetch_ranged, read_base};
use cloudsync_agent::source::ldap::{conn, page};
use common::lab::{self, LabDc};
use ldap_support::{bare, config, events_from, ldif_admin_bulk, runtime};

#[test]
fn the_seeded_1000_member_group_is_read_completely_in_ranges_of_150() {
    let dc = LabDc::start();
    let group = dc.group_dn("group-all");
    let expected: HashSet<String> = (1..=lab::TEMPLATE_USERS)
        .map(|i| dc.user_dn(i).to_ascii_lowercase())
        .collect();
    check_ranged_group(&dc, &group, &expected, 150);
}

#[test]
fn a_group_of_5000_members_is_read_completely_in_ranges() {
    const MEMBERS: usize = 5000;
    let dc = LabDc::start();
    let sync_users = dc.ou_dn("SyncUsers");
    // 1,000 seeded users + 4,000 new contacts = 5,000 members.
    let mut ldif = String::new();
    let mut expected: HashSet<String> = (1..=lab::TEMPLATE_USERS)
        .map(|i| dc.user_dn(i).to_ascii_lowercase())
        .collect();
    for i in 0..MEMBERS - lab::TEMPLATE_USERS {
        let dn = format!("CN=bulk{i:05},{sync_users}");
        writeln!(ldif, "dn: {dn}\nchangetype: add\nobjectClass: contact\n").unwrap();
        expected.insert(dn.to_ascii_lowercase());
    }
    let t = std::time::Instant::now();
    ldif_admin_bulk(&dc, &ldif);
    let big = format!("CN=big,{}", dc.ou_dn("SyncUsers"));
    let mut add = format!("dn: {big}\nchangetype: add\nobjectClass: group\nsAMAccountName: big\n");
    for dn in &expected {
        writeln!(add, "member: {dn}").unwrap();
    }
    dc.ldif_admin(&add);
    eprintln!(
        "added {} contacts and the {MEMBERS}-member group in {:.1} s",
        MEMBERS - lab::TEMPLATE_USERS,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(expected.len(), MEMBERS);
    check_ranged_group(&dc, &big, &expected, 1500);
}

/// Reads `group`'s members chunk by chunk (`step` per request), then from a ranged answer completed
/// by the pass's entry processing, then through an initial DirSync; each must equal `expected`.
fn check_ranged_group(dc: &LabDc, big: &str, expected: &HashSet<String>, step: u32) {
    let members = expected.len();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dc, dir.path(), "");
    let cfg = config.domains["lab"].clone();
    let rt = runtime();
    rt.block_on(async {
        let mut c = conn::connect(&cfg).await.unwrap();

        // Chunk by chunk, 1,500 at a time, as AD would force it.
        let values = fetch_ranged(&mut c, big, "member", 0, step).await.unwrap();
        let got: HashSet<String> = values
            .iter()
            .map(|v| String::from_utf8(v.clone()).unwrap().to_ascii_lowercase())
            .collect();
        assert_eq!(values.len(), members);
        assert_eq!(&got, expected);

        // A server answer that is ranged is completed by the pass's entry processing.
        let mut entry = read_base(
            &mut c,
            big,
            &[format!("member;range=0-{}", step - 1).as_str()],
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            entry.attrs[0].range,
            Some(ValueRange {
                start: 0,
                end: Some(step - 1)
            })
        );
        assert_eq!(entry.attrs[0].values.len(), step as usize);
        page::complete_ranges(&mut c, &mut entry).await.unwrap();
        let total: usize = entry
            .attrs
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("member"))
            .map(|a| a.values.len())
            .sum();
        assert_eq!(total, members);
    });

    // And the initial DirSync carries all 5,000 in the group's full image.
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    rt.block_on(read_domains_once(&config, &journal, false))[0]
        .result
        .as_ref()
        .unwrap();
    let events = bare(&events_from(&journal, 0));
    let found = events
        .iter()
        .find_map(|e| match e {
            Event::ObjectUpserted { dn, attributes, .. } if dn.eq_ignore_ascii_case(big) => {
                attributes
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case("member"))
                    .map(|a| a.values.len())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(found, members);
}
