//! The takeover image: when this agent is granted a configuration's lease under a new epoch that
//! another agent held before, it re-sends its whole view of the configuration's domain, then
//! `imageComplete`, so the tenant converges to this agent's projection — i.e. to AD — whatever the
//! previous holder left (the lease and fencing contract, step 9, in `ARCHITECTURE.md`).
//!
//! Enters: the leases the heartbeat task learns ([`Leases`]), the feeds' pass counters
//! ([`ResyncRequests::passes`]), projection's state (read only) and the outbox's record of the last
//! epoch taken over ([`crate::push::Outbox::lease_epoch`]). Leaves: one outbox write per takeover —
//! the image ([`crate::projection::image`]) plus `imageComplete`, and the epoch recorded — and log
//! lines.
//!
//! Steps, for each configuration held under epoch E:
//! 1. E is the outbox's recorded epoch: nothing to do (a restart under the same lease).
//! 2. E = 1 with nothing recorded (the configuration's first lease ever), or the recorded epoch is
//!    E − 1 (this agent held the previous epoch): no other agent wrote in between, E is recorded
//!    without an image.
//! 3. Otherwise the domain's feed is asked for a pass now, and the image waits until a pass that
//!    started after this moment has completed and projection has caught up with the journal: the
//!    image then holds every AD change made before the takeover (the feed's lag closed), and the
//!    sweep cannot delete an object only because it was not read yet. A full read in progress
//!    (initial or requested) also waits ([`crate::projection::image::NotReady`]).
//! 4. The image and `imageComplete` (with the anchors of objects it keeps without re-sending: held
//!    back by a mapping error, or staged by the delete threshold) are enqueued with E recorded, in
//!    one write. A crash before it repeats the takeover; after it, the outbox delivers it.
//!
//! A standby's operations are not sent ([`crate::push`], contract step 10): the image replaces them.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use cloudsync_api::ops::{MAX_IMAGE_KEEP, Operation};

use crate::control::lease::{LeaseState, Leases};
use crate::control::restarts::ResyncRequests;
use crate::projection::image::NotReady;
use crate::projection::runner::Runner;
use crate::push::OutboxError;

use super::outbox_sink::OutboxSink;

/// Whether holding `epoch` needs an image, given the epoch last recorded (steps 1 and 2: epochs
/// are granted one at a time, so if this agent recorded the one before, nobody held it in between).
fn needs_image(recorded: Option<u64>, epoch: u64) -> bool {
    match recorded {
        Some(r) => r != epoch && r.saturating_add(1) != epoch,
        None => epoch > 1,
    }
}

/// A takeover waiting for its read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    epoch: u64,
    /// Per domain: the number of the pass that must complete first.
    passes: BTreeMap<String, u64>,
    /// The last reason logged, so each is logged once.
    logged: Option<String>,
    /// When this agent saw the grant.
    since: std::time::Instant,
}

/// The takeovers of one agent process.
pub struct Takeovers {
    leases: Arc<Leases>,
    resyncs: Arc<ResyncRequests>,
    /// Configuration id → its domains.
    domains: BTreeMap<Uuid, Vec<String>>,
    waiting: BTreeMap<Uuid, Waiting>,
}

/// What [`Takeovers::step`] did for one configuration (for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The epoch was recorded without an image (step 2).
    Recorded {
        /// The configuration.
        configuration: Uuid,
        /// Its epoch.
        epoch: u64,
    },
    /// The image was enqueued.
    Enqueued {
        /// The configuration.
        configuration: Uuid,
        /// Its epoch.
        epoch: u64,
        /// Operations enqueued (upserts, links, hashes, `imageComplete`).
        operations: usize,
    },
}

impl Takeovers {
    /// `domains`: configuration id → domain DNS name, as the agent registered them.
    pub fn new(
        leases: Arc<Leases>,
        resyncs: Arc<ResyncRequests>,
        domains: &BTreeMap<Uuid, String>,
    ) -> Takeovers {
        let mut by_config: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
        for (c, d) in domains {
            by_config
                .entry(*c)
                .or_default()
                .push(d.to_ascii_lowercase());
        }
        Takeovers {
            leases,
            resyncs,
            domains: by_config,
            waiting: BTreeMap::new(),
        }
    }

    /// Fires when a lease changes (the projection task also calls [`Self::step`] every tick).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.leases.subscribe()
    }

    /// Carries out what is due (the module doc's steps). Call after projecting.
    pub async fn step(&mut self, runner: &Runner<OutboxSink>) -> Result<Vec<Step>, OutboxError> {
        let held: BTreeMap<Uuid, u64> = self
            .leases
            .snapshot()
            .into_iter()
            .filter_map(|(c, s)| match s {
                LeaseState::Held { epoch } => Some((c, epoch)),
                LeaseState::Standby { .. } => None,
            })
            .collect();
        self.waiting.retain(|c, w| held.get(c) == Some(&w.epoch));
        let mut done = Vec::new();
        for (configuration, epoch) in held {
            let sink = runner.sink();
            let recorded = sink.outbox().lease_epoch(configuration)?;
            if recorded == Some(epoch) {
                continue;
            }
            if !needs_image(recorded, epoch) {
                sink.enqueue_takeover(configuration, epoch, Vec::new(), None)
                    .await?;
                tracing::info!(configuration = %configuration, epoch, "Lease epoch recorded; no other agent held the configuration since this one, so no image is needed.");
                done.push(Step::Recorded {
                    configuration,
                    epoch,
                });
                continue;
            }
            let domains = self
                .domains
                .get(&configuration)
                .cloned()
                .unwrap_or_default();
            let waiting = self.waiting.entry(configuration).or_insert_with(|| {
                let passes = domains
                    .iter()
                    .map(|d| {
                        let (started, _) = self.resyncs.passes(d);
                        self.resyncs.read_now(d);
                        (d.clone(), started + 1)
                    })
                    .collect();
                tracing::info!(configuration = %configuration, epoch, ?recorded, domains = ?domains, "Lease taken over from another agent: this agent's image of the configuration is re-sent after a fresh read of its domain.");
                Waiting {
                    epoch,
                    passes,
                    logged: None,
                    since: std::time::Instant::now(),
                }
            });
            let unread = waiting
                .passes
                .iter()
                .find(|(d, n)| self.resyncs.passes(d).1 < **n);
            let why = if let Some((d, _)) = unread {
                Some(format!(
                    "waiting for a read of {d} that started after the takeover"
                ))
            } else if runner.backlog() > 0 {
                Some("waiting for projection to catch up with the journal".to_string())
            } else {
                None
            };
            let images = match why {
                Some(why) => Err(why),
                None => domains
                    .iter()
                    .map(|d| runner.projector().image(d))
                    .collect::<Result<Vec<_>, NotReady>>()
                    .map_err(|e| e.to_string()),
            };
            let images = match images {
                Ok(images) => images,
                Err(why) => {
                    if waiting.logged.as_deref() != Some(why.as_str()) {
                        tracing::info!(configuration = %configuration, epoch, reason = %why, "Takeover image not made yet.");
                        waiting.logged = Some(why);
                    }
                    continue;
                }
            };
            let version = images.iter().map(|i| i.version).max().unwrap_or(0);
            let mut keep: Vec<String> = images.iter().flat_map(|i| i.keep.clone()).collect();
            // Deletes the delete threshold staged: the admin decides about them, not the sweep. Without
            // that list the sweep could delete them, so an unreadable store means: next tick.
            match runner.store().staged() {
                Ok(staged) => keep.extend(
                    staged
                        .into_iter()
                        .filter(|s| domains.iter().any(|d| d.eq_ignore_ascii_case(&s.domain)))
                        .map(|s| s.operation.source_anchor().to_string()),
                ),
                Err(e) => {
                    tracing::warn!(configuration = %configuration, error = %e, "Takeover image not made yet: the staged deletes could not be read; retrying on the next tick.");
                    continue;
                }
            }
            let complete = if keep.len() <= MAX_IMAGE_KEEP {
                Some(Operation::ImageComplete { version, keep })
            } else {
                tracing::warn!(configuration = %configuration, kept = keep.len(), max = MAX_IMAGE_KEEP, "Too many objects held back to list: the image is sent without imageComplete, so objects an earlier holder left in the cloud are not removed.");
                None
            };
            let ops: Vec<_> = images.into_iter().flat_map(|i| i.ops).collect();
            let (upserts, others) = (
                ops.iter()
                    .filter(|p| matches!(p.op, Operation::Upsert(_)))
                    .count(),
                ops.len(),
            );
            let waited_ms = waiting.since.elapsed().as_millis() as u64;
            let operations = sink
                .enqueue_takeover(configuration, epoch, ops, complete)
                .await?;
            // `waited_ms`: from the grant to the image, i.e. how far behind AD this standby was
            // (a feed pass and projection's catching up).
            tracing::info!(configuration = %configuration, epoch, objects = upserts, operations = others, waited_ms, "Takeover image enqueued: every object, membership and password hash this agent holds for the configuration, then imageComplete.");
            self.waiting.remove(&configuration);
            done.push(Step::Enqueued {
                configuration,
                epoch,
                operations,
            });
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::needs_image;

    #[test]
    fn an_image_only_when_another_agent_may_have_held_the_configuration() {
        assert!(!needs_image(None, 1), "the first lease ever");
        assert!(needs_image(None, 2), "a standby that never held it");
        assert!(!needs_image(Some(3), 3), "a restart under the same lease");
        assert!(!needs_image(Some(3), 4), "this agent held the epoch before");
        assert!(needs_image(Some(3), 5), "epoch 4 was another agent's");
        assert!(
            needs_image(Some(7), 5),
            "a tenant whose epochs went back: re-send"
        );
    }
}
