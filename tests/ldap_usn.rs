//! The uSNChanged fallback for accounts without the DirSync right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use cloudsync_agent::event::{Attribute, Event, ResyncReason};
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::runtime::feeds::read_domains_once;
use common::lab::LabDc;
use ldap_support::{bare, config, events_from, guids_by_dn, runtime};

#[test]
fn usn_poll_reads_everything_then_only_changes_and_cannot_see_deletes() {
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let config = config(&dc, dir.path(), "mode = \"usn-poll\"\npage_size = 200\n");
    let rt = runtime();
    let doomed = format!("CN=usn-doomed,{}", dc.ou_dn("SyncUsers"));
    dc.ldif_admin(&format!(
        "dn: {doomed}\nchangetype: add\nobjectClass: contact\n"
    ));

    let report = rt.block_on(read_domains_once(&config, &journal, false))[0]
        .result
        .as_ref()
        .unwrap()
        .clone();
    assert_eq!(report.resync, Some(ResyncReason::Initial));
    let events = events_from(&journal, 0);
    let full_images = bare(&events)
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ObjectUpserted {
                    full_image: true,
                    ..
                }
            )
        })
        .count();
    let want = dc.search_count(
        "(&(|(objectClass=user)(objectClass=group)(objectClass=contact)(objectClass=organizationalUnit))(!(objectClass=computer)))",
    );
    assert_eq!(full_images, want);
    let guids = guids_by_dn(&events);

    let u8dn = dc.user_dn(8);
    dc.ldif_admin(&format!(
        "dn: {u8dn}\nchangetype: modify\nreplace: title\ntitle: Polled\n"
    ));
    dc.ldif_admin(&format!("dn: {doomed}\nchangetype: delete\n"));
    let from = journal.last_seq().unwrap() + 1;
    rt.block_on(read_domains_once(&config, &journal, false))[0]
        .result
        .as_ref()
        .unwrap();
    let delta = bare(&events_from(&journal, from));
    assert_eq!(delta.len(), 1, "{delta:#?}");
    let Event::ObjectUpserted {
        guid, attributes, ..
    } = &delta[0]
    else {
        panic!("{delta:#?}")
    };
    assert_eq!(*guid, guids[&u8dn.to_ascii_lowercase()]);
    assert!(attributes.contains(&Attribute::text("title", &["Polled"])));
}
