//! The cloud half of a run: the push stage next to the tenant's in-process apply of the same
//! operations, the tenant read back over Graph, and the delta round from journal append to the
//! tenant's acknowledgement.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::delta::delta_round;
use super::error::BenchError;
use super::graph::GraphReader;
use super::measure;
use super::report::{DeltaFigures, EndToEnd, Limit, TenantCheck, ThrottleFigures};
use super::run::{Run, per, remove, stage};
use super::stages::{self, InProcessApply, OutboxBatches, Timed};
use crate::push::PushStatus;
use crate::runtime::cloud_stages::CloudStages;

/// Pushes until the outbox is drained; an outbox left with operations is an error (the figures
/// would be of a partial sync).
async fn drain(cs: &CloudStages) -> Result<PushStatus, BenchError> {
    let (summary, status) = cs.push_until_drained(CancellationToken::new()).await?;
    let last = cs.outbox.last_seq()?;
    if summary.checkpoint < last {
        return Err(BenchError::NotDrained {
            checkpoint: summary.checkpoint,
            last,
        });
    }
    Ok(status)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Run<'_> {
    /// The tenant's in-process apply of the outbox's operations (the limit, measured first: the
    /// push prunes what the tenant acknowledged), then a heartbeat and the push until drained.
    pub(super) async fn push_stage(
        &mut self,
        cs: &mut CloudStages,
        apply: &dyn InProcessApply,
    ) -> Result<(), BenchError> {
        let backlog = cs
            .outbox
            .last_seq()?
            .saturating_sub(cs.outbox.checkpoint()?);
        let p = self.progress("push limit", "operations applied in process", backlog);
        let scratch = self.layout.limits("tenant-apply");
        let mut batches = OutboxBatches::new(&cs.outbox)?;
        let started = Instant::now();
        let applied = {
            let mut shown = batches
                .by_ref()
                .inspect(|b| p.update(b.operations.len() as u64));
            apply.apply(&scratch, &mut shown)
        };
        p.finish();
        let applied = applied.map_err(BenchError::ApplyLimit)?;
        if let Some(e) = batches.failed.take() {
            return Err(e.into());
        }
        remove(&scratch)?;
        if let Some(outbox) = self.report.storage.outbox.as_mut() {
            outbox.payload_bytes_per_record = Some(per(batches.payload_bytes, batches.operations));
        }
        let limit = Limit {
            what: "the tenant's in-process apply of the same operations, flushed per batch",
            items_per_second: batches.operations as f64 / applied.as_secs_f64().max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
        };

        let start = measure::reset_peak_rss();
        let started = Instant::now();
        if let Err(e) = cs.heartbeat().await {
            tracing::warn!(error = %e, "Heartbeat failed.");
        }
        let status = drain(cs).await?;
        let wall = started.elapsed();
        let rss = measure::peak_rss_bytes();
        let synced = self.directory.counts.synced();
        let t = Timed { own: wall, wall };
        if let Some(budget) = self.opts.write_budget {
            let seconds = wall.as_secs_f64();
            let operations = status.ops_acknowledged;
            let ceiling = budget.ceiling(seconds);
            self.report.throttle = Some(ThrottleFigures {
                capacity: budget.capacity,
                refill_per_second: budget.refill_per_second,
                seconds,
                operations,
                ceiling_operations: ceiling,
                ratio_to_ceiling: operations as f64 / ceiling.max(1.0),
                ratio_to_refill: operations as f64 / (budget.refill_per_second * seconds).max(1e-9),
                throttled_answers: status.throttled,
            });
        }
        let figures = stage(
            "push",
            "operations",
            (status.ops_acknowledged, synced),
            t,
            Some(limit),
            (start, rss),
        );
        self.record(figures);
        self.report.end_to_end = Some(EndToEnd {
            seconds: secs(self.e2e),
            objects_per_second: synced as f64 / secs(self.e2e).max(1e-9),
            peak_rss_bytes: self.peak,
            tenant_peak_rss_bytes: 0,
        });
        Ok(())
    }

    /// Counts what the tenant holds over its Graph API and compares it with the directory.
    pub(super) async fn tenant_stage(&mut self, reader: &GraphReader) -> Result<(), BenchError> {
        let c = self.directory.counts;
        let started = Instant::now();
        let p = self.progress("tenant check", "objects counted", c.synced());
        let mut counted = [0u64; 3];
        for (k, collection) in ["/v1.0/users", "/v1.0/groups", "/v1.0/contacts"]
            .into_iter()
            .enumerate()
        {
            let before: u64 = counted.iter().sum();
            counted[k] = reader.count(collection, &|n| p.update(before + n)).await?;
        }
        p.finish_at(counted.iter().sum());
        let [users, groups, contacts] = counted;
        let name = super::directory::Directory::group_cn(0);
        let largest = match reader.group_id(&name).await? {
            Some(id) => {
                reader
                    .count(&format!("/v1.0/groups/{id}/members"), &|_| {})
                    .await?
            }
            None => 0,
        };
        self.report.tenant = Some(TenantCheck {
            users,
            groups,
            contacts,
            largest_group_members: largest,
            matches_directory: (users, groups, contacts, largest)
                == (c.users, c.groups, c.contacts, c.largest_group_members),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// The delta round: the changes appended (feed, then the new password hashes), projected and
    /// pushed until the tenant acknowledged them; the first changed user's title read back.
    pub(super) async fn delta_round(
        &mut self,
        cs: &mut CloudStages,
        reader: Option<&GraphReader>,
    ) -> Result<(), BenchError> {
        let round = delta_round(&self.directory, self.opts.churn_percent);
        let events = round.events.len() as u64;
        let p = self.progress("delta", "events appended", events);
        let started = Instant::now();
        let (_, appended) =
            stages::append_pages(&self.journal, round.events.into_iter(), false, &p).await?;
        let (hashes, hashed) = if self.opts.stages.phs && !round.password_users.is_empty() {
            let p = self.progress(
                "delta",
                "hashes appended",
                round.password_users.len() as u64,
            );
            let mut users = round.password_users.iter().copied();
            stages::hash_passwords(
                &self.journal,
                &self.pool,
                &self.directory,
                &mut users,
                true,
                &p,
            )
            .await?
        } else {
            (0, Timed::default())
        };
        let in_journal = Instant::now();
        // As the daemon projects a delta: no snapshot at the end (`agent sync-once` writes one).
        let projected = cs.project_pending().await?;
        let projection = in_journal.elapsed();
        drain(cs).await?;
        let done = Instant::now();
        let verified = match (reader, &round.probe) {
            (Some(reader), Some((upn, title))) => {
                let user = reader
                    .get(&format!("/v1.0/users/{upn}?$select=jobTitle"))
                    .await?;
                Some(user["jobTitle"].as_str() == Some(title.as_str()))
            }
            _ => None,
        };
        self.report.delta = Some(DeltaFigures {
            percent: self.opts.churn_percent,
            objects: round.objects,
            events,
            password_hashes: hashes,
            operations: projected.enqueued as u64,
            append_seconds: secs(appended.wall),
            phs_seconds: secs(hashed.wall),
            projection_seconds: secs(projection),
            push_seconds: secs(done - in_journal - projection),
            seconds: secs(done - started),
            seconds_after_journal: secs(done - in_journal),
            verified,
        });
        Ok(())
    }
}
