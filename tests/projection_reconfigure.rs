//! Projection under a changed configuration: across a restart (the snapshot's attribute table and
//! settings fingerprints) and while running (the tenant's per-domain settings, re-evaluated by a
//! re-read of the domain, with "ConfigurationChanged" in the provisioning log). The outbox is an
//! in-memory model of `push::Outbox`'s contract, as in `projection_runner.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass, ResyncReason, SourceKind};
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::projection::cloud::DomainSettings;
use cloudsync_agent::projection::config::ProjectionConfig;
use cloudsync_agent::projection::mapping::MappingSpec;
use cloudsync_agent::projection::ops::ObjectKind;
use cloudsync_agent::projection::projector::ProjectedOp;
use cloudsync_agent::projection::runner::{OpSink, Runner, SinkError};
use cloudsync_agent::projection::store::ProjectionStore;
use cloudsync_api::ops::Operation;

const A: &str = "a.example.test";
const B: &str = "b.example.test";

#[derive(Clone, Default)]
struct MemOutbox(Arc<Mutex<(Vec<ProjectedOp>, Option<u64>)>>);

impl OpSink for MemOutbox {
    fn producer_cursor(&self) -> Result<Option<u64>, SinkError> {
        Ok(self.0.lock().unwrap().1)
    }

    async fn enqueue(&self, ops: Vec<ProjectedOp>, cursor: Option<u64>) -> Result<(), SinkError> {
        let mut g = self.0.lock().unwrap();
        g.0.extend(ops);
        if cursor.is_some() {
            g.1 = cursor;
        }
        Ok(())
    }
}

impl MemOutbox {
    fn take(&self) -> Vec<ProjectedOp> {
        std::mem::take(&mut self.0.lock().unwrap().0)
    }
}

fn guid(domain: &str, n: u8) -> Guid {
    Guid([
        n,
        u8::from(domain == B),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
    ])
}

fn dc(domain: &str) -> String {
    domain
        .split('.')
        .map(|l| format!("DC={l}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn user(domain: &str, n: u8, ou: &str, title: &str) -> Event {
    Event::ObjectUpserted {
        domain: domain.into(),
        guid: guid(domain, n),
        usn: 0,
        dn: format!("CN=u{n},OU={ou},{}", dc(domain)),
        class: ObjectClass::User,
        attributes: vec![
            Attribute::text("userPrincipalName", &[format!("u{n}@{domain}")]),
            Attribute::text("displayName", &[format!("User {n}")]),
            Attribute::text("userAccountControl", &["512"]),
            Attribute::text("title", &[title]),
            Attribute::text("department", &["Sales"]),
        ],
        full_image: true,
    }
}

fn disable(domain: &str, n: u8) -> Event {
    Event::ObjectUpserted {
        domain: domain.into(),
        guid: guid(domain, n),
        usn: 0,
        dn: String::new(),
        class: ObjectClass::User,
        attributes: vec![Attribute::text("userAccountControl", &["514"])],
        full_image: false,
    }
}

fn with_title_mapping() -> ProjectionConfig {
    let mut m = MappingSpec::new(ObjectKind::User, "jobTitle");
    m.source = Some("title".into());
    ProjectionConfig {
        mappings: vec![m],
        ..ProjectionConfig::default()
    }
}

fn upserts(ops: &[ProjectedOp]) -> Vec<&cloudsync_api::ops::Upsert> {
    ops.iter()
        .filter_map(|p| match &p.op {
            Operation::Upsert(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// A TOML mapping that reads one more attribute, added while the agent was stopped: the attribute
/// ids are the sorted names, so every stored value's id shifts. Before the snapshot recorded its
/// table, the next change of a user read its title under another attribute's id and sent that as
/// jobTitle; now the values are remapped and the domain is named for a re-read.
#[tokio::test]
async fn a_mapping_change_across_a_restart_keeps_reading_the_snapshot_right() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    journal
        .append(vec![user(A, 1, "Sales", "Boss")], None)
        .unwrap();
    let outbox = MemOutbox::default();
    {
        let store = ProjectionStore::open(&dir.path().join("projection")).unwrap();
        let compiled = with_title_mapping().compile().unwrap();
        let mut runner = Runner::open(compiled, journal.clone(), store, outbox.clone()).unwrap();
        runner.run_once(100).await.unwrap();
        runner.snapshot().unwrap();
        assert!(runner.take_rereads().is_empty());
    }
    let sent = outbox.take();
    assert_eq!(
        upserts(&sent)[0].attributes.get("jobTitle"),
        Some(&serde_json::json!("Boss"))
    );

    // The new configuration also maps an attribute whose name sorts first: every id moves by one.
    let mut cfg = with_title_mapping();
    let mut extra = MappingSpec::new(ObjectKind::User, "employeeType");
    extra.source = Some("aaaEmployeeKind".into());
    cfg.mappings.push(extra);
    let compiled = cfg.compile().unwrap();
    let store = ProjectionStore::open(&dir.path().join("projection")).unwrap();
    let mut runner = Runner::open(compiled, journal.clone(), store, outbox.clone()).unwrap();
    assert_eq!(
        runner
            .take_rereads()
            .into_iter()
            .map(|(d, _)| d)
            .collect::<Vec<_>>(),
        vec![A.to_string()],
        "the domain is re-read so the new attribute is read and the new mapping reaches every object"
    );
    journal.append(vec![disable(A, 1)], None).unwrap();
    runner.run_once(100).await.unwrap();
    let sent = outbox.take();
    let u = upserts(&sent);
    assert_eq!(u.len(), 1, "{sent:?}");
    assert_eq!(
        u[0].attributes.get("jobTitle"),
        Some(&serde_json::json!("Boss"))
    );
    assert_eq!(
        u[0].attributes.get("displayName"),
        Some(&serde_json::json!("User 1"))
    );
    assert_eq!(
        u[0].attributes.get("accountEnabled"),
        Some(&serde_json::json!(false))
    );
}

fn resync(domain: &str, users: Vec<Event>) -> Vec<Event> {
    let mut events = vec![Event::ResyncStarted {
        domain: domain.into(),
        source: SourceKind::LdapDirSync,
        reason: ResyncReason::Requested,
    }];
    events.extend(users);
    events.push(Event::ResyncCompleted {
        domain: domain.into(),
        source: SourceKind::LdapDirSync,
    });
    events
}

fn tenant(ous: &[&str], mappings: &[(&str, &str)], revision: u64) -> DomainSettings {
    DomainSettings {
        configuration_id: uuid::Uuid::from_u128(9),
        revision,
        ous: ous.iter().map(|s| s.to_string()).collect(),
        groups: Vec::new(),
        mappings: mappings
            .iter()
            .map(|(t, s)| (t.to_string(), s.to_string()))
            .collect(),
        delete_threshold: 500,
        password_hash_sync: true,
        password_writeback: false,
    }
}

/// The tenant scopes domain A to one OU while running: the re-read of A deletes A's objects outside
/// it (and only those: B keeps everything), each with "ConfigurationChanged" and the revision in
/// the provisioning log; the scope put back brings them back; a mapping override reaches existing
/// objects.
#[tokio::test]
async fn a_tenant_scope_change_moves_one_domains_objects_out_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    let a_users = || {
        vec![
            user(A, 1, "Sales", "Boss"),
            user(A, 2, "IT", "Admin"),
            user(A, 3, "IT", "Dev"),
        ]
    };
    let mut first = a_users();
    first.push(user(B, 1, "IT", "Ops"));
    journal.append(first, None).unwrap();
    let outbox = MemOutbox::default();
    let store = ProjectionStore::open(&dir.path().join("projection")).unwrap();
    let base = ProjectionConfig::default();
    let mut runner = Runner::open(
        base.compile().unwrap(),
        journal.clone(),
        store,
        outbox.clone(),
    )
    .unwrap();
    runner.run_once(100).await.unwrap();
    assert_eq!(upserts(&outbox.take()).len(), 4);

    let sales = format!("OU=Sales,{}", dc(A));
    let settings = BTreeMap::from([(A.to_string(), tenant(&[&sales], &[], 7))]);
    runner.reconfigure(
        base.compile_with(&settings).unwrap(),
        vec![(A.to_string(), "scope, revision 7".to_string())],
    );
    journal.append(resync(A, a_users()), None).unwrap();
    runner.run_once(100).await.unwrap();
    let sent = outbox.take();
    let deleted: Vec<&str> = sent
        .iter()
        .filter_map(|p| match &p.op {
            Operation::Delete { source_anchor, .. } => Some(&*p.domain).zip(Some(source_anchor)),
            _ => None,
        })
        .map(|(d, _)| d)
        .collect();
    assert_eq!(deleted, vec![A, A], "{sent:?}");
    assert!(upserts(&sent).is_empty(), "nothing else changed: {sent:?}");
    for n in [2, 3] {
        let log = runner.store().provlog().for_object(guid(A, n)).unwrap();
        assert!(
            log.iter()
                .any(|e| e.outcome == "ConfigurationChanged" && e.detail == "scope, revision 7"),
            "{log:?}"
        );
    }
    let kept = runner.store().provlog().for_object(guid(A, 1)).unwrap();
    assert!(
        !kept.iter().any(|e| e.outcome == "ConfigurationChanged"),
        "{kept:?}"
    );

    // Back to the whole domain, and jobTitle from an expression over the title.
    let settings = BTreeMap::from([(
        A.to_string(),
        tenant(
            &[],
            &[("jobTitle", "Join(\"/\", [title], [department])")],
            8,
        ),
    )]);
    runner.reconfigure(
        base.compile_with(&settings).unwrap(),
        vec![(A.to_string(), "scope, mappings, revision 8".to_string())],
    );
    journal.append(resync(A, a_users()), None).unwrap();
    runner.run_once(100).await.unwrap();
    let sent = outbox.take();
    let u = upserts(&sent);
    assert_eq!(
        u.len(),
        3,
        "all of A again (two back, one re-sent): {sent:?}"
    );
    assert!(sent.iter().all(|p| &*p.domain == A));
    let titles: Vec<_> = u
        .iter()
        .map(|u| u.attributes.get("jobTitle").cloned())
        .collect();
    assert!(
        titles.contains(&Some(serde_json::json!("Boss/Sales")))
            && titles.contains(&Some(serde_json::json!("Dev/Sales"))),
        "{titles:?}"
    );
    // After the re-read, later changes carry no configuration reason.
    journal.append(vec![disable(A, 1)], None).unwrap();
    runner.run_once(100).await.unwrap();
    let log = runner.store().provlog().for_object(guid(A, 1)).unwrap();
    let last_seq = log.iter().map(|e| e.seq).max().unwrap();
    assert!(
        !log.iter()
            .any(|e| e.seq == last_seq && e.outcome == "ConfigurationChanged"),
        "{log:?}"
    );
}

/// A restart in the middle of the re-read a configuration change asked for: the objects the re-read
/// brings after the restart are still evaluated under the new scope (before, an unchanged full
/// image after the restart was "NoChange" and the user stayed in the cloud).
#[tokio::test]
async fn a_restart_mid_reread_keeps_applying_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), JournalOptions::default()).unwrap();
    let users = || {
        vec![
            user(A, 1, "Sales", "Boss"),
            user(A, 2, "IT", "Admin"),
            user(A, 3, "IT", "Dev"),
        ]
    };
    journal.append(users(), None).unwrap();
    let outbox = MemOutbox::default();
    let base = ProjectionConfig::default();
    let sales = format!("OU=Sales,{}", dc(A));
    let settings = BTreeMap::from([(A.to_string(), tenant(&[&sales], &[], 7))]);
    {
        let store = ProjectionStore::open(&dir.path().join("projection")).unwrap();
        let mut runner = Runner::open(
            base.compile().unwrap(),
            journal.clone(),
            store,
            outbox.clone(),
        )
        .unwrap();
        runner.run_once(100).await.unwrap();
        runner.reconfigure(
            base.compile_with(&settings).unwrap(),
            vec![(A.to_string(), "scope, revision 7".to_string())],
        );
        // The re-read has read users 1 and 2 when the agent stops.
        let mut first = resync(A, users());
        first.truncate(3);
        journal.append(first, None).unwrap();
        runner.run_once(100).await.unwrap();
        runner.snapshot().unwrap();
    }
    outbox.take();
    let store = ProjectionStore::open(&dir.path().join("projection")).unwrap();
    let mut runner = Runner::open(
        base.compile_with(&settings).unwrap(),
        journal.clone(),
        store,
        outbox.clone(),
    )
    .unwrap();
    assert!(
        runner.take_rereads().is_empty(),
        "the settings did not change across the restart"
    );
    journal
        .append(
            vec![
                user(A, 3, "IT", "Dev"),
                Event::ResyncCompleted {
                    domain: A.into(),
                    source: SourceKind::LdapDirSync,
                },
            ],
            None,
        )
        .unwrap();
    runner.run_once(100).await.unwrap();
    let sent = outbox.take();
    assert!(
        sent.iter()
            .any(|p| matches!(&p.op, Operation::Delete { .. })),
        "user 3 is out of the new scope: {sent:?}"
    );
    let log = runner.store().provlog().for_object(guid(A, 3)).unwrap();
    assert!(
        log.iter()
            .any(|e| e.outcome == "ConfigurationChanged" && e.detail == "scope, revision 7"),
        "{log:?}"
    );
}
