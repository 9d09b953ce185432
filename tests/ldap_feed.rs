//! The DirSync feed against the lab Samba DC: the initial sync captures every seeded object once, and
//! each kind of directory change arrives as exactly the expected events. Expected counts come from
//! `ldapsearch` (the lab fixture), expected events from the change the test itself makes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)]
mod common;
mod ldap_support;

use std::collections::{BTreeMap, HashSet};

use cloudsync_agent::event::{Attribute, Event, ObjectClass, ResyncReason};
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::runtime::feeds::read_domains_once;
use common::lab::{self, LabDc};
use ldap_support::{bare, config, events_from, guids_by_dn, runtime};

fn upsert_counts(events: &[Event]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        if let Event::ObjectUpserted {
            class,
            full_image: true,
            ..
        } = e
        {
            *counts.entry(class.as_str().to_string()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn initial_sync_captures_every_seeded_object_once() {
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let config = config(&dc, dir.path(), "");
    let rt = runtime();

    let outcomes = rt.block_on(read_domains_once(&config, &journal, false));
    let report = outcomes[0].result.as_ref().unwrap();
    assert_eq!(report.resync, Some(ResyncReason::Initial));

    let events = bare(&events_from(&journal, 0));
    assert!(matches!(
        events.first(),
        Some(Event::ResyncStarted {
            reason: ResyncReason::Initial,
            ..
        })
    ));
    assert!(matches!(events.last(), Some(Event::ResyncCompleted { .. })));

    // Independent expectation: ldapsearch over the same NC.
    let want: BTreeMap<String, usize> = [
        (
            "user",
            dc.search_count(
                "(&(objectClass=user)(!(objectClass=computer))(!(objectClass=inetOrgPerson)))",
            ),
        ),
        (
            "inetOrgPerson",
            dc.search_count("(objectClass=inetOrgPerson)"),
        ),
        ("group", dc.search_count("(objectClass=group)")),
        ("contact", dc.search_count("(objectClass=contact)")),
        (
            "organizationalUnit",
            dc.search_count("(objectClass=organizationalUnit)"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(upsert_counts(&events), want);
    assert!(want["user"] >= lab::TEMPLATE_USERS + lab::STAFF_USERS);

    let mut seen = HashSet::new();
    for e in &events {
        if let Event::ObjectUpserted {
            guid, attributes, ..
        } = e
        {
            assert!(seen.insert(*guid), "{guid} appears twice");
            assert!(
                !attributes
                    .iter()
                    .any(|a| a.name.eq_ignore_ascii_case("unicodePwd")),
                "a secret attribute reached the journal"
            );
        }
    }

    // A second pass is a delta with nothing in it and keeps the cookie.
    let before = journal.last_seq();
    let again = rt.block_on(read_domains_once(&config, &journal, false));
    let again = again[0].result.as_ref().unwrap();
    assert_eq!(again.resync, None);
    assert_eq!(again.events, 0);
    assert_eq!(journal.last_seq(), before);
}

/// Runs one pass and returns the events it appended.
fn pass(
    rt: &tokio::runtime::Runtime,
    config: &cloudsync_agent::config::Config,
    journal: &Journal,
) -> Vec<Event> {
    let from = journal.last_seq().map_or(0, |s| s + 1);
    let outcomes = rt.block_on(read_domains_once(config, journal, false));
    outcomes[0].result.as_ref().unwrap();
    bare(&events_from(journal, from))
}

#[test]
fn each_directory_change_arrives_as_exactly_the_expected_events() {
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let config = config(&dc, dir.path(), "");
    let rt = runtime();
    let domain = dc.dns_domain.clone();
    let initial = events_from(&journal, 0);
    assert!(initial.is_empty());
    let _ = pass(&rt, &config, &journal);
    let guids = guids_by_dn(&events_from(&journal, 0));
    let guid_of = |dn: &str| guids[&dn.to_ascii_lowercase()];
    let sync_users = dc.ou_dn("SyncUsers");

    // Create.
    let new_dn = format!("CN=feed-new,{sync_users}");
    dc.ldif_admin(&format!(
        "dn: {new_dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: feed-new\ngivenName: Feed\n"
    ));
    let events = pass(&rt, &config, &journal);
    assert_eq!(events.len(), 1, "{events:#?}");
    let Event::ObjectUpserted {
        dn,
        class,
        attributes,
        full_image,
        ..
    } = &events[0]
    else {
        panic!("create: {events:#?}")
    };
    assert_eq!(
        (dn.as_str(), class, *full_image),
        (new_dn.as_str(), &ObjectClass::User, true)
    );
    assert!(attributes.contains(&Attribute::text("givenName", &["Feed"])));

    // Modify one attribute.
    let u10 = dc.user_dn(10);
    dc.ldif_admin(&format!(
        "dn: {u10}\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: +1 555 0100\n"
    ));
    let events = pass(&rt, &config, &journal);
    let Event::ObjectUpserted { usn, .. } = &events[0] else {
        panic!("modify: {events:#?}")
    };
    assert_eq!(
        events,
        vec![Event::ObjectUpserted {
            domain: domain.clone(),
            guid: guid_of(&u10),
            usn: *usn,
            dn: u10.clone(),
            class: ObjectClass::User,
            attributes: vec![Attribute::text("telephoneNumber", &["+1 555 0100"])],
            full_image: false,
        }]
    );
    assert!(*usn > 0);

    // Rename in place.
    let u11 = dc.user_dn(11);
    let u11_new = format!("CN=user00011-renamed,{sync_users}");
    dc.ldif_admin(&format!(
        "dn: {u11}\nchangetype: modrdn\nnewrdn: CN=user00011-renamed\ndeleteoldrdn: 1\n"
    ));
    let events = pass(&rt, &config, &journal);
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ObjectMoved { guid, new_dn, old_dn: None, .. }
            if *guid == guid_of(&u11) && new_dn.eq_ignore_ascii_case(&u11_new))
        ),
        "rename: {events:#?}"
    );
    assert!(events.iter().all(|e| e.guid() == Some(guid_of(&u11))));

    // Move to another OU.
    let u12 = dc.user_dn(12);
    let u12_new = format!("CN=user00012,{}", dc.ou_dn("Staff"));
    dc.ldif_admin(&format!(
        "dn: {u12}\nchangetype: modrdn\nnewrdn: CN=user00012\ndeleteoldrdn: 1\nnewsuperior: {}\n",
        dc.ou_dn("Staff")
    ));
    let events = pass(&rt, &config, &journal);
    // The move, and the entry's `name` (the RDN value Samba sends with every move) as a delta upsert.
    assert!(
        matches!(events.as_slice(), [Event::ObjectMoved { guid, new_dn, .. }, Event::ObjectUpserted { attributes, full_image: false, .. }]
            if *guid == guid_of(&u12) && new_dn.eq_ignore_ascii_case(&u12_new)
                && attributes.len() == 1 && attributes[0].name == "name"),
        "move: {events:#?}"
    );

    // Disable.
    let u13 = dc.user_dn(13);
    dc.ldif_admin(&format!(
        "dn: {u13}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n"
    ));
    let events = pass(&rt, &config, &journal);
    assert!(
        matches!(events.as_slice(), [Event::ObjectUpserted { guid, attributes, full_image: false, .. }]
            if *guid == guid_of(&u13) && attributes == &vec![Attribute::text("userAccountControl", &["514"])]),
        "disable: {events:#?}"
    );

    // Delete. Samba shows the tombstone to svc-sync only because the lab lets it list/read
    // CN=Deleted Objects (`lab.sh provision`); without that grant this pass is empty.
    let u14 = dc.user_dn(14);
    dc.ldif_admin(&format!("dn: {u14}\nchangetype: delete\n"));
    let events = pass(&rt, &config, &journal);
    let deletes: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::ObjectDeleted { .. }))
        .collect();
    assert!(
        matches!(deletes.as_slice(), [Event::ObjectDeleted { guid, tombstone_dn, last_known_parent, .. }]
            if *guid == guid_of(&u14)
                && tombstone_dn.contains("DEL:")
                && last_known_parent.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(&sync_users))),
        "delete: {events:#?}"
    );
    // Deleting a member may also show as link removals on its groups (group4, group-all); nothing else.
    assert!(
        events.iter().all(|e| match e {
            Event::ObjectDeleted { .. } => true,
            Event::MembersChanged { added, removed, .. } =>
                added.is_empty() && removed.iter().all(|r| r.contains("user00014")),
            _ => false,
        }),
        "delete: {events:#?}"
    );

    // Add a member, then remove one.
    let empty = dc.group_dn("group-empty");
    let u20 = dc.user_dn(20);
    dc.ldif_admin(&format!(
        "dn: {empty}\nchangetype: modify\nadd: member\nmember: {u20}\n"
    ));
    let events = pass(&rt, &config, &journal);
    assert!(
        matches!(events.as_slice(), [Event::MembersChanged { guid, attribute, added, removed, .. }]
            if *guid == guid_of(&empty) && attribute == "member"
                && added.len() == 1 && added[0].eq_ignore_ascii_case(&u20) && removed.is_empty()),
        "add member: {events:#?}"
    );
    let g0 = dc.group_dn("group0");
    let u30 = dc.user_dn(30);
    dc.ldif_admin(&format!(
        "dn: {g0}\nchangetype: modify\ndelete: member\nmember: {u30}\n"
    ));
    let events = pass(&rt, &config, &journal);
    // A removal is journaled before the page's moves and again after them (`classify::page_order`:
    // `member;range=0-0` names the member by its DN at the removal).
    assert!(
        matches!(events.as_slice(), [first @ Event::MembersChanged { guid, added, removed, .. }, again]
            if *guid == guid_of(&g0) && added.is_empty()
                && removed.len() == 1 && removed[0].eq_ignore_ascii_case(&u30) && again == first),
        "remove member: {events:#?}"
    );

    // Reset a password.
    let u15 = dc.user_dn(15);
    dc.ldif_admin(&format!(
        "dn: {u15}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        lab::unicode_pwd_base64("Changed!Pw015")
    ));
    let events = pass(&rt, &config, &journal);
    assert!(
        matches!(events.as_slice(), [Event::PasswordChanged { guid, pwd_last_set: Some(t), .. }]
            if *guid == guid_of(&u15) && *t > 0),
        "password: {events:#?}"
    );
}

#[test]
fn a_rejected_cookie_triggers_a_marked_full_resync() {
    let dc = LabDc::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let config = config(&dc, dir.path(), "");
    let rt = runtime();
    // A checkpoint whose cookie is garbage (version byte 1, flags 0, then not an MSDS blob).
    journal
        .append(
            Vec::new(),
            Some(cloudsync_agent::journal::Checkpoint {
                domain: dc.dns_domain.clone(),
                source: cloudsync_agent::event::SourceKind::LdapDirSync,
                data: b"\x01\x00garbage-cookie".to_vec(),
            }),
        )
        .unwrap();
    let outcomes = rt.block_on(read_domains_once(&config, &journal, false));
    let report = outcomes[0].result.as_ref().unwrap();
    assert!(
        matches!(report.resync, Some(ResyncReason::CookieRejected(_))),
        "{report:?}"
    );
    let events = bare(&events_from(&journal, 0));
    assert!(matches!(
        events.first(),
        Some(Event::ResyncStarted {
            reason: ResyncReason::CookieRejected(_),
            ..
        })
    ));
    assert!(matches!(events.last(), Some(Event::ResyncCompleted { .. })));
}
