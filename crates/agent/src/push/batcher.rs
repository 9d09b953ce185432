//! Forming batches from pending outbox entries: count and byte limits, coalescing of successive
//! upserts of one object, and the per-object ordering rules (see the delivery contract in
//! [`crate::push`]).

use std::collections::{HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use cloudsync_api::ops::{Operation, OperationBatch};

/// One pending operation: an outbox entry, or several coalesced upserts of one object.
#[derive(Debug, Clone)]
pub struct Item {
    /// The outbox sequences this item covers, ascending; the first is its order position.
    pub seqs: Vec<u64>,
    /// The configuration it goes to.
    pub configuration: Uuid,
    /// The operation to send (for coalesced upserts: the latest).
    pub op: Operation,
    /// Size of the operation's JSON, bytes (for the byte limit).
    pub size: usize,
    /// Retriable per-operation failures so far.
    pub attempts: u32,
    /// Not to be sent before this instant (per-operation backoff).
    pub not_before: Option<Instant>,
    /// When the item was read from the outbox (for the linger).
    pub read_at: Instant,
    /// Why it is sent beyond an AD change (the outbox entry's reason), for the tenant's log.
    pub reason: Option<String>,
}

impl Item {
    /// Builds an item for one outbox entry, measuring its size by encoding the operation.
    pub fn new(seq: u64, configuration: Uuid, op: Operation, now: Instant) -> Item {
        let size = serde_json::to_vec(&op).map_or(1024, |v| v.len() + 1);
        Item::with_size(seq, configuration, op, size, now)
    }

    /// Builds an item whose encoded size is already known (the push loop uses the stored
    /// payload length, so it does not encode every operation once more).
    pub fn with_size(
        seq: u64,
        configuration: Uuid,
        op: Operation,
        size: usize,
        now: Instant,
    ) -> Item {
        Item {
            seqs: vec![seq],
            configuration,
            op,
            size,
            attempts: 0,
            not_before: None,
            read_at: now,
            reason: None,
        }
    }

    /// The order position: the first outbox sequence covered.
    pub fn position(&self) -> u64 {
        self.seqs.first().copied().unwrap_or(0)
    }

    /// The objects (source anchors) the operation touches: a membership operation touches the
    /// group and the member.
    pub fn keys(&self) -> Vec<&str> {
        op_keys(&self.op)
    }
}

/// Whether an operation needs its objects to exist but changes none of their attributes: membership
/// changes and password hashes. Such an operation waiting for a retry (typically
/// `ReferenceNotFound`) lets later upserts of its objects overtake it.
pub fn needs_existing_objects(op: &Operation) -> bool {
    matches!(
        op,
        Operation::AddMember { .. }
            | Operation::RemoveMember { .. }
            | Operation::SetPasswordHash { .. }
    )
}

/// The source anchors an operation touches.
pub fn op_keys(op: &Operation) -> Vec<&str> {
    match op {
        Operation::Upsert(u) => vec![u.source_anchor.as_str()],
        Operation::Delete { source_anchor, .. }
        | Operation::SetPasswordHash { source_anchor, .. } => vec![source_anchor.as_str()],
        Operation::AddMember {
            group_anchor,
            member_anchor,
        }
        | Operation::RemoveMember {
            group_anchor,
            member_anchor,
        } => vec![group_anchor.as_str(), member_anchor.as_str()],
        // About the whole configuration: ordered by the barrier in the push loop instead.
        Operation::ImageComplete { .. } => Vec::new(),
    }
}

/// Whether `item` may be batched now as far as order across objects goes: every operation may,
/// except `imageComplete`, which waits until everything before it is acknowledged (its position is
/// `first_unacked`, the lowest sequence not yet acknowledged), so the tenant's sweep sees the whole
/// takeover image applied. (Order per object is the batcher's own rule.)
pub fn may_send(item: &Item, first_unacked: u64) -> bool {
    !matches!(item.op, Operation::ImageComplete { .. }) || item.position() == first_unacked
}

/// Limits of one batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// At most this many operations.
    pub max_ops: usize,
    /// At most this many bytes of operation JSON (a batch of one larger operation still goes).
    pub max_bytes: usize,
    /// Look at most this many pending items when forming one batch (bounds the work per batch).
    pub scan: usize,
}

/// A batch ready to send.
#[derive(Debug)]
pub struct Batch {
    /// Deterministic id (see [`batch_id`]).
    pub id: Uuid,
    /// The configuration.
    pub configuration: Uuid,
    /// The items, in send order.
    pub items: Vec<Item>,
    /// The serialised request body, reused by every whole-batch retry.
    pub body: Vec<u8>,
    /// Whole-batch send attempts so far.
    pub attempts: u32,
    /// The lease epoch stamped in `body` (`None`: no lease, the agent never heartbeat).
    pub epoch: Option<u64>,
}

impl Batch {
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A deterministic batch id: a UUIDv8 over SHA-256 of the configuration id and, per item, its
/// outbox sequences and per-operation attempt count. The same items after a restart give the same
/// id (the tenant then returns its stored results); a per-operation retry gives a new one.
///
/// Under a lease the epoch is hashed too: two agents' outbox sequences both start at 1, so without
/// it the new holder's first batch could carry the old holder's id and get the old holder's stored
/// results as a "replay", with nothing applied.
pub fn batch_id(configuration: Uuid, items: &[Item]) -> Uuid {
    batch_id_in(configuration, items, None)
}

/// [`batch_id`] under a lease epoch.
pub fn batch_id_in(configuration: Uuid, items: &[Item], epoch: Option<u64>) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"cloudsync-batch-v1");
    h.update(configuration.as_bytes());
    if let Some(epoch) = epoch {
        h.update(b"epoch");
        h.update(epoch.to_be_bytes());
    }
    for item in items {
        h.update((item.seqs.len() as u64).to_be_bytes());
        for s in &item.seqs {
            h.update(s.to_be_bytes());
        }
        h.update(item.attempts.to_be_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Pending items, always sorted by order position.
#[derive(Debug, Default)]
pub struct Pending {
    items: VecDeque<Item>,
}

impl Pending {
    /// Number of pending items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a freshly read item (its position is above every pending one).
    pub fn push_new(&mut self, item: Item) {
        self.items.push_back(item);
    }

    /// Removes and returns every item `f` picks, in order.
    pub fn take_where(&mut self, f: impl Fn(&Item) -> bool) -> Vec<Item> {
        let (taken, kept): (Vec<Item>, Vec<Item>) = self.items.drain(..).partition(|i| f(i));
        self.items = kept.into();
        taken
    }

    /// Puts an item back at its order position (a retry).
    pub fn requeue(&mut self, item: Item) {
        let pos = self
            .items
            .partition_point(|i| i.position() < item.position());
        self.items.insert(pos, item);
    }

    /// The earliest instant a waiting item becomes due, if any item waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.items.iter().filter_map(|i| i.not_before).min()
    }

    /// The earliest instant after `now` at which a waiting item becomes due: when to look again
    /// if nothing could be batched now. Not [`Pending::next_due`]: an item due already can be held
    /// behind an earlier one of the same object that is not (retries get jittered delays), and
    /// waking at the past instant would wake nothing — the push stage slept an hour so.
    pub fn next_due_after(&self, now: Instant) -> Option<Instant> {
        self.items
            .iter()
            .filter_map(|i| i.not_before)
            .filter(|t| *t > now)
            .min()
    }

    /// Makes every waiting item due now (after a quarantine is cleared).
    pub fn make_due(&mut self, now: Instant) {
        for item in &mut self.items {
            if item.not_before.is_some_and(|t| t > now) {
                item.not_before = Some(now);
            }
        }
    }

    /// When the oldest pending item was read.
    pub fn oldest_read(&self) -> Option<Instant> {
        self.items.iter().map(|i| i.read_at).min()
    }

    /// Forms the next batch: takes due items in order, skipping (and blocking every later item of
    /// the same object behind) items that are not due, that touch an object in flight, or that go
    /// to another configuration; coalesces an upsert into the previous upsert of the same object
    /// when nothing in between touched it. Returns `None` when nothing can go now.
    ///
    /// One exception to the blocking: a skipped membership or password-hash operation does not hold
    /// back later UPSERTS of its objects. Its retry usually waits for exactly that upsert
    /// (`ReferenceNotFound`), and an upsert carries neither membership nor credentials, so letting
    /// it overtake is safe; later operations of any other kind on those objects still wait.
    pub fn assemble(
        &mut self,
        limits: Limits,
        in_flight: &HashMap<String, usize>,
        now: Instant,
    ) -> Option<(Uuid, Vec<Item>)> {
        self.assemble_where(limits, in_flight, now, &|_| true)
    }

    /// [`Self::assemble`] over the items `allowed` lets through (those of configurations whose
    /// lease this agent holds; an `imageComplete` only once everything before it is acknowledged);
    /// the others wait in place.
    pub fn assemble_where(
        &mut self,
        limits: Limits,
        in_flight: &HashMap<String, usize>,
        now: Instant,
        allowed: &dyn Fn(&Item) -> bool,
    ) -> Option<(Uuid, Vec<Item>)> {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut blocked_except_upserts: HashSet<String> = HashSet::new();
        let mut batch: Vec<Item> = Vec::new();
        let mut last_touch: HashMap<String, usize> = HashMap::new();
        let mut bytes = 0usize;
        let mut configuration: Option<Uuid> = None;
        let mut i = 0;
        let mut scanned = 0;
        while i < self.items.len() && batch.len() < limits.max_ops && scanned < limits.scan {
            scanned += 1;
            let Some(item) = self.items.get(i) else { break };
            let keys = item.keys();
            let upsert = matches!(item.op, Operation::Upsert(_));
            let skip = item.not_before.is_some_and(|t| t > now)
                || configuration.is_some_and(|c| c != item.configuration)
                || !allowed(item)
                || keys.iter().any(|k| {
                    in_flight.contains_key(*k)
                        || blocked.contains(*k)
                        || (!upsert && blocked_except_upserts.contains(*k))
                });
            if skip {
                let set = if needs_existing_objects(&item.op) {
                    &mut blocked_except_upserts
                } else {
                    &mut blocked
                };
                set.extend(keys.iter().map(|k| (*k).to_owned()));
                i += 1;
                continue;
            }
            if let Some(target) = coalesce_target(&batch, &last_touch, &item.op) {
                let Some(item) = self.items.remove(i) else {
                    break;
                };
                if let Some(prev) = batch.get_mut(target) {
                    bytes = bytes.saturating_sub(prev.size) + item.size;
                    prev.seqs.extend(item.seqs);
                    prev.op = item.op;
                    if item.reason.is_some() {
                        prev.reason = item.reason;
                    }
                    prev.size = item.size;
                    prev.attempts = prev.attempts.max(item.attempts);
                }
                continue;
            }
            if !batch.is_empty() && bytes + item.size > limits.max_bytes {
                break;
            }
            let Some(item) = self.items.remove(i) else {
                break;
            };
            for k in item.keys() {
                last_touch.insert(k.to_owned(), batch.len());
            }
            bytes += item.size;
            configuration = Some(item.configuration);
            batch.push(item);
        }
        let configuration = configuration?;
        Some((configuration, batch))
    }
}

/// The index of the batch item an upsert may be merged into: the last item touching the same
/// object, if it is an upsert of the same object and kind.
fn coalesce_target(
    batch: &[Item],
    last_touch: &HashMap<String, usize>,
    op: &Operation,
) -> Option<usize> {
    let Operation::Upsert(new) = op else {
        return None;
    };
    let idx = *last_touch.get(&new.source_anchor)?;
    match &batch.get(idx)?.op {
        Operation::Upsert(old)
            if old.kind == new.kind && old.source_anchor == new.source_anchor =>
        {
            Some(idx)
        }
        _ => None,
    }
}

/// Builds the wire batch and its body for items going to `configuration`.
pub fn build(configuration: Uuid, items: Vec<Item>) -> Result<Batch, serde_json::Error> {
    build_in(configuration, items, None)
}

/// [`build`] under a lease epoch, stamped in the body and hashed into the id.
pub fn build_in(
    configuration: Uuid,
    items: Vec<Item>,
    epoch: Option<u64>,
) -> Result<Batch, serde_json::Error> {
    let id = batch_id_in(configuration, &items, epoch);
    let wire = OperationBatch {
        epoch,
        batch_id: id,
        operations: items.iter().map(|i| i.op.clone()).collect(),
        reasons: items
            .iter()
            .enumerate()
            .filter_map(|(n, i)| {
                let r = i.reason.as_ref()?;
                // The tenant refuses longer reasons; a reason is a label, never worth a batch.
                Some((n, r.chars().take(cloudsync_api::MAX_REASON_CHARS).collect()))
            })
            .collect(),
    };
    let body = super::client::encode_batch(&wire)?;
    Ok(Batch {
        id,
        configuration,
        items,
        body,
        attempts: 0,
        epoch,
    })
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
