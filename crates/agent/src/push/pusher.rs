//! The push loop: reads the outbox, forms batches, keeps a bounded number in flight, and advances
//! the checkpoint in order. Answers are handled in [`super::outcome`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cloudsync_api::ops::BatchResponse;

use super::ack::Acks;
use super::batcher::{self, Batch, Item, Limits, Pending};
use super::client::CallError;
use super::outbox::{Outbox, QuarantinedObject};
use super::pacer::Pacer;
use super::quarantine::{FailureStreak, PushStatus};
use super::{PushConfig, PushError, PushSummary};
use crate::control::lease::{LeaseState, Leases};
use crate::control::tenant_client::TenantClient;

/// What a send task hands back.
pub(super) type Sent = (Batch, Result<BatchResponse, CallError>);

/// The loop's state.
pub(super) struct Pusher {
    pub(super) outbox: Arc<Outbox>,
    pub(super) client: Arc<TenantClient>,
    pub(super) cfg: PushConfig,
    pub(super) status: watch::Sender<PushStatus>,
    pub(super) pending: Pending,
    pub(super) acks: Acks,
    pub(super) persisted: u64,
    pub(super) in_flight_keys: HashMap<String, usize>,
    pub(super) tasks: JoinSet<Sent>,
    /// Batches whose whole call failed, waiting to be resent under the same id (keys stay reserved).
    pub(super) retry_batches: Vec<Batch>,
    /// No call before this instant (backoff after a failed call, or the slow probe).
    pub(super) hold_until: Option<Instant>,
    pub(super) streak: FailureStreak,
    pub(super) pacer: Option<Pacer>,
    /// Objects refused permanently, to be written to the provisioning log with the next checkpoint.
    pub(super) to_log: Vec<QuarantinedObject>,
    /// Anchors currently in the local quarantined-object set.
    pub(super) quarantined_anchors: std::collections::HashSet<String>,
    /// A temporary batch size after a 413.
    pub(super) max_ops_override: Option<usize>,
    /// When the tenant quarantined a configuration: the next configuration probe.
    pub(super) tenant_probe_at: Option<(uuid::Uuid, Instant)>,
    /// The leases this agent holds (`None`: no leases, e.g. the synthetic driver; every
    /// configuration is pushed without an epoch).
    pub(super) leases: Option<Arc<Leases>>,
    /// Fires when a lease changes.
    pub(super) lease_changes: Option<watch::Receiver<u64>>,
    /// The epoch each held configuration had at the last look (takeovers are logged once).
    pub(super) held: HashMap<uuid::Uuid, u64>,
    /// Whether a standby's operations are acknowledged without sending ([`Self::discard_standby`]).
    pub(super) standby_discards: bool,
}

impl Pusher {
    pub(super) fn new(
        outbox: Arc<Outbox>,
        client: Arc<TenantClient>,
        mut cfg: PushConfig,
        status: watch::Sender<PushStatus>,
    ) -> Result<Pusher, PushError> {
        // Values that would stall the loop are raised to the smallest that work.
        cfg.max_batch_ops = cfg
            .max_batch_ops
            .clamp(1, cloudsync_api::MAX_BATCH_OPERATIONS);
        cfg.max_in_flight = cfg.max_in_flight.max(1);
        cfg.max_pending = cfg.max_pending.max(cfg.max_batch_ops);
        let checkpoint = outbox.checkpoint()?;
        let quarantined_anchors = outbox
            .quarantined_objects()?
            .into_iter()
            .map(|q| q.source_anchor)
            .collect();
        let now = Instant::now();
        let pacer = cfg
            .write_rate_limit
            .map(|rate| Pacer::new(rate, cfg.max_batch_ops, now));
        status.send_modify(|s| s.checkpoint = checkpoint);
        Ok(Pusher {
            outbox,
            client,
            status,
            pending: Pending::default(),
            acks: Acks::new(checkpoint),
            persisted: checkpoint,
            in_flight_keys: HashMap::new(),
            tasks: JoinSet::new(),
            retry_batches: Vec::new(),
            hold_until: None,
            streak: FailureStreak::default(),
            pacer,
            to_log: Vec::new(),
            quarantined_anchors,
            max_ops_override: None,
            tenant_probe_at: None,
            leases: None,
            lease_changes: None,
            held: HashMap::new(),
            standby_discards: false,
            cfg,
        })
    }

    /// Pushes only the configurations whose lease `leases` says this agent holds, stamping its
    /// epoch ([`crate::control::lease`]).
    pub(super) fn with_leases(
        mut self,
        leases: Option<Arc<Leases>>,
        standby_discards: bool,
    ) -> Pusher {
        self.standby_discards = standby_discards;
        self.lease_changes = leases.as_ref().map(|l| l.subscribe());
        self.leases = leases;
        self
    }

    /// The epoch to stamp on `configuration`'s batches: `Some(None)` without leases, `None` while
    /// another agent holds the lease (nothing may go).
    pub(super) fn epoch_for(&self, configuration: uuid::Uuid) -> Option<Option<u64>> {
        match &self.leases {
            None => Some(None),
            Some(l) => l.epoch(configuration).map(Some),
        }
    }

    /// After a lease change: logs every configuration newly held (a takeover) with the backlog
    /// this agent is about to push under the new epoch — how far behind the tenant it was.
    fn lease_changed(&mut self) -> Result<(), PushError> {
        let Some(leases) = &self.leases else {
            return Ok(());
        };
        let now: HashMap<uuid::Uuid, u64> = leases
            .snapshot()
            .into_iter()
            .filter_map(|(c, s)| match s {
                LeaseState::Held { epoch } => Some((c, epoch)),
                LeaseState::Standby { .. } => None,
            })
            .collect();
        for (configuration, epoch) in &now {
            if self.held.get(configuration) != Some(epoch) {
                let backlog = self
                    .outbox
                    .last_seq()?
                    .saturating_sub(self.acks.checkpoint());
                tracing::info!(
                    configuration = %configuration,
                    epoch,
                    backlog,
                    checkpoint = self.acks.checkpoint(),
                    "Lease taken: pushing under the new epoch; projection re-sends this agent's image of the configuration."
                );
                self.status
                    .send_modify(|s| s.lease_backlog_at_takeover = Some(backlog));
            }
        }
        self.held = now;
        Ok(())
    }

    fn limits(&self) -> Limits {
        let max_ops = self
            .max_ops_override
            .unwrap_or(self.cfg.max_batch_ops)
            .clamp(1, cloudsync_api::MAX_BATCH_OPERATIONS);
        Limits {
            max_ops,
            max_bytes: self.cfg.max_batch_bytes,
            scan: max_ops.saturating_mul(4),
        }
    }

    fn in_flight_ops(&self) -> usize {
        self.in_flight_keys.values().sum()
    }

    /// Reads more entries while the bounded window has room.
    fn refill(&mut self) -> Result<(), PushError> {
        let room = self
            .cfg
            .max_pending
            .saturating_sub(self.pending.len() + self.in_flight_ops());
        if room == 0 {
            return Ok(());
        }
        let now = Instant::now();
        for (seq, entry, size) in self.outbox.read_sized(self.acks.read_upto(), room)? {
            self.acks.read(seq);
            let mut item = Item::with_size(seq, entry.configuration_id, entry.operation, size, now);
            item.reason = entry.reason;
            self.pending.push_new(item);
        }
        Ok(())
    }

    /// A standby's operations: those of configurations another agent holds are acknowledged here
    /// without being sent, so the outbox stays bounded while this agent stands by. Nothing is lost:
    /// on a takeover, projection re-sends this agent's whole view of the configuration (the image,
    /// `runtime::takeover`), which an operation held back here would only have preceded.
    /// Returns how many operations went.
    fn discard_standby(&mut self) -> u64 {
        let Some(leases) = self.leases.as_ref().filter(|_| self.standby_discards) else {
            return 0;
        };
        let standby: std::collections::HashSet<uuid::Uuid> = leases
            .snapshot()
            .into_iter()
            .filter_map(|(c, s)| match s {
                LeaseState::Standby {
                    holder: Some(_), ..
                } => Some(c),
                _ => None,
            })
            .collect();
        if standby.is_empty() {
            return 0;
        }
        let taken = self
            .pending
            .take_where(|i| standby.contains(&i.configuration));
        if taken.is_empty() {
            return 0;
        }
        let n = taken.iter().map(|i| i.seqs.len() as u64).sum::<u64>();
        for item in &taken {
            self.acks.done(&item.seqs);
        }
        tracing::debug!(
            operations = n,
            "Standing by: operations of configurations another agent holds acknowledged without sending."
        );
        self.status.send_modify(|s| s.standby_discarded += n);
        n
    }

    fn reserve(&mut self, batch: &Batch) {
        for item in &batch.items {
            for k in item.keys() {
                *self.in_flight_keys.entry(k.to_owned()).or_insert(0) += 1;
            }
        }
    }

    pub(super) fn release(&mut self, batch: &Batch) {
        for item in &batch.items {
            for k in item.keys() {
                if let Some(n) = self.in_flight_keys.get_mut(k) {
                    *n -= 1;
                    if *n == 0 {
                        self.in_flight_keys.remove(k);
                    }
                }
            }
        }
    }

    fn spawn(&mut self, mut batch: Batch) {
        batch.attempts += 1;
        if let Some(p) = self.pacer.as_mut() {
            p.spend(batch.len(), Instant::now());
        }
        let in_flight = self.tasks.len() + 1;
        self.status.send_modify(|s| {
            s.batch_attempts += 1;
            s.in_flight = in_flight;
        });
        tracing::debug!(batch_id = %batch.id, ops = batch.len(), attempt = batch.attempts, "Sending batch.");
        let client = self.client.clone();
        self.tasks.spawn(async move {
            let result = client.post_batch(batch.configuration, &batch.body).await;
            (batch, result)
        });
    }

    /// Starts as many sends as the limits allow; returns when to look again if something waits.
    fn dispatch(&mut self, now: Instant) -> Result<Option<Instant>, PushError> {
        if let Some(t) = self.hold_until {
            if t > now {
                return Ok(Some(t));
            }
            self.hold_until = None;
        }
        if let Some((_, at)) = self.tenant_probe_at {
            return Ok(Some(at));
        }
        let mut wake: Option<Instant> = None;
        while self.tasks.len() < self.cfg.max_in_flight {
            // Whole-batch retries first, under their original ids.
            // Lowest positions first, so the checkpoint can move as early as possible.
            if !self.retry_batches.is_empty() {
                let batch = self.retry_batches.remove(0);
                if self.epoch_for(batch.configuration) != Some(batch.epoch) {
                    // Built under a lease this agent no longer holds (or another epoch): its
                    // operations go back to pending, to be sent under the current epoch.
                    self.release(&batch);
                    for item in batch.items {
                        self.pending.requeue(item);
                    }
                    continue;
                }
                if let Some(w) = self.pace(batch.len(), now) {
                    self.retry_batches.insert(0, batch);
                    return Ok(Some(w));
                }
                self.spawn(batch);
                // While calls are failing, probe with one batch at a time.
                if self.streak.consecutive() > 0 {
                    return Ok(None);
                }
                continue;
            }
            if self.streak.consecutive() > 0 && !self.tasks.is_empty() {
                break;
            }
            let limits = self.limits();
            let full = self.pending.len() >= limits.max_ops;
            if !full && let Some(oldest) = self.pending.oldest_read() {
                let linger_end = oldest + self.cfg.linger;
                if linger_end > now {
                    wake = Some(linger_end);
                    break;
                }
            }
            let want = self.pending.len().min(limits.max_ops);
            if want == 0 {
                break;
            }
            if let Some(w) = self.pace(want, now) {
                return Ok(Some(w));
            }
            let leases = self.leases.clone();
            // An `imageComplete` goes only when every operation before it is acknowledged: the
            // tenant's sweep must see the whole image applied.
            let first_unacked = self.acks.checkpoint().saturating_add(1);
            let allowed = |item: &Item| {
                leases
                    .as_ref()
                    .is_none_or(|l| l.epoch(item.configuration).is_some())
                    && batcher::may_send(item, first_unacked)
            };
            let Some((configuration, items)) =
                self.pending
                    .assemble_where(limits, &self.in_flight_keys, now, &allowed)
            else {
                break;
            };
            let epoch = self.epoch_for(configuration).flatten();
            let batch =
                batcher::build_in(configuration, items, epoch).map_err(PushError::Encode)?;
            self.reserve(&batch);
            self.spawn(batch);
        }
        // The earliest item still waiting: an item already due may sit behind it (same object),
        // so the earliest due time overall could lie in the past and wake nothing.
        let due = self.pending.next_due_after(now);
        Ok(match (wake, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// `Some(wake)` when the pacer says `ops` may not go yet.
    fn pace(&mut self, ops: usize, now: Instant) -> Option<Instant> {
        let wait = self.pacer.as_mut()?.wait_for(ops, now);
        (wait > Duration::ZERO).then(|| super::retry::deadline_after(now, wait))
    }

    /// Persists the checkpoint (and provisioning-log entries) when the acknowledgements allow.
    pub(super) async fn checkpoint(&mut self) -> Result<(), PushError> {
        let target = self.acks.checkpoint();
        if target > self.persisted || !self.to_log.is_empty() {
            let target = target.max(self.persisted);
            match self.outbox.acknowledge(target, &self.to_log).await {
                Ok(()) => {}
                // The checkpoint waits in memory for the next batch (or the stop); a crash until
                // then resends the acknowledged operations, which the tenant skips.
                Err(e @ super::OutboxError::DiskFull { .. }) => {
                    tracing::warn!(error = %e, checkpoint = self.persisted, "Push checkpoint not written: the disk is below the outbox's reserve; delivery goes on.");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            self.to_log.clear();
            if target > self.persisted {
                tracing::debug!(checkpoint = target, "Push checkpoint advanced.");
            }
            self.persisted = target;
        }
        let (outstanding, in_flight) = (self.acks.outstanding(), self.tasks.len());
        let persisted = self.persisted;
        self.status.send_modify(|s| {
            s.checkpoint = persisted;
            s.outstanding = outstanding;
            s.in_flight = in_flight;
        });
        Ok(())
    }

    fn drained(&self) -> Result<bool, PushError> {
        Ok(self.acks.outstanding() == 0
            && self.tasks.is_empty()
            && self.outbox.last_seq()? <= self.acks.read_upto())
    }

    /// The loop. Returns when cancelled (after in-flight batches finish or the grace period ends),
    /// or, with `stop_when_drained`, when everything enqueued has been acknowledged.
    pub(super) async fn run(mut self, cancel: CancellationToken) -> Result<PushSummary, PushError> {
        let mut deadline: Option<Instant> = None;
        self.lease_changed()?;
        loop {
            let now = Instant::now();
            let wake = if deadline.is_none() {
                self.refill()?;
                // The window refills after a standby's operations are set aside, and the
                // checkpoint moves past them (pruning them from the outbox).
                while self.discard_standby() > 0 {
                    self.checkpoint().await?;
                    self.refill()?;
                }
                if self.cfg.stop_when_drained && self.drained()? {
                    break;
                }
                if let Some((config, at)) = self.tenant_probe_at
                    && at <= now
                {
                    self.probe_tenant(config).await;
                }
                self.dispatch(now)?
            } else {
                None
            };
            if deadline.is_some() && self.tasks.is_empty() {
                break;
            }
            let sleep_until = match (wake, deadline) {
                (Some(w), Some(d)) => w.min(d),
                (w, d) => w.or(d).unwrap_or(now + Duration::from_secs(3600)),
            };
            tokio::select! {
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match joined {
                        Ok(sent) => self.handle(sent).await?,
                        Err(e) => tracing::error!(error = %e, "A batch send task failed; its operations are resent after a restart."),
                    }
                    self.checkpoint().await?;
                }
                () = tokio::time::sleep_until(sleep_until) => {
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        tracing::warn!(in_flight = self.tasks.len(), "Shutdown grace period over; abandoning batches in flight (they are resent after a restart).");
                        self.tasks.abort_all();
                        break;
                    }
                }
                () = self.outbox.wait_for_new(), if deadline.is_none() => {}
                () = crate::control::lease::changed(&mut self.lease_changes), if deadline.is_none() => self.lease_changed()?,
                () = cancel.cancelled(), if deadline.is_none() => {
                    tracing::info!(in_flight = self.tasks.len(), "Push stage stopping: no new batches; waiting for those in flight.");
                    deadline = Some(super::retry::deadline_after(Instant::now(), self.cfg.shutdown_grace));
                }
            }
        }
        self.checkpoint().await?;
        let status = self.status.borrow().clone();
        tracing::info!(checkpoint = self.persisted, "Push stage stopped.");
        Ok(PushSummary {
            checkpoint: self.persisted,
            status,
        })
    }
}
