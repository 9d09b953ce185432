//! Named consumer cursors and retention (pruning of consumed records).

use super::codec::{self, RecordType};
use super::{Journal, JournalError};

/// How many removals go into one pruning batch (bounds one sled log reservation).
const PRUNE_CHUNK: usize = 10_000;

/// Every cursor in the tree, ordered by name.
pub(super) fn scan_cursors(tree: &sled::Tree) -> Result<Vec<(String, u64)>, JournalError> {
    let mut out = Vec::new();
    for entry in tree.scan_prefix([codec::CURSOR_PREFIX]) {
        let (key, value) = entry?;
        let corrupt = |reason: String| JournalError::CorruptEntry {
            key: codec::describe_key(&key),
            reason,
        };
        let name = String::from_utf8(key[1..].to_vec())
            .map_err(|_| corrupt("cursor name is not UTF-8".into()))?;
        let at = codec::open::<u64>(RecordType::Cursor, &value).map_err(corrupt)?;
        out.push((name, at));
    }
    Ok(out)
}

fn validate_name(name: &str) -> Result<(), JournalError> {
    let ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(JournalError::InvalidCursorName(name.to_string()))
    }
}

impl Journal {
    /// The position of cursor `name`: the last sequence number its consumer has finished with.
    pub fn cursor(&self, name: &str) -> Result<Option<u64>, JournalError> {
        validate_name(name)?;
        match self.inner.tree.get(codec::cursor_key(name))? {
            None => Ok(None),
            Some(bytes) => codec::open::<u64>(RecordType::Cursor, &bytes)
                .map(Some)
                .map_err(|reason| JournalError::CorruptEntry {
                    key: codec::describe_key(&codec::cursor_key(name)),
                    reason,
                }),
        }
    }

    /// Every cursor, ordered by name.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>, JournalError> {
        scan_cursors(&self.inner.tree)
    }

    /// Moves cursor `name` to `seq` (forwards or back) and returns once that is durable. `seq` may not
    /// exceed [`Journal::last_seq`]; 0 means "nothing consumed".
    pub fn set_cursor(&self, name: &str, seq: u64) -> Result<(), JournalError> {
        validate_name(name)?;
        let value = codec::seal(RecordType::Cursor, &seq)?;
        let generation = self.commit(|_, batch| {
            let last = self.last_seq().unwrap_or(0);
            if seq > last {
                return Err(JournalError::CursorBeyondEnd {
                    name: name.to_string(),
                    seq,
                    last,
                });
            }
            batch.insert(codec::cursor_key(name), value);
            Ok(())
        })?;
        self.wait_durable(generation)
    }

    /// Removes consumed records per [`super::Retention`]: only below the lowest cursor, only when every
    /// required cursor exists, keeping the newest `keep_consumed` of them. Returns how many were removed.
    pub fn prune(&self) -> Result<u64, JournalError> {
        self.check_poisoned()?;
        let keep = self.inner.opts.retention.keep_consumed;
        let cursors = self.cursors()?;
        let required_missing = self
            .inner
            .opts
            .required_cursors
            .iter()
            .any(|req| !cursors.iter().any(|(name, _)| name == req));
        if keep == u64::MAX || cursors.is_empty() || required_missing {
            return Ok(0);
        }
        let lowest = cursors.iter().map(|(_, at)| *at).min().unwrap_or(0);
        // Records `< bound` go; `bound <= lowest`, so nothing at or above any cursor is touched.
        let bound = lowest.saturating_sub(keep);
        let mut removed = 0u64;
        loop {
            let keys: Vec<sled::IVec> = self
                .inner
                .tree
                .range(codec::event_key(0)..codec::event_key(bound))
                .keys()
                .take(PRUNE_CHUNK)
                .collect::<Result<_, _>>()?;
            if keys.is_empty() {
                break;
            }
            let count = keys.len() as u64;
            let generation = self.commit(|_, batch| {
                for key in keys {
                    batch.remove(key);
                }
                Ok(())
            })?;
            self.wait_durable(generation)?;
            removed += count;
        }
        if removed > 0 {
            tracing::info!(
                removed,
                below_seq = bound,
                "Pruned consumed journal records."
            );
        }
        Ok(removed)
    }
}
