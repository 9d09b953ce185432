//! Model-based test: random sequences of append / read / set-cursor / prune / reopen against a simple
//! in-memory model of what the journal promises (sled `fuzz_model.rs` style).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use cloudsync_agent::event::{Attribute, Event, Guid, ObjectClass, ResyncReason, SourceKind};
use cloudsync_agent::journal::{Checkpoint, Journal, JournalError, JournalOptions, Retention};
use proptest::prelude::*;

const CURSORS: [&str; 2] = ["projection", "push"];
const DOMAINS: [&str; 2] = ["corp.example.test", "lab.example.test"];
const SOURCES: [SourceKind; 2] = [SourceKind::LdapDirSync, SourceKind::Drsr];

fn arb_event() -> impl Strategy<Value = Event> {
    let domain = prop::sample::select(DOMAINS.to_vec()).prop_map(String::from);
    let guid = any::<[u8; 16]>().prop_map(Guid);
    let text = "\\PC{0,24}";
    let attr = (
        text,
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..3),
    )
        .prop_map(|(name, values)| Attribute { name, values });
    let class = prop_oneof![
        Just(ObjectClass::User),
        Just(ObjectClass::Group),
        text.prop_map(ObjectClass::Other)
    ];
    prop_oneof![
        (
            domain.clone(),
            guid.clone(),
            any::<u64>(),
            text,
            class,
            prop::collection::vec(attr, 0..4),
            any::<bool>()
        )
            .prop_map(|(domain, guid, usn, dn, class, attributes, full_image)| {
                Event::ObjectUpserted {
                    domain,
                    guid,
                    usn,
                    dn,
                    class,
                    attributes,
                    full_image,
                }
            }),
        (
            domain.clone(),
            guid.clone(),
            any::<u64>(),
            prop::collection::vec(text, 0..3),
            prop::collection::vec(text, 0..3)
        )
            .prop_map(
                |(domain, guid, usn, added, removed)| Event::MembersChanged {
                    domain,
                    guid,
                    usn,
                    attribute: "member".into(),
                    added,
                    removed
                }
            ),
        (
            domain.clone(),
            guid.clone(),
            any::<u64>(),
            text,
            prop::option::of(text)
        )
            .prop_map(|(domain, guid, usn, tombstone_dn, last_known_parent)| {
                Event::ObjectDeleted {
                    domain,
                    guid,
                    usn,
                    tombstone_dn,
                    last_known_parent,
                }
            }),
        (
            domain.clone(),
            guid.clone(),
            any::<u64>(),
            prop::option::of(any::<i64>())
        )
            .prop_map(|(domain, guid, usn, pwd_last_set)| Event::PasswordChanged {
                domain,
                guid,
                usn,
                pwd_last_set
            }),
        (domain.clone(), prop::option::of(text)).prop_map(|(domain, msg)| Event::ResyncStarted {
            domain,
            source: SourceKind::LdapDirSync,
            reason: msg.map_or(ResyncReason::Initial, ResyncReason::CookieRejected),
        }),
        domain.prop_map(|domain| Event::ResyncCompleted {
            domain,
            source: SourceKind::LdapUsnPoll
        }),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Event>, Option<(usize, usize, Vec<u8>)>),
    Read(u64),
    SetCursor(usize, u64),
    Prune,
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop::collection::vec(arb_event(), 0..6),
            prop::option::of((0..2usize, 0..2usize, prop::collection::vec(any::<u8>(), 0..8)))
        )
            .prop_map(|(e, c)| Op::Append(e, c)),
        2 => (0..40u64).prop_map(Op::Read),
        2 => (0..2usize, 0..40u64).prop_map(|(c, s)| Op::SetCursor(c, s)),
        1 => Just(Op::Prune),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default)]
struct Model {
    records: BTreeMap<u64, Event>,
    high_water: u64,
    checkpoints: BTreeMap<(usize, usize), Vec<u8>>,
    cursors: BTreeMap<usize, u64>,
}

fn sorted_checkpoints(j: &Journal) -> Vec<(String, SourceKind, Vec<u8>)> {
    let mut v: Vec<_> = j
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| (c.domain, c.source, c.data))
        .collect();
    v.sort();
    v
}

fn run(ops: Vec<Op>, keep: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        retention: Retention {
            keep_consumed: keep,
        },
        ..JournalOptions::default()
    };
    let mut journal = Journal::open(dir.path(), opts.clone()).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(events, cp) => {
                let checkpoint = cp.clone().map(|(d, s, data)| Checkpoint {
                    domain: DOMAINS[d].into(),
                    source: SOURCES[s],
                    data,
                });
                let ack = journal.append(events.clone(), checkpoint).unwrap();
                if events.is_empty() {
                    prop_assert_eq!((ack.first_seq, ack.last_seq), (None, None));
                } else {
                    let first = model.high_water + 1;
                    prop_assert_eq!(ack.first_seq, Some(first));
                    prop_assert_eq!(ack.last_seq, Some(model.high_water + events.len() as u64));
                    for (seq, e) in (first..).zip(events) {
                        model.records.insert(seq, e);
                        model.high_water = seq;
                    }
                }
                if let Some((d, s, data)) = cp {
                    model.checkpoints.insert((d, s), data);
                }
            }
            Op::Read(from) => {
                let got: Vec<(u64, Event)> = journal
                    .read(from)
                    .map(|r| r.map(|r| (r.seq, r.event)))
                    .collect::<Result<_, _>>()
                    .unwrap();
                let want: Vec<(u64, Event)> = model
                    .records
                    .range(from..)
                    .map(|(s, e)| (*s, e.clone()))
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::SetCursor(c, seq) => match journal.set_cursor(CURSORS[c], seq) {
                Ok(()) => {
                    prop_assert!(seq <= model.high_water);
                    model.cursors.insert(c, seq);
                }
                Err(JournalError::CursorBeyondEnd { .. }) => prop_assert!(seq > model.high_water),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            },
            Op::Prune => {
                let removed = journal.prune().unwrap();
                // Required cursor: "projection" (index 0), the default.
                let expected: Vec<u64> = if model.cursors.contains_key(&0) {
                    let low = *model.cursors.values().min().unwrap();
                    let bound = low.saturating_sub(keep);
                    model.records.range(..bound).map(|(s, _)| *s).collect()
                } else {
                    Vec::new()
                };
                for s in &expected {
                    model.records.remove(s);
                }
                prop_assert_eq!(removed, expected.len() as u64);
            }
            Op::Reopen => {
                drop(journal);
                journal = Journal::open(dir.path(), opts.clone()).unwrap();
            }
        }
        prop_assert_eq!(
            journal.last_seq(),
            (model.high_water > 0).then_some(model.high_water)
        );
        let want_cursors: Vec<(String, u64)> = model
            .cursors
            .iter()
            .map(|(c, s)| (CURSORS[*c].to_string(), *s))
            .collect();
        let mut got_cursors = journal.cursors().unwrap();
        got_cursors.sort();
        prop_assert_eq!(got_cursors, want_cursors);
        let mut want_cp: Vec<_> = model
            .checkpoints
            .iter()
            .map(|((d, s), data)| (DOMAINS[*d].to_string(), SOURCES[*s], data.clone()))
            .collect();
        want_cp.sort();
        prop_assert_eq!(sorted_checkpoints(&journal), want_cp);
    }
    let report = journal.verify().unwrap();
    prop_assert!(report.is_ok(), "{:?}", report.problems);
    prop_assert_eq!(report.records, model.records.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn journal_matches_the_model(ops in prop::collection::vec(arb_op(), 1..60), keep in 0..4u64) {
        run(ops, keep)?;
    }
}
