//! The runner: journal → projector → delete gate → outbox, with snapshots and the restart contract of
//! [`super::store`]. The outbox is reached through [`OpSink`] (implemented by `push::Outbox`), so that
//! one atomic outbox write carries a run's operations and projection's cursor.

use std::future::Future;

use super::config::Compiled;
use super::projector::{Output, ProjectedOp, Projector};
use super::provlog::{LogEntry, Step};
use super::state::State;
use super::store::{ProjectionStore, SnapshotMeta, StagedDelete, StoreError};
use super::threshold::gate_by;
use crate::event::Guid;
use crate::journal::{CURSOR_PROJECTION, Journal, JournalError};

/// Where the runner puts operations: the push stage's durable outbox.
pub trait OpSink {
    /// The projection cursor stored with the last enqueue (`None` before the first).
    fn producer_cursor(&self) -> Result<Option<u64>, SinkError>;

    /// Durably enqueues `ops` and, in the same atomic write, the cursor `cursor` (when given).
    fn enqueue(
        &self,
        ops: Vec<ProjectedOp>,
        cursor: Option<u64>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// An outbox failure, as the sink reports it.
#[derive(Debug, thiserror::Error)]
#[error("outbox: {message}")]
pub struct SinkError {
    /// What failed.
    pub message: String,
    /// Whether retrying can succeed.
    pub retriable: bool,
}

/// Runner failures.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Projection's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The outbox failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The journal no longer holds the events after the snapshot (pruned without projection's cursor).
    #[error(
        "the journal starts at {first} but projection needs events from {needed}; rebuild with a resync"
    )]
    JournalGap {
        /// The first sequence projection needs.
        needed: u64,
        /// The journal's first retained sequence.
        first: u64,
    },
    /// On-demand provisioning: no object has that DN.
    #[error("no synced object has the DN `{0}`")]
    UnknownDn(String),
}

impl RunnerError {
    /// Whether the run can be retried as it is.
    pub fn is_retriable(&self) -> bool {
        match self {
            // A full disk (the journal's reserve) passes; a poisoned or corrupt journal does not.
            RunnerError::Journal(e) => e.is_retriable(),
            RunnerError::Store(e) => e.is_retriable(),
            RunnerError::Sink(e) => e.retriable,
            RunnerError::JournalGap { .. } | RunnerError::UnknownDn(_) => false,
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Events projected.
    pub events: u64,
    /// Operations enqueued.
    pub enqueued: usize,
    /// Deletes staged by the threshold.
    pub staged: usize,
    /// Domains whose deletes reached the threshold ("Delete threshold exceeded").
    pub exceeded: Vec<String>,
    /// The journal sequence projection has reached.
    pub cursor: u64,
    /// The call stopped at [`Runner::max_chunk_ops`] before `max_events`: more may be waiting even
    /// though fewer events than asked were projected.
    pub more: bool,
}

/// Drives projection.
pub struct Runner<S: OpSink> {
    journal: Journal,
    store: ProjectionStore,
    sink: S,
    projector: Projector,
    /// Write a snapshot after this many projected events (and at the end of a run that passed it).
    pub snapshot_every: u64,
    /// Stop a [`Runner::run_once`] call once its events produced this many operations: a chunk is
    /// held in memory and written to the outbox at once, and a group's full image makes one
    /// operation per member (a chunk of group events at 1,000,000 objects held ~2 GB).
    pub max_chunk_ops: usize,
    since_snapshot: u64,
    /// Domains to re-read because the configuration differs from the snapshot's, with why.
    reread: Vec<(String, String)>,
}

/// Brings a snapshot's state to the configuration `cfg`: the values move to `cfg`'s attribute ids
/// (they were stored under the table `meta` names), and the domains whose settings fingerprint
/// differs — or every domain, when `cfg` keeps attributes the snapshot did not — are returned
/// to be re-read, with why.
fn adopt(state: &mut State, meta: &SnapshotMeta, cfg: &Compiled) -> Vec<(String, String)> {
    let widened = cfg
        .table
        .names()
        .iter()
        .any(|n| !meta.table.iter().any(|m| m == n));
    if meta.table != cfg.table.names() {
        tracing::info!(
            before = meta.table.len(),
            now = cfg.table.len(),
            "The configuration keeps another attribute set than projection's snapshot; values remapped."
        );
        state.remap_attributes(&meta.table, &cfg.table);
    }
    state
        .domains
        .iter()
        .filter_map(|d| {
            let key = d.to_ascii_lowercase();
            let changed = meta.settings.get(&key).map(String::as_str) != Some(cfg.fingerprint(d));
            match (changed, widened) {
                (true, _) => Some((
                    key,
                    "settings changed while the agent was stopped".to_string(),
                )),
                (false, true) => Some((key, "attributes to read were added".to_string())),
                (false, false) => None,
            }
        })
        .collect()
}

impl<S: OpSink> Runner<S> {
    /// Restores the state (snapshot, then a silent replay up to the outbox's cursor) and returns a
    /// runner ready for [`Runner::run_once`].
    pub fn open(
        cfg: Compiled,
        journal: Journal,
        store: ProjectionStore,
        sink: S,
    ) -> Result<Runner<S>, RunnerError> {
        let (mut state, meta) = store.load_snapshot()?.unwrap_or_default();
        let (reread, pending) = match meta.filter(|m| !m.table.is_empty()) {
            Some(meta) => (adopt(&mut state, &meta, &cfg), meta.pending),
            None => (Vec::new(), Default::default()),
        };
        let from = state.last_seq + 1;
        if let Some(first) = journal.first_seq()?
            && first > from
        {
            return Err(RunnerError::JournalGap {
                needed: from,
                first,
            });
        }
        let mut projector = Projector::new(cfg, state);
        projector.add_config_reasons(pending);
        projector.add_config_reasons(reread.iter().cloned());
        let enqueued = sink.producer_cursor()?.unwrap_or(0);
        if enqueued >= from {
            projector.log_enabled = false;
            let mut discard = Output::default();
            for rec in journal.read(from) {
                let rec = rec?;
                if rec.seq > enqueued {
                    break;
                }
                projector.apply(rec.seq, &rec.event, &mut discard);
                discard.ops.clear();
            }
            projector.log_enabled = true;
            tracing::info!(from, to = enqueued, "Projection state restored by replay.");
        }
        Ok(Runner {
            journal,
            store,
            sink,
            projector,
            snapshot_every: 50_000,
            max_chunk_ops: 20_000,
            since_snapshot: 0,
            reread,
        })
    }

    /// The domains whose settings differ from the ones the snapshot was projected under (a
    /// configuration changed while the agent was stopped), with why; the caller has them re-read
    /// so every object is evaluated under the settings in force. Taken once.
    pub fn take_rereads(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.reread)
    }

    /// Replaces the configuration while running ([`Projector::reconfigure`]): `reasons` per domain
    /// name the change for the provisioning log; the caller has those domains re-read.
    pub fn reconfigure(&mut self, cfg: Compiled, reasons: Vec<(String, String)>) {
        self.projector.reconfigure(cfg, reasons);
    }

    /// The configuration in force.
    pub fn config(&self) -> &Compiled {
        self.projector.config()
    }

    fn meta(&self) -> SnapshotMeta {
        let cfg = self.projector.config();
        SnapshotMeta {
            table: cfg.table.names().to_vec(),
            settings: self
                .projector
                .state()
                .domains
                .iter()
                .map(|d| (d.to_ascii_lowercase(), cfg.fingerprint(d).to_string()))
                .collect(),
            pending: self.projector.config_reasons().clone(),
        }
    }

    /// The projected state.
    pub fn state(&self) -> &State {
        self.projector.state()
    }

    /// The projector (for a takeover image, [`crate::projection::image`]).
    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    /// The sink projection writes to.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The store (provisioning log, staged deletes).
    pub fn store(&self) -> &ProjectionStore {
        &self.store
    }

    /// Journal events not yet projected (for progress).
    pub fn backlog(&self) -> u64 {
        self.journal
            .last_seq()
            .unwrap_or(0)
            .saturating_sub(self.projector.state().last_seq)
    }

    /// Projects up to `max_events` journal events after the cursor — fewer once they produced
    /// [`Runner::max_chunk_ops`] operations (`RunReport::more`) — gates deletes, stages what the
    /// threshold holds back, enqueues the rest with the new cursor, records the provisioning log.
    #[tracing::instrument(skip_all, err)]
    pub async fn run_once(&mut self, max_events: usize) -> Result<RunReport, RunnerError> {
        let from = self.projector.state().last_seq + 1;
        let mut out = Output::default();
        let mut events = 0u64;
        let mut more = false;
        for rec in self.journal.read(from).take(max_events) {
            let rec = rec?;
            self.projector.apply(rec.seq, &rec.event, &mut out);
            events += 1;
            if out.ops.len() >= self.max_chunk_ops {
                more = true;
                break;
            }
        }
        let cursor = self.projector.state().last_seq;
        let mut report = RunReport {
            events,
            cursor,
            more,
            ..RunReport::default()
        };
        if events == 0 {
            return Ok(report);
        }
        let cfg = self.projector.config();
        let gated = gate_by(|d| cfg.threshold_of(d), out.ops);
        if !gated.staged.is_empty() {
            let staged: Vec<StagedDelete> = gated
                .staged
                .iter()
                .map(|p| StagedDelete {
                    domain: p.domain.to_string(),
                    origin_seq: p.origin_seq,
                    operation: p.op.clone(),
                })
                .collect();
            self.store.stage(&staged)?;
            for (domain, count) in &gated.exceeded {
                tracing::warn!(domain = %domain, deletes = count, threshold = self.projector.config().threshold_of(domain), "Delete threshold exceeded; deletes are staged until allowed.");
            }
            let staged_log: Vec<LogEntry> = gated
                .staged
                .iter()
                .filter_map(|p| {
                    let guid = out
                        .log
                        .iter()
                        .rev()
                        .find(|e| {
                            e.seq == p.origin_seq && e.step == Step::Action && e.outcome == "Delete"
                        })?
                        .guid;
                    Some(LogEntry {
                        guid,
                        seq: p.origin_seq,
                        step: Step::Action,
                        outcome: "StagedDelete".into(),
                        detail: "delete threshold exceeded".into(),
                    })
                })
                .collect();
            out.log.extend(staged_log);
        }
        report.staged = gated.staged.len();
        report.exceeded = gated.exceeded.keys().cloned().collect();
        report.enqueued = gated.send.len();
        self.sink.enqueue(gated.send, Some(cursor)).await?;
        if let Err(e) = self.store.provlog().append(&out.log) {
            tracing::warn!(error = %e, "Provisioning log entries were not recorded.");
        }
        self.since_snapshot += events;
        if self.since_snapshot >= self.snapshot_every {
            self.snapshot()?;
        }
        Ok(report)
    }

    /// Writes a snapshot and moves the journal cursor to it (so the journal may prune below it).
    pub fn snapshot(&mut self) -> Result<(), RunnerError> {
        self.store
            .save_snapshot(self.projector.state(), &self.meta())?;
        self.journal
            .set_cursor(CURSOR_PROJECTION, self.projector.state().last_seq)?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// Releases staged deletes (of one domain, or all): enqueues them, then forgets them.
    pub async fn allow_deletes(&mut self, domain: Option<&str>) -> Result<usize, RunnerError> {
        let staged = self.store.take_staged(domain)?;
        let ops: Vec<ProjectedOp> = staged
            .iter()
            .map(|s| ProjectedOp {
                domain: s.domain.as_str().into(),
                origin_seq: s.origin_seq,
                op: s.operation.clone(),
                reason: Some(std::sync::Arc::from(
                    "DeleteReleased: a delete the delete threshold held back, released by an administrator",
                )),
            })
            .collect();
        let n = ops.len();
        self.sink.enqueue(ops, None).await?;
        self.store.forget_staged(&staged)?;
        tracing::info!(released = n, "Staged deletes released.");
        Ok(n)
    }

    /// On-demand provisioning: runs the object at `dn` through every step at once, ignoring the scoping
    /// filter as the product does, enqueues the result, and returns the steps. The projected state is not
    /// changed (it stays a function of the journal).
    pub async fn provision(
        &mut self,
        dn: &str,
    ) -> Result<(Vec<LogEntry>, Vec<ProjectedOp>), RunnerError> {
        let state = self.projector.state();
        let guid: Guid = (0..state.domains.len())
            .find_map(|d| state.dn_lookup(d as u16, dn))
            .and_then(|id| state.obj(id))
            .map(|o| o.guid)
            .ok_or_else(|| RunnerError::UnknownDn(dn.to_string()))?;
        let (log, ops) = self.projector.provision_preview(guid);
        self.sink.enqueue(ops.clone(), None).await?;
        Ok((log, ops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_below_its_disk_reserve_is_retried_a_poisoned_one_is_not() {
        let full = RunnerError::Journal(JournalError::DiskFull {
            dir: "/var/lib/cloudsync/journal".into(),
            available: 0,
            reserve: crate::journal::DEFAULT_MIN_FREE_BYTES,
        });
        assert!(full.is_retriable(), "{full}");
        assert!(!RunnerError::Journal(JournalError::Poisoned).is_retriable());
    }
}
