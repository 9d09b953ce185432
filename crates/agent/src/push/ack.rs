//! In-order acknowledgement: which outbox sequences are still outstanding, and how far the push
//! checkpoint may advance. Batches complete in any order; the checkpoint only ever moves to just
//! below the lowest sequence not yet acknowledged.

use std::collections::BTreeSet;

/// Outstanding outbox sequences (read, not yet acknowledged).
#[derive(Debug, Default)]
pub struct Acks {
    outstanding: BTreeSet<u64>,
    read_upto: u64,
}

impl Acks {
    /// Starts after the persisted checkpoint.
    pub fn new(checkpoint: u64) -> Acks {
        Acks {
            outstanding: BTreeSet::new(),
            read_upto: checkpoint,
        }
    }

    /// Records that `seq` was read (sequences are read in ascending order).
    pub fn read(&mut self, seq: u64) {
        self.outstanding.insert(seq);
        self.read_upto = self.read_upto.max(seq);
    }

    /// The highest sequence read so far.
    pub fn read_upto(&self) -> u64 {
        self.read_upto
    }

    /// Records that the tenant acknowledged `seqs`.
    pub fn done(&mut self, seqs: &[u64]) {
        for s in seqs {
            self.outstanding.remove(s);
        }
    }

    /// Number of sequences read and not acknowledged.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The checkpoint the acknowledgements allow: every sequence up to it is acknowledged.
    pub fn checkpoint(&self) -> u64 {
        match self.outstanding.first() {
            Some(lowest) => lowest - 1,
            None => self.read_upto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_over_a_contiguous_acknowledged_prefix() {
        let mut a = Acks::new(10);
        assert_eq!(a.checkpoint(), 10);
        for s in 11..=20 {
            a.read(s);
        }
        a.done(&[15, 16, 17, 18, 19, 20]); // a later batch finished first
        assert_eq!(a.checkpoint(), 10);
        a.done(&[11, 12]);
        assert_eq!(a.checkpoint(), 12);
        a.done(&[13, 14]);
        assert_eq!(a.checkpoint(), 20);
        assert_eq!(a.outstanding(), 0);
    }
}
