use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use cloudsync_api::ops::{ObjectKind, Upsert};

fn upsert(anchor: &str, version: u64) -> Operation {
    Operation::Upsert(Upsert {
        kind: ObjectKind::User,
        source_anchor: anchor.into(),
        version,
        on_premises: Default::default(),
        attributes: BTreeMap::from([("displayName".into(), serde_json::json!(anchor))]),
    })
}

fn add(group: &str, member: &str) -> Operation {
    Operation::AddMember {
        group_anchor: group.into(),
        member_anchor: member.into(),
    }
}

fn pending(ops: Vec<Operation>, now: Instant) -> Pending {
    let mut p = Pending::default();
    for (i, op) in ops.into_iter().enumerate() {
        p.push_new(Item::new(i as u64 + 1, Uuid::nil(), op, now));
    }
    p
}

const WIDE: Limits = Limits {
    max_ops: 500,
    max_bytes: 1 << 20,
    scan: 10_000,
};

#[test]
fn successive_upserts_collapse_to_the_last_at_the_first_position() {
    let now = Instant::now();
    let mut p = pending(vec![upsert("a", 1), upsert("b", 2), upsert("a", 3)], now);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), now).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].seqs, vec![1, 3]);
    assert_eq!(items[0].op, upsert("a", 3));
    assert_eq!(items[1].op, upsert("b", 2));
    assert!(p.is_empty());
}

#[test]
fn an_upsert_after_a_membership_of_the_same_object_is_not_merged() {
    let now = Instant::now();
    let ops = vec![upsert("g", 1), add("g", "m"), upsert("g", 2)];
    let mut p = pending(ops.clone(), now);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), now).unwrap();
    let sent: Vec<_> = items.iter().map(|i| i.op.clone()).collect();
    assert_eq!(
        sent, ops,
        "nothing may move across the membership operation"
    );
}

#[test]
fn in_flight_and_waiting_objects_block_later_operations_of_the_same_object() {
    let now = Instant::now();
    let mut p = pending(vec![upsert("a", 1), add("g", "a"), upsert("b", 1)], now);
    let in_flight = HashMap::from([("a".to_owned(), 1)]);
    let (_, items) = p.assemble(WIDE, &in_flight, now).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].op, upsert("b", 1));
    // A retry waiting for its backoff blocks the object as well.
    let mut p = pending(vec![upsert("a", 1), upsert("a", 2), upsert("c", 1)], now);
    let mut first = p.items.pop_front().unwrap();
    first.not_before = Some(now + Duration::from_secs(5));
    p.requeue(first);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), now).unwrap();
    assert_eq!(
        items.iter().map(|i| i.position()).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(p.len(), 2);
    let (_, items) = p
        .assemble(WIDE, &HashMap::new(), now + Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        items[0].seqs,
        vec![1, 2],
        "due again, merged with its successor"
    );
}

#[test]
fn a_waiting_membership_retry_lets_upserts_of_its_objects_overtake_but_nothing_else() {
    let now = Instant::now();
    let remove = Operation::RemoveMember {
        group_anchor: "g".into(),
        member_anchor: "m".into(),
    };
    let delete = Operation::Delete {
        kind: ObjectKind::User,
        source_anchor: "m".into(),
        version: 9,
    };
    let mut p = pending(
        vec![
            add("g", "m"),
            upsert("m", 1),
            remove.clone(),
            upsert("g", 1),
            delete,
        ],
        now,
    );
    let mut first = p.items.pop_front().unwrap();
    first.not_before = Some(now + Duration::from_secs(5));
    p.requeue(first);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), now).unwrap();
    let sent: Vec<_> = items.iter().map(|i| i.op.clone()).collect();
    assert_eq!(sent, vec![upsert("m", 1), upsert("g", 1)]);
    let later = now + Duration::from_secs(5);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), later).unwrap();
    let positions: Vec<_> = items.iter().map(|i| i.position()).collect();
    assert_eq!(
        positions,
        vec![1, 3, 5],
        "the retry, then the removal and the delete, in order"
    );
}

#[test]
fn a_waiting_password_hash_lets_the_user_upsert_overtake() {
    let now = Instant::now();
    let phs = Operation::SetPasswordHash {
        source_anchor: "u".into(),
        version: 1,
        credential: "v1;PPH1_MD4,00,1000,00;".into(),
    };
    let mut p = pending(vec![phs, upsert("u", 2)], now);
    let mut first = p.items.pop_front().unwrap();
    first.not_before = Some(now + Duration::from_secs(1));
    p.requeue(first);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), now).unwrap();
    assert_eq!(
        items.iter().map(|i| i.position()).collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn count_and_byte_limits() {
    let now = Instant::now();
    let mut p = pending((0..10).map(|n| upsert(&format!("u{n}"), 1)).collect(), now);
    let size = p.items[0].size;
    let limits = Limits {
        max_ops: 4,
        max_bytes: size * 3,
        scan: 100,
    };
    assert_eq!(p.assemble(limits, &HashMap::new(), now).unwrap().1.len(), 3);
    let limits = Limits { max_ops: 2, ..WIDE };
    assert_eq!(p.assemble(limits, &HashMap::new(), now).unwrap().1.len(), 2);
}

#[test]
fn batch_ids_are_deterministic_and_change_with_a_retry() {
    let now = Instant::now();
    let items = pending(vec![upsert("a", 1), upsert("b", 1)], now).items;
    let items: Vec<Item> = items.into_iter().collect();
    let id = batch_id(Uuid::nil(), &items);
    assert_eq!(id, batch_id(Uuid::nil(), &items.clone()));
    assert_eq!(id.get_version_num(), 8);
    let mut retried = items.clone();
    retried[0].attempts = 1;
    assert_ne!(id, batch_id(Uuid::nil(), &retried));
    assert_ne!(id, batch_id(Uuid::max(), &items));
}

fn arb_op() -> impl Strategy<Value = Operation> {
    let anchor = prop::sample::select(vec!["a", "b", "c", "g", "h"]);
    prop_oneof![
        (anchor.clone(), 1u64..100).prop_map(|(a, v)| upsert(a, v)),
        (anchor.clone(), anchor).prop_map(|(g, m)| add(g, m)),
    ]
}

proptest! {
    /// Model: sending batches one after another must give every object the same sequence of
    /// operations as the outbox order, except that runs of successive upserts collapse to their last.
    #[test]
    fn per_object_order_is_kept(ops in prop::collection::vec(arb_op(), 0..60), max_ops in 1usize..8) {
        let now = Instant::now();
        let mut p = pending(ops.clone(), now);
        let limits = Limits { max_ops, max_bytes: 1 << 20, scan: 1000 };
        let mut sent: Vec<Item> = Vec::new();
        while let Some((_, items)) = p.assemble(limits, &HashMap::new(), now) {
            prop_assert!(!items.is_empty() && items.len() <= max_ops);
            sent.extend(items);
        }
        prop_assert!(p.is_empty());
        let mut covered: Vec<u64> = sent.iter().flat_map(|i| i.seqs.clone()).collect();
        covered.sort_unstable();
        prop_assert_eq!(covered, (1..=ops.len() as u64).collect::<Vec<_>>());
        for key in ["a", "b", "c", "g", "h"] {
            // Expected per-object history, computed from the input alone.
            let mut expected: Vec<Operation> = Vec::new();
            for op in ops.iter().filter(|o| op_keys(o).contains(&key)) {
                let merge = matches!((expected.last(), op), (Some(Operation::Upsert(l)), Operation::Upsert(n))
                    if l.source_anchor == n.source_anchor && n.source_anchor == key);
                if merge { expected.pop(); }
                expected.push(op.clone());
            }
            let actual: Vec<Operation> = sent.iter().filter(|i| i.keys().contains(&key)).map(|i| i.op.clone()).collect();
            // Coalescing happens only inside one batch, so the actual history may keep some upserts
            // the model merged; it must be the model's history with extra intermediate upserts.
            let collapsed: Vec<Operation> = actual.iter().enumerate().filter(|(n, op)| {
                !matches!((op, actual.get(n + 1)), (Operation::Upsert(a), Some(Operation::Upsert(b)))
                    if a.source_anchor == key && b.source_anchor == key)
            }).map(|(_, op)| op.clone()).collect();
            prop_assert_eq!(collapsed, expected, "object {}", key);
        }
    }
}

#[test]
fn reasons_travel_by_operation_index_and_survive_coalescing_cut_to_the_limit() {
    let now = Instant::now();
    let mut p = Pending::default();
    let mut first = Item::new(1, Uuid::nil(), upsert("a", 1), now);
    first.reason = Some("ConfigurationChanged: scope, revision 2".into());
    p.push_new(first);
    p.push_new(Item::new(2, Uuid::nil(), upsert("b", 2), now));
    // A later upsert of "a" without a reason coalesces into the first: the reason stays.
    p.push_new(Item::new(3, Uuid::nil(), upsert("a", 3), now));
    let mut long = Item::new(4, Uuid::nil(), upsert("c", 4), now);
    long.reason = Some("é".repeat(cloudsync_api::MAX_REASON_CHARS + 10));
    p.push_new(long);
    let (_, items) = p.assemble(WIDE, &HashMap::new(), now).unwrap();
    let anchors: Vec<&str> = items.iter().map(|i| i.op.source_anchor()).collect();
    assert_eq!(anchors, ["a", "b", "c"], "a's two upserts coalesced");
    let batch = build(Uuid::nil(), items).unwrap();
    let wire: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
    assert_eq!(
        wire["reasons"]["0"],
        serde_json::json!("ConfigurationChanged: scope, revision 2")
    );
    assert!(wire["reasons"].get("1").is_none());
    assert_eq!(
        wire["reasons"]["2"].as_str().unwrap().chars().count(),
        cloudsync_api::MAX_REASON_CHARS
    );
}

#[test]
fn image_complete_waits_until_everything_before_it_is_acknowledged_and_later_ops_overtake() {
    let now = Instant::now();
    let complete = Operation::ImageComplete {
        version: 9,
        keep: vec![],
    };
    let mut p = pending(
        vec![
            upsert("a", 1),
            upsert("b", 2),
            complete.clone(),
            upsert("c", 4),
        ],
        now,
    );
    // Nothing acknowledged yet (the lowest unacknowledged sequence is 1): the image's upserts go,
    // and so does the later upsert; imageComplete waits in place.
    let (_, items) = p
        .assemble_where(WIDE, &HashMap::new(), now, &|i| may_send(i, 1))
        .unwrap();
    let seqs: Vec<u64> = items.iter().map(Item::position).collect();
    assert_eq!(seqs, vec![1, 2, 4]);
    assert!(
        p.assemble_where(WIDE, &HashMap::new(), now, &|i| may_send(i, 1))
            .is_none()
    );
    // Sequences 1 and 2 acknowledged (4 may still be in flight): it goes.
    let (_, items) = p
        .assemble_where(WIDE, &HashMap::new(), now, &|i| may_send(i, 3))
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].op, complete);
}

#[test]
fn take_where_removes_the_picked_items_in_order() {
    let now = Instant::now();
    let mut p = pending(vec![upsert("a", 1), upsert("b", 2), upsert("c", 3)], now);
    let taken = p.take_where(|i| i.position() != 2);
    assert_eq!(
        taken.iter().map(Item::position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(p.len(), 1);
}

/// A retry that is due but held behind an earlier retry of the same object that is not: nothing
/// can go now, and the time to look again is the held-back item's, not the due one's (which lies in
/// the past and woke nothing: a partially throttled batch stalled the push stage for an hour).
#[test]
fn the_next_wake_is_the_earliest_future_due_time_not_a_past_one() {
    let now = Instant::now();
    let mut p = pending(vec![add("g", "a"), add("g", "b")], now);
    let mut first = p.items.pop_front().unwrap();
    let mut second = p.items.pop_front().unwrap();
    first.not_before = Some(now + Duration::from_millis(1_300));
    second.not_before = Some(now - Duration::from_millis(200));
    p.requeue(second);
    p.requeue(first);
    assert!(p.assemble(WIDE, &HashMap::new(), now).is_none());
    assert!(
        p.next_due().is_some_and(|t| t <= now),
        "the overall earliest is past"
    );
    assert_eq!(
        p.next_due_after(now),
        Some(now + Duration::from_millis(1_300))
    );
    let (_, items) = p
        .assemble(WIDE, &HashMap::new(), now + Duration::from_millis(1_300))
        .unwrap();
    assert_eq!(items.len(), 2);
}
