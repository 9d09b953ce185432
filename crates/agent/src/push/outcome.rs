//! Handling the tenant's answer to a batch: per-operation acknowledgement, retries and object
//! quarantine; whole-call failures with backoff; configuration quarantine and its probe.

use std::collections::HashSet;

use tokio::time::Instant;
use uuid::Uuid;

use cloudsync_api::config::Health;
use cloudsync_api::ops::{BatchResponse, OpErrorCode, OpStatus, Operation};

use super::PushError;
use super::batcher::{Batch, needs_existing_objects};
use super::client::CallError;
use super::outbox::QuarantinedObject;
use super::pusher::{Pusher, Sent};
use super::quarantine::QuarantineReason;
use super::retry::{deadline_after, server_delay};

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Pusher {
    #[tracing::instrument(skip_all, fields(batch_id = %sent.0.id, ops = sent.0.len()))]
    pub(super) async fn handle(&mut self, sent: Sent) -> Result<(), PushError> {
        let (batch, result) = sent;
        let result = result.and_then(|r| {
            if r.results.len() == batch.len()
                && r.results.iter().enumerate().all(|(i, x)| x.index == i)
            {
                Ok(r)
            } else {
                Err(CallError::ResultsMismatch {
                    results: r.results.len(),
                    operations: batch.len(),
                })
            }
        });
        match result {
            Ok(response) => {
                self.call_succeeded();
                self.release(&batch);
                self.apply_results(batch, response);
            }
            Err(e) if e.is_lease_lost() => {
                // Another agent holds the configuration now: nothing of the batch was applied,
                // and nothing more goes until a heartbeat grants the lease again.
                tracing::warn!(configuration = %batch.configuration, batch_id = %batch.id, epoch = ?batch.epoch, error = %e, "Lease lost: the tenant refused the batch; pushing stops for the configuration.");
                self.status.send_modify(|s| s.lease_lost += 1);
                if let Some(l) = &self.leases {
                    l.lost(batch.configuration);
                }
                self.release(&batch);
                for item in batch.items {
                    self.pending.requeue(item);
                }
            }
            Err(e) if e.is_too_large() && batch.len() > 1 => {
                let half = (batch.len() / 2).max(1);
                tracing::warn!(batch_id = %batch.id, ops = batch.len(), next_max = half, "Tenant refused the batch as too large; splitting.");
                self.max_ops_override = Some(half);
                self.release(&batch);
                for item in batch.items {
                    self.pending.requeue(item);
                }
            }
            Err(e) => self.call_failed(batch, &e),
        }
        Ok(())
    }

    fn call_succeeded(&mut self) {
        self.streak.succeeded();
        let was = self.status.borrow().quarantine.clone();
        if let Some(QuarantineReason::CallsFailing { .. }) = was {
            tracing::info!("Calls succeed again; the configuration leaves quarantine.");
            self.status.send_modify(|s| s.quarantine = None);
        }
    }

    fn call_failed(&mut self, batch: Batch, error: &CallError) {
        let now = Instant::now();
        let throttled = error.is_throttled();
        let attempt = if throttled {
            self.status.send_modify(|s| s.throttled += 1);
            1
        } else {
            self.status.send_modify(|s| s.calls_failed += 1);
            self.streak.failed(now)
        };
        let retry_after = error
            .retry_after()
            .map(|ra| ra.min(self.cfg.max_server_delay));
        let mut delay = self.cfg.call_backoff.delay_random(attempt, retry_after);
        let policy = self.cfg.quarantine;
        if !throttled && self.streak.warrants_quarantine(&policy, now) {
            delay = delay.max(policy.probe_interval);
            if self.status.borrow().quarantine.is_none() {
                let reason = QuarantineReason::CallsFailing {
                    consecutive: self.streak.consecutive(),
                    last_error: error.to_string(),
                };
                tracing::warn!(reason = %reason, probe_every = ?policy.probe_interval, "Configuration quarantined: most calls keep failing.");
                self.status.send_modify(|s| s.quarantine = Some(reason));
            }
        }
        if error.is_retriable() {
            tracing::warn!(batch_id = %batch.id, attempt = batch.attempts, error = %error, retry_in = ?delay, "Batch call failed; retrying with the same batch id.");
        } else {
            tracing::warn!(batch_id = %batch.id, attempt = batch.attempts, error = %error, retry_in = ?delay, "Batch refused as a whole; nothing is dropped, retrying later.");
        }
        let until = deadline_after(now, delay);
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        let position = batch.items.first().map_or(0, |i| i.position());
        let at = self
            .retry_batches
            .partition_point(|b| b.items.first().map_or(0, |i| i.position()) < position);
        self.retry_batches.insert(at, batch);
    }

    fn apply_results(&mut self, batch: Batch, response: BatchResponse) {
        let now = Instant::now();
        // Objects with a retried operation in this batch; for a retried membership operation, only
        // later non-upserts of its objects must follow it (see `Pending::assemble`).
        let mut failed_keys: HashSet<String> = HashSet::new();
        let mut failed_membership_keys: HashSet<String> = HashSet::new();
        let mut tenant_quarantine: Option<String> = None;
        let (mut acked, mut retried, mut refused) = (0u64, 0u64, 0u64);
        let mut throttled_items = 0u64;
        let give_up_after = self.cfg.max_reference_attempts;
        for (mut item, result) in batch.items.into_iter().zip(response.results) {
            let keys: Vec<String> = item.keys().iter().map(|k| (*k).to_owned()).collect();
            let upsert = matches!(item.op, Operation::Upsert(_));
            let follows_failure = keys.iter().any(|k| {
                failed_keys.contains(k) || (!upsert && failed_membership_keys.contains(k))
            });
            let mut error = result.error;
            if let Some(e) = error.as_mut()
                && e.code == OpErrorCode::ReferenceNotFound
                && item.attempts + 1 >= give_up_after
            {
                // An object that never arrives must not hold its queue forever: escrow expiry.
                e.retriable = false;
                e.message = format!(
                    "Gave up after {} attempts: {}",
                    item.attempts + 1,
                    e.message
                );
            }
            match (result.status, error) {
                (OpStatus::Error, Some(err)) if err.retriable => {
                    if err.code == OpErrorCode::Quarantined {
                        tenant_quarantine.get_or_insert(err.message.clone());
                    } else {
                        tracing::debug!(anchor = item.op.source_anchor(), code = ?err.code, "Operation failed; will retry.");
                    }
                    item.attempts += 1;
                    // A per-item `retryAfterSeconds` (Throttled) wins over the backoff; the new
                    // attempt count also gives the resend a new batch id (see `batcher::batch_id`).
                    // The server's number is capped (`max_server_delay`) and every deadline is
                    // checked: a stored answer replayed after a restart carries the same number.
                    let retry_after = err
                        .retry_after_seconds
                        .map(|s| server_delay(s, self.cfg.max_server_delay));
                    let delay = self.cfg.op_backoff.delay_random(item.attempts, retry_after);
                    if let Some(ra) = retry_after {
                        // The write budget is the tenant's, not the item's: hold every send.
                        let until = deadline_after(now, ra);
                        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
                        throttled_items += 1;
                    }
                    item.not_before = Some(deadline_after(now, delay));
                    if needs_existing_objects(&item.op) {
                        failed_membership_keys.extend(keys);
                    } else {
                        failed_keys.extend(keys);
                    }
                    retried += 1;
                    self.pending.requeue(item);
                }
                _ if follows_failure => {
                    // A later operation of an object whose earlier operation is retried: resend it
                    // after that retry, so the object's order holds (resending is idempotent).
                    item.not_before = Some(now);
                    self.pending.requeue(item);
                }
                (OpStatus::Error, error) => {
                    let (code, message) = error.map_or_else(
                        || ("Unknown".to_owned(), "error without details".to_owned()),
                        |e| (format!("{:?}", e.code), e.message),
                    );
                    tracing::warn!(anchor = item.op.source_anchor(), action = item.op.action(), code = %code, message = %message, "Tenant refused the operation permanently; object quarantined.");
                    let anchor = item.op.source_anchor().to_owned();
                    self.quarantined_anchors.insert(anchor.clone());
                    self.to_log.push(QuarantinedObject {
                        time: now_rfc3339(),
                        configuration_id: batch.configuration,
                        source_anchor: anchor,
                        action: item.op.action().to_owned(),
                        seq: item.position(),
                        batch_id: batch.id,
                        code,
                        message,
                    });
                    refused += 1;
                    self.acks.done(&item.seqs);
                }
                (status, _) => {
                    if status == OpStatus::Success
                        && matches!(item.op, Operation::Upsert(_) | Operation::Delete { .. })
                        && self.quarantined_anchors.remove(item.op.source_anchor())
                        && let Err(e) = self.outbox.release_object(item.op.source_anchor())
                    {
                        tracing::warn!(error = %e, "Could not clear an object's quarantine record.");
                    }
                    acked += 1;
                    self.acks.done(&item.seqs);
                }
            }
        }
        self.status.send_modify(|s| {
            s.batches_answered += 1;
            s.ops_acknowledged += acked;
            s.ops_retried += retried;
            s.objects_quarantined += refused;
            s.throttled += u64::from(throttled_items > 0);
        });
        if throttled_items > 0 {
            tracing::info!(batch_id = %batch.id, throttled = throttled_items, "Tenant throttled part of the batch; holding sends for its Retry-After.");
        }
        tracing::debug!(batch_id = %batch.id, replayed = response.replayed, acked, retried, refused, "Batch answered.");
        if let Some(message) = tenant_quarantine
            && self.tenant_probe_at.is_none()
        {
            let reason = QuarantineReason::Tenant { message };
            tracing::warn!(configuration = %batch.configuration, reason = %reason, probe_every = ?self.cfg.quarantine.probe_interval, "Configuration quarantined by the tenant; probing until it is cleared.");
            self.status.send_modify(|s| s.quarantine = Some(reason));
            self.tenant_probe_at = Some((
                batch.configuration,
                deadline_after(now, self.cfg.quarantine.probe_interval),
            ));
        }
    }

    /// Reads the configuration; leaves quarantine when the tenant reports it healthy again.
    pub(super) async fn probe_tenant(&mut self, configuration: Uuid) {
        match self.client.get_configuration(configuration).await {
            Ok(config) if !matches!(config.health, Health::Quarantine { .. }) => {
                tracing::info!(configuration = %configuration, "The tenant cleared the quarantine; resuming.");
                self.tenant_probe_at = None;
                self.status.send_modify(|s| s.quarantine = None);
                // Quarantined operations were requeued with a backoff; let them go now.
                self.pending.make_due(Instant::now());
            }
            Ok(_) => {
                self.tenant_probe_at = Some((
                    configuration,
                    deadline_after(Instant::now(), self.cfg.quarantine.probe_interval),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "Quarantine probe failed.");
                self.tenant_probe_at = Some((
                    configuration,
                    deadline_after(Instant::now(), self.cfg.quarantine.probe_interval),
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
