//! Provisioning log: per object and journal sequence, the outcome of each step — Import → Scope → Match →
//! Action — as Microsoft's provisioning logs show them. The projector produces entries; [`ProvLog`] keeps
//! them in a sled tree next to projection's snapshot, and `journal replay --object` shows them beside the
//! events that caused them.
//!
//! On disk: key `guid (16 bytes) ‖ seq (u64 BE) ‖ index (u16 BE)`, value = JSON of [`LogEntry`]. Entries
//! whose sequence is below the journal's first retained sequence may be pruned with [`ProvLog::prune_below`].

use serde::{Deserialize, Serialize};

use crate::event::Guid;

/// The four steps of a provisioning cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// The event was read from the journal.
    Import,
    /// Scoping decided in or out.
    Scope,
    /// Matching against the cloud: create, update, delete or nothing.
    Match,
    /// The operation produced (or why none was).
    Action,
}

/// One provisioning-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// The object.
    pub guid: Guid,
    /// The journal sequence being projected.
    pub seq: u64,
    /// The step.
    pub step: Step,
    /// A short outcome: `InScope`, `Skipped`, `Create`, `Update`, `Delete`, `NoChange`, `Upsert`,
    /// `StagedDelete`, `Error`, …
    pub outcome: String,
    /// Details for a human.
    pub detail: String,
}

/// Errors of the provisioning-log store.
#[derive(Debug, thiserror::Error)]
pub enum ProvLogError {
    /// sled failed.
    #[error("provisioning log store: {0}")]
    Sled(#[from] sled::Error),
    /// An entry did not decode.
    #[error("corrupt provisioning log entry: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl ProvLogError {
    /// Whether a retry can succeed (I/O only).
    pub fn is_retriable(&self) -> bool {
        matches!(self, ProvLogError::Sled(sled::Error::Io(_)))
    }
}

/// The provisioning log in a sled tree.
#[derive(Debug, Clone)]
pub struct ProvLog {
    tree: sled::Tree,
}

fn key(guid: Guid, seq: u64, index: u16) -> [u8; 26] {
    let mut k = [0u8; 26];
    k[..16].copy_from_slice(&guid.0);
    k[16..24].copy_from_slice(&seq.to_be_bytes());
    k[24..].copy_from_slice(&index.to_be_bytes());
    k
}

impl ProvLog {
    /// Opens (creating) the log in `tree`.
    pub fn new(tree: sled::Tree) -> ProvLog {
        ProvLog { tree }
    }

    /// Appends entries (in one sled batch; durability follows the snapshot flush).
    pub fn append(&self, entries: &[LogEntry]) -> Result<(), ProvLogError> {
        let mut batch = sled::Batch::default();
        let mut index: u16 = 0;
        let mut last: Option<(Guid, u64)> = None;
        for e in entries {
            if last != Some((e.guid, e.seq)) {
                index = 0;
                last = Some((e.guid, e.seq));
            }
            batch.insert(&key(e.guid, e.seq, index), serde_json::to_vec(e)?);
            index = index.saturating_add(1);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Every entry of one object, oldest first.
    pub fn for_object(&self, guid: Guid) -> Result<Vec<LogEntry>, ProvLogError> {
        self.tree
            .scan_prefix(guid.0)
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
    }

    /// Removes entries of sequences below `seq`; returns how many.
    pub fn prune_below(&self, seq: u64) -> Result<u64, ProvLogError> {
        let mut removed = 0;
        for kv in self.tree.iter() {
            let (k, _) = kv?;
            let s = k
                .get(16..24)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            if s.is_some_and(|s| s < seq) {
                self.tree.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_per_object_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = ProvLog::new(db.open_tree("provlog").unwrap());
        let a = Guid([1; 16]);
        let b = Guid([2; 16]);
        let e = |guid, seq, step, outcome: &str| LogEntry {
            guid,
            seq,
            step,
            outcome: outcome.into(),
            detail: String::new(),
        };
        log.append(&[
            e(a, 5, Step::Import, "Upserted"),
            e(a, 5, Step::Scope, "InScope"),
            e(b, 5, Step::Import, "Upserted"),
        ])
        .unwrap();
        log.append(&[
            e(a, 300, Step::Import, "Deleted"),
            e(a, 300, Step::Action, "Delete"),
        ])
        .unwrap();
        let got: Vec<(u64, Step)> = log
            .for_object(a)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.step))
            .collect();
        assert_eq!(
            got,
            vec![
                (5, Step::Import),
                (5, Step::Scope),
                (300, Step::Import),
                (300, Step::Action)
            ]
        );
        assert_eq!(log.prune_below(300).unwrap(), 3);
        assert_eq!(log.for_object(a).unwrap().len(), 2);
        assert!(log.for_object(b).unwrap().is_empty());
    }
}
