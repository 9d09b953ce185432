//! Accidental-delete protection. Per run (one pass of the runner over the journal) and per domain, when
//! the number of deletes reaches the threshold (Microsoft: 500 means at most 499 go through), all of that
//! domain's deletes from the run are *staged*: kept locally, not sent. The configuration then reports
//! "Delete threshold exceeded"; `cloudsync agent allow-deletes` (or the tenant's restart with ForceDeletes)
//! releases them. Staging is outside the projected state on purpose: the object state stays a pure
//! function of the journal, whatever the run boundaries were.

use std::collections::BTreeMap;

use super::ops::Operation;
use super::projector::ProjectedOp;

/// The outcome of gating one run's operations.
#[derive(Debug, Default)]
pub struct Gated {
    /// Operations to send, in order.
    pub send: Vec<ProjectedOp>,
    /// Deletes held back, in order.
    pub staged: Vec<ProjectedOp>,
    /// Domains whose deletes reached the threshold, with the delete count.
    pub exceeded: BTreeMap<String, usize>,
}

/// Splits a run's operations by the delete threshold (`0` switches protection off).
pub fn gate(threshold: u32, ops: Vec<ProjectedOp>) -> Gated {
    gate_by(|_| threshold, ops)
}

/// [`gate`] with a threshold per domain (the tenant may set each domain's).
pub fn gate_by(threshold_of: impl Fn(&str) -> u32, ops: Vec<ProjectedOp>) -> Gated {
    let mut deletes: BTreeMap<&str, usize> = BTreeMap::new();
    for op in &ops {
        if matches!(op.op, Operation::Delete { .. }) {
            *deletes.entry(&*op.domain).or_default() += 1;
        }
    }
    let exceeded: BTreeMap<String, usize> = deletes
        .into_iter()
        .filter(|(d, n)| {
            let threshold = threshold_of(d);
            threshold > 0 && *n >= threshold as usize
        })
        .map(|(d, n)| (d.to_string(), n))
        .collect();
    let mut out = Gated {
        exceeded,
        ..Gated::default()
    };
    for op in ops {
        if matches!(op.op, Operation::Delete { .. }) && out.exceeded.contains_key(&*op.domain) {
            out.staged.push(op);
        } else {
            out.send.push(op);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::ops::ObjectKind;

    fn del(domain: &str, n: u64) -> ProjectedOp {
        ProjectedOp {
            domain: domain.into(),
            origin_seq: n,
            op: Operation::Delete {
                kind: ObjectKind::User,
                source_anchor: format!("a{n}"),
                version: n,
            },
            reason: None,
        }
    }

    fn add(n: u64) -> ProjectedOp {
        ProjectedOp {
            domain: "a".into(),
            origin_seq: n,
            op: Operation::AddMember {
                group_anchor: "g".into(),
                member_anchor: format!("m{n}"),
            },
            reason: None,
        }
    }

    #[test]
    fn threshold_value_is_the_first_blocked_count() {
        // 499 deletes pass, 500 are staged (Microsoft's "max 499 deletes per execution").
        let ops: Vec<_> = (0..499).map(|n| del("a", n)).collect();
        let g = gate(500, ops);
        assert_eq!((g.send.len(), g.staged.len()), (499, 0));
        let mut ops: Vec<_> = (0..500).map(|n| del("a", n)).collect();
        ops.push(add(1000));
        ops.push(del("b", 1001));
        let g = gate(500, ops);
        assert_eq!(g.staged.len(), 500);
        assert_eq!(g.send.len(), 2, "other kinds and other domains still flow");
        assert_eq!(g.exceeded.get("a"), Some(&500));
        assert!(!g.exceeded.contains_key("b"));
    }

    #[test]
    fn zero_switches_protection_off() {
        let g = gate(0, (0..10_000).map(|n| del("a", n)).collect());
        assert!(g.staged.is_empty() && g.exceeded.is_empty());
    }
}
