//! The runner over a real on-disk journal and projection store: restart without duplicates, the delete
//! threshold with allow-deletes, on-demand provisioning and the provisioning log.
//! The outbox here is an in-memory model of `push::Outbox`'s contract (ops + cursor in one write).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass};
use cloudsync_agent::journal::{Journal, JournalOptions};
use cloudsync_agent::projection::config::ProjectionConfig;
use cloudsync_agent::projection::projector::ProjectedOp;
use cloudsync_agent::projection::provlog::Step;
use cloudsync_agent::projection::runner::{OpSink, Runner, SinkError};
use cloudsync_agent::projection::scope::ScopeSpec;
use cloudsync_agent::projection::store::ProjectionStore;
use cloudsync_api::ops::Operation;

const D: &str = "corp.example.test";

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
    fn ops(&self) -> Vec<Operation> {
        self.0
            .lock()
            .unwrap()
            .0
            .iter()
            .map(|p| p.op.clone())
            .collect()
    }
}

fn user(n: u16, ou: &str) -> Event {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&n.to_le_bytes());
    Event::ObjectUpserted {
        domain: D.into(),
        guid: Guid(b),
        usn: 0,
        dn: format!("CN=u{n},OU={ou},DC=corp,DC=example,DC=test"),
        class: ObjectClass::User,
        attributes: vec![
            Attribute::text("userPrincipalName", &[format!("u{n}@corp.example.test")]),
            Attribute::text("displayName", &[format!("User {n}")]),
            Attribute::text("userAccountControl", &["512"]),
        ],
        full_image: true,
    }
}

fn delete(n: u16) -> Event {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&n.to_le_bytes());
    Event::ObjectDeleted {
        domain: D.into(),
        guid: Guid(b),
        usn: 0,
        tombstone_dn: String::new(),
        last_known_parent: None,
    }
}

fn cfg(threshold: u32) -> ProjectionConfig {
    ProjectionConfig {
        scope: ScopeSpec {
            ous: vec!["OU=In,DC=corp,DC=example,DC=test".into()],
            ..ScopeSpec::default()
        },
        delete_threshold: threshold,
        ..ProjectionConfig::default()
    }
}

/// A journal holding `events` in `dir/journal`.
fn journal_with(dir: &std::path::Path, events: Vec<Event>) -> Journal {
    let journal = Journal::open(&dir.join("journal"), JournalOptions::default()).unwrap();
    journal.append(events, None).unwrap();
    journal
}

/// A runner over `journal` with its store in `dir/projection`, delete threshold `threshold`.
fn runner(
    dir: &std::path::Path,
    journal: &Journal,
    outbox: &MemOutbox,
    threshold: u32,
) -> Runner<MemOutbox> {
    let store = ProjectionStore::open(&dir.join("projection")).unwrap();
    Runner::open(
        cfg(threshold).compile().unwrap(),
        journal.clone(),
        store,
        outbox.clone(),
    )
    .unwrap()
}

fn count(ops: &[Operation], action: &str) -> usize {
    ops.iter().filter(|o| o.action() == action).count()
}

#[tokio::test]
async fn restart_neither_loses_nor_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with(dir.path(), (0..30).map(|n| user(n, "In")).collect());
    let outbox = MemOutbox::default();
    {
        let mut runner = runner(dir.path(), &journal, &outbox, 500);
        runner.snapshot_every = 10;
        let r = runner.run_once(12).await.unwrap();
        assert_eq!((r.events, r.enqueued, r.cursor), (12, 12, 12));
        // A second run past the snapshot point; the snapshot is then at 25 (12 + 13), the outbox too.
        runner.run_once(13).await.unwrap();
        runner.run_once(2).await.unwrap(); // outbox cursor 27, snapshot still 25
    }
    assert_eq!(journal.cursor("projection").unwrap(), Some(25));
    let mut runner = runner(dir.path(), &journal, &outbox, 500);
    assert_eq!(
        runner.state().last_seq,
        27,
        "replayed silently up to the outbox cursor"
    );
    let r = runner.run_once(1000).await.unwrap();
    assert_eq!((r.events, r.enqueued), (3, 3));
    let ops = outbox.ops();
    assert_eq!(count(&ops, "upsert"), 30, "every user exactly once");
}

#[tokio::test]
async fn threshold_stages_deletes_until_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with(dir.path(), (0..10).map(|n| user(n, "In")).collect());
    let outbox = MemOutbox::default();
    let mut runner = runner(dir.path(), &journal, &outbox, 5);
    runner.run_once(1000).await.unwrap();
    // Four deletes in a run pass (threshold 5 means at most 4).
    journal.append((0..4).map(delete).collect(), None).unwrap();
    let r = runner.run_once(1000).await.unwrap();
    assert_eq!((r.staged, r.enqueued), (0, 4));
    // Five in one run: all staged, and the run reports the domain.
    journal.append((4..9).map(delete).collect(), None).unwrap();
    let r = runner.run_once(1000).await.unwrap();
    assert_eq!((r.staged, r.enqueued), (5, 0));
    assert_eq!(r.exceeded, vec![D.to_string()]);
    assert_eq!(count(&outbox.ops(), "delete"), 4);
    assert_eq!(runner.store().staged().unwrap().len(), 5);
    let log = runner
        .store()
        .provlog()
        .for_object(Guid([5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.step == Step::Action && e.outcome == "StagedDelete"),
        "{log:?}"
    );
    assert_eq!(runner.allow_deletes(None).await.unwrap(), 5);
    assert_eq!(count(&outbox.ops(), "delete"), 9);
    assert!(runner.store().staged().unwrap().is_empty());
}

#[tokio::test]
async fn on_demand_ignores_the_scope_filter_and_leaves_state_alone() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with(dir.path(), vec![user(1, "Out")]);
    let outbox = MemOutbox::default();
    let mut runner = runner(dir.path(), &journal, &outbox, 500);
    runner.run_once(1000).await.unwrap();
    assert!(outbox.ops().is_empty(), "out of scope");
    let before = runner.state().to_bytes().unwrap();
    let (log, ops) = runner
        .provision("cn=U1, OU=Out,DC=corp,DC=example,DC=test")
        .await
        .unwrap();
    let steps: Vec<(Step, &str)> = log.iter().map(|e| (e.step, e.outcome.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            (Step::Import, "OnDemand"),
            (Step::Scope, "InScope"),
            (Step::Match, "Create"),
            (Step::Action, "Upsert")
        ]
    );
    assert_eq!(ops.len(), 1);
    assert_eq!(runner.state().to_bytes().unwrap(), before);
    assert!(runner.provision("CN=nobody,DC=x").await.is_err());
    let history = runner
        .store()
        .provlog()
        .for_object(Guid([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .unwrap();
    assert_eq!(
        history
            .iter()
            .find(|e| e.step == Step::Scope)
            .map(|e| e.outcome.as_str()),
        Some("Skipped")
    );
}

#[tokio::test]
async fn journal_replay_shows_the_provisioning_log_next_to_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let pdir = dir.path().join("projection");
    {
        let journal = journal_with(
            dir.path(),
            vec![user(1, "In"), user(2, "Out"), user(1, "Out")],
        );
        let mut runner = runner(dir.path(), &journal, &MemOutbox::default(), 500);
        runner.run_once(1000).await.unwrap();
    }
    let guid = Guid([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["journal", "replay"])
        .arg(&jdir)
        .args(["--object", &guid, "--projection"])
        .arg(&pdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Event 1 (created in scope), then event 3 (moved out of scope: deleted); user 2's event is not shown.
    assert_eq!(
        lines.iter().filter(|l| !l.starts_with("    -> ")).count(),
        2,
        "{text}"
    );
    assert!(lines.contains(&"    -> Match Create: "), "{text}");
    assert!(
        lines.contains(&"    -> Scope Skipped: outside the selected OUs or groups"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("    -> Action Delete: ")),
        "{text}"
    );
}

/// A chunk stops once its events produced `max_chunk_ops` operations (memory: a group's full image
/// makes one per member) and says there is more; chunked or not, the outbox gets the same
/// operations in the same order (the unbounded run is the oracle).
#[tokio::test]
async fn a_chunk_stops_at_the_operation_bound_and_changes_nothing_else() {
    let events: Vec<Event> = (1..=300).map(|n| user(n, "In")).collect();
    let whole = tempfile::tempdir().unwrap();
    let oracle = MemOutbox::default();
    let journal = journal_with(whole.path(), events.clone());
    let mut r = runner(whole.path(), &journal, &oracle, 10_000);
    let all = r.run_once(1000).await.unwrap();
    assert!(!all.more);
    assert_eq!(all.events, 300);

    let chunked = tempfile::tempdir().unwrap();
    let outbox = MemOutbox::default();
    let journal = journal_with(chunked.path(), events);
    let mut r = runner(chunked.path(), &journal, &outbox, 10_000);
    r.max_chunk_ops = 50;
    let mut calls = 0;
    loop {
        let before = outbox.ops().len();
        let rep = r.run_once(1000).await.unwrap();
        calls += 1;
        let produced = outbox.ops().len() - before;
        if rep.more {
            // At the bound, by at most one event's operations.
            assert!((50..50 + 3).contains(&produced), "{produced}");
            assert!(rep.events < 300);
        } else {
            assert!(produced < 50);
            break;
        }
    }
    assert!(calls >= 300 / 50, "{calls} calls");
    assert_eq!(outbox.ops(), oracle.ops());
    assert_eq!(
        outbox.0.lock().unwrap().1,
        oracle.0.lock().unwrap().1,
        "the same cursor"
    );
}
