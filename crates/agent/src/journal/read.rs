//! Reading: records in sequence order with continuity checks, and the stored checkpoints.

use std::sync::atomic::Ordering;

use super::codec::{self, RecordType, StoredCheckpoint, StoredEvent};
use super::{Checkpoint, Journal, JournalError, Record, recovery};
use crate::event::SourceKind;

impl Journal {
    /// Durable records with `seq >= from_seq`, in sequence order. Starts at the first stored record when
    /// `from_seq` was pruned; a missing record after that is a [`JournalError::Gap`]. A corrupt record is a
    /// [`JournalError::Corrupt`]. The iterator ends after the first error.
    pub fn read(&self, from_seq: u64) -> impl Iterator<Item = Result<Record, JournalError>> + '_ {
        let end = self.inner.durable_seq.load(Ordering::Acquire);
        let from = from_seq.max(1);
        let iter = if from > end {
            None
        } else {
            Some(
                self.inner
                    .tree
                    .range(codec::event_key(from)..=codec::event_key(end)),
            )
        };
        // Reading from inside the stored run: the record at `from` itself must be there.
        let expected = match recovery::first_event_seq(&self.inner.tree) {
            Ok(Some(first)) if from > first => Some(from),
            _ => None,
        };
        Records {
            iter,
            expected,
            failed: false,
            dir: self.inner.dir.clone(),
        }
    }

    /// The stored checkpoint of `domain` from `source`.
    pub fn checkpoint(
        &self,
        domain: &str,
        source: SourceKind,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        let key = codec::checkpoint_key(domain, source);
        match self.inner.tree.get(&key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode_checkpoint(&key, &bytes)?.data)),
        }
    }

    /// Every stored checkpoint, ordered by source then domain.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, JournalError> {
        let mut out = Vec::new();
        for entry in self.inner.tree.scan_prefix([codec::CHECKPOINT_PREFIX]) {
            let (key, bytes) = entry?;
            let stored = decode_checkpoint(&key, &bytes)?;
            out.push(Checkpoint {
                domain: stored.domain,
                source: stored.source,
                data: stored.data,
            });
        }
        Ok(out)
    }
}

pub(super) fn decode_checkpoint(
    key: &[u8],
    bytes: &[u8],
) -> Result<StoredCheckpoint, JournalError> {
    codec::open::<StoredCheckpoint>(RecordType::Checkpoint, bytes).map_err(|reason| {
        JournalError::CorruptEntry {
            key: codec::describe_key(key),
            reason,
        }
    })
}

/// The iterator behind [`Journal::read`].
struct Records {
    iter: Option<sled::Iter>,
    /// The next seq that must follow; `None` before the first record.
    expected: Option<u64>,
    failed: bool,
    /// Named in a [`JournalError::Damaged`] found while reading.
    dir: std::path::PathBuf,
}

impl Iterator for Records {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.iter.as_mut()?.next()?;
        let result = self.decode(item).map_err(|e| e.in_dir(&self.dir));
        self.failed = result.is_err();
        Some(result)
    }
}

impl Records {
    fn decode(
        &mut self,
        item: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Result<Record, JournalError> {
        let (key, bytes) = item?;
        let seq = codec::seq_of_key(&key).ok_or_else(|| JournalError::CorruptEntry {
            key: codec::describe_key(&key),
            reason: "not an event key inside the event range".into(),
        })?;
        // Without an expectation this is the first stored record, above `from` because of pruning.
        if let Some(expected) = self.expected
            && seq != expected
        {
            return Err(JournalError::Gap {
                expected,
                found: seq,
            });
        }
        let stored = codec::open::<StoredEvent>(RecordType::Event, &bytes)
            .map_err(|reason| JournalError::Corrupt { seq, reason })?;
        self.expected = Some(seq + 1);
        Ok(Record {
            seq,
            appended_at_unix_ms: stored.appended_at_unix_ms,
            event: stored.event,
        })
    }
}
