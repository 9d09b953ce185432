//! Recovery on open (the corrupt-tail rule) and the full consistency check behind `cloudsync journal verify`.

use super::codec::{self, RecordType, StoredEvent};
use super::read::decode_checkpoint;
use super::{Journal, JournalError};

/// Reads the sequence high-water mark (0 when absent).
pub(super) fn read_high_water(tree: &sled::Tree) -> Result<u64, JournalError> {
    match tree.get(codec::HIGH_WATER_KEY)? {
        None => Ok(0),
        Some(bytes) => codec::open::<u64>(RecordType::HighWater, &bytes).map_err(|reason| {
            JournalError::CorruptEntry {
                key: codec::describe_key(codec::HIGH_WATER_KEY),
                reason,
            }
        }),
    }
}

fn event_range(tree: &sled::Tree) -> sled::Iter {
    tree.range(codec::event_key(0)..=codec::event_key(u64::MAX))
}

/// The sequence number of the highest stored event record.
pub(super) fn last_event_seq(tree: &sled::Tree) -> Result<Option<u64>, JournalError> {
    match event_range(tree).next_back() {
        None => Ok(None),
        Some(entry) => Ok(codec::seq_of_key(&entry?.0)),
    }
}

/// The sequence number of the lowest stored event record.
pub(super) fn first_event_seq(tree: &sled::Tree) -> Result<Option<u64>, JournalError> {
    match event_range(tree).next() {
        None => Ok(None),
        Some(entry) => Ok(codec::seq_of_key(&entry?.0)),
    }
}

/// Checks the highest event record; if its envelope is corrupt, drops it (module doc, "Recovery on open")
/// and returns the high-water mark to continue from.
pub(super) fn recover_tail(tree: &sled::Tree) -> Result<u64, JournalError> {
    let high_water = read_high_water(tree)?;
    let Some(seq) = last_event_seq(tree)? else {
        return Ok(high_water);
    };
    let Some(bytes) = tree.get(codec::event_key(seq))? else {
        return Ok(high_water.max(seq));
    };
    let reason = match codec::open::<StoredEvent>(RecordType::Event, &bytes) {
        Ok(_) => return Ok(high_water.max(seq)),
        Err(reason) => reason,
    };
    tracing::warn!(seq, %reason, "Dropping the corrupt last journal record.");
    let new_high = seq - 1;
    let mut batch = sled::Batch::default();
    batch.remove(&codec::event_key(seq));
    batch.insert(
        codec::HIGH_WATER_KEY,
        codec::seal(RecordType::HighWater, &new_high)?,
    );
    for entry in tree.scan_prefix([codec::CHECKPOINT_PREFIX]) {
        let (key, value) = entry?;
        let stored = decode_checkpoint(&key, &value)?;
        if stored.covers_seq >= seq {
            tracing::warn!(
                domain = %stored.domain,
                source = stored.source.as_str(),
                seq,
                "Dropping the checkpoint that covered the dropped record; its source will re-read."
            );
            batch.remove(key);
        }
    }
    for (name, at) in super::cursor::scan_cursors(tree)? {
        if at > new_high {
            tracing::warn!(cursor = %name, from = at, to = new_high, "Moving a cursor back before the dropped record.");
            batch.insert(
                codec::cursor_key(&name),
                codec::seal(RecordType::Cursor, &new_high)?,
            );
        }
    }
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(new_high)
}

/// The outcome of [`Journal::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Event records checked.
    pub records: u64,
    /// The lowest stored seq.
    pub first_seq: Option<u64>,
    /// The highest stored seq.
    pub last_seq: Option<u64>,
    /// The stored high-water mark.
    pub high_water: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Cursors checked.
    pub cursors: u64,
    /// Every problem found, in key order; empty when the journal is sound.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Journal {
    /// Checks every entry: each envelope's CRC and payload, sequence continuity from the first stored
    /// record, and that the high-water mark, cursors and checkpoints do not point past the records.
    /// Only storage errors are returned as `Err`; data problems are listed in the report.
    pub fn verify(&self) -> Result<VerifyReport, JournalError> {
        self.verify_inner().map_err(|e| e.in_dir(&self.inner.dir))
    }

    fn verify_inner(&self) -> Result<VerifyReport, JournalError> {
        let tree = &self.inner.tree;
        let mut report = VerifyReport::default();
        let mut expected: Option<u64> = None;
        // Checks against the high-water mark only make sense when it could be read.
        let mut mark_sound = true;
        for entry in tree.iter() {
            let (key, value) = entry?;
            match key.first() {
                Some(&codec::EVENT_PREFIX) => {
                    let Some(seq) = codec::seq_of_key(&key) else {
                        report
                            .problems
                            .push(format!("malformed event key {}", codec::describe_key(&key)));
                        continue;
                    };
                    if let Some(exp) = expected
                        && seq != exp
                    {
                        report.problems.push(
                            JournalError::Gap {
                                expected: exp,
                                found: seq,
                            }
                            .to_string(),
                        );
                    }
                    expected = Some(seq + 1);
                    report.records += 1;
                    report.first_seq.get_or_insert(seq);
                    report.last_seq = Some(seq);
                    if let Err(reason) = codec::open::<StoredEvent>(RecordType::Event, &value) {
                        report
                            .problems
                            .push(JournalError::Corrupt { seq, reason }.to_string());
                    }
                }
                Some(&codec::CHECKPOINT_PREFIX) => {
                    report.checkpoints += 1;
                    if let Err(e) = decode_checkpoint(&key, &value) {
                        report.problems.push(e.to_string());
                    }
                }
                Some(&codec::CURSOR_PREFIX) => {
                    report.cursors += 1;
                    if let Err(reason) = codec::open::<u64>(RecordType::Cursor, &value) {
                        report.problems.push(
                            JournalError::CorruptEntry {
                                key: codec::describe_key(&key),
                                reason,
                            }
                            .to_string(),
                        );
                    }
                }
                _ if key.as_ref() == codec::HIGH_WATER_KEY => match read_high_water(tree) {
                    Ok(mark) => report.high_water = mark,
                    Err(e) => {
                        mark_sound = false;
                        report.problems.push(e.to_string());
                    }
                },
                _ => report
                    .problems
                    .push(format!("unknown entry {}", codec::describe_key(&key))),
            }
        }
        if !mark_sound {
            return Ok(report);
        }
        if let Some(last) = report.last_seq
            && last > report.high_water
        {
            report.problems.push(format!(
                "record seq {last} lies above the high-water mark {}",
                report.high_water
            ));
        }
        for (name, at) in super::cursor::scan_cursors(tree).unwrap_or_default() {
            if at > report.high_water {
                report.problems.push(format!(
                    "cursor `{name}` at seq {at} lies above the high-water mark {}",
                    report.high_water
                ));
            }
        }
        Ok(report)
    }
}
