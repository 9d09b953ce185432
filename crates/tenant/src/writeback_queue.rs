//! The in-memory queue of password writeback requests.
//!
//! Enters: requests made by the reset and unlock routes ([`super::writeback_submit`]), each already
//! sealed to the key of every agent that may carry it out; agents' long polls and answers
//! ([`super::writeback_agent`]). Leaves: requests handed to those agents, answers to the waiting
//! caller (a `watch` channel per request), and the state of each request for Graph's operation
//! polling.
//!
//! Memory only, never on disk: a restart loses pending requests (their callers get an error). The
//! queue holds at most [`MAX_ENTRIES`] requests, finished ones included (kept [`RETAIN`] for late
//! answers and operation polling); beyond that new requests are refused.
//!
//! Life of a request: pending → handed out to an eligible agent (in flight; handed out again after
//! [`IN_FLIGHT`] without an answer, to that agent only: it alone remembers having begun it and
//! answers "interrupted" rather than applying it twice) → answered (the first answer wins) or expired (the caller's
//! bounded wait ended, or its `expiresAt` passed). Expired requests are never handed out. Every time
//! is an argument (`tokio::time::Instant`, pausable in tests).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use uuid::Uuid;

use cloudsync_api::writeback::{
    IN_FLIGHT_SECONDS, MAX_REQUESTS_PER_POLL, WritebackAnswer, WritebackRequest,
};

/// The most requests (pending and finished) the queue holds.
pub const MAX_ENTRIES: usize = 10_000;
/// How long a finished request is kept for late answers and operation polling.
pub const RETAIN: Duration = Duration::from_secs(600);
/// A request handed out without an answer for this long is handed out again.
pub const IN_FLIGHT: Duration = Duration::from_secs(IN_FLIGHT_SECONDS);

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not answered yet; `handed_out` when an agent last received it.
    Pending {
        /// When it was last handed out, if ever.
        handed_out: Option<Instant>,
    },
    /// The agent's answer (the first one).
    Answered(WritebackAnswer),
    /// Nobody answered in time.
    Expired,
}

/// A request to queue: the request as agents see it (without a sealed password) and, per eligible
/// agent, the password sealed to that agent's key (`None` for an unlock).
#[derive(Debug)]
pub struct NewEntry {
    /// The request; `sealed_password` is filled per agent at hand-out.
    pub request: WritebackRequest,
    /// Agents that may carry it out, with the password sealed to each one's key.
    pub sealed: Vec<(Uuid, Option<String>)>,
    /// The user's cloud object id (Graph's operation URL names it).
    pub user_id: Uuid,
    /// When nobody may carry it out any more.
    pub expires: Instant,
    /// When it was made, RFC 3339 (Graph's `createdDateTime`).
    pub created_at: String,
}

#[derive(Debug)]
struct Entry {
    new: NewEntry,
    created: Instant,
    /// The last hand-out, answer or expiry, RFC 3339 (Graph's `lastActionDateTime`).
    last_action_at: String,
    outcome: Outcome,
    /// The agent it was handed to: the only one it goes out to again (another agent has no record
    /// of it and would write the password a second time).
    handed_to: Option<Uuid>,
    finished: Option<Instant>,
    done: watch::Sender<Option<WritebackAnswer>>,
}

impl Entry {
    /// Whether `agent` may be handed it now or later (eligible, and not handed to another agent).
    fn for_agent(&self, agent: Uuid) -> bool {
        self.eligible(agent) && self.handed_to.is_none_or(|to| to == agent)
    }

    fn eligible(&self, agent: Uuid) -> bool {
        self.new.sealed.iter().any(|(a, _)| *a == agent)
    }

    /// When this entry may next be handed out, if it is pending and not expired.
    fn available_at(&self, now: Instant) -> Option<Instant> {
        match self.outcome {
            Outcome::Pending { .. } if now >= self.new.expires => None,
            Outcome::Pending { handed_out: None } => Some(self.created),
            Outcome::Pending {
                handed_out: Some(at),
            } => Some(at + IN_FLIGHT),
            _ => None,
        }
    }
}

/// The state of a request as Graph's long-running operation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationView {
    /// The user the request is for.
    pub user_id: Uuid,
    /// `notStarted`, `running`, `succeeded` or `failed`.
    pub status: &'static str,
    /// The agent's answer (`None` while pending, or when nobody answered in time).
    pub answer: Option<WritebackAnswer>,
    /// Graph's `createdDateTime`.
    pub created_at: String,
    /// Graph's `lastActionDateTime`.
    pub last_action_at: String,
}

/// The queue is full.
#[derive(Debug, thiserror::Error)]
#[error("the writeback queue holds {MAX_ENTRIES} requests")]
pub struct QueueFull;

/// The request does not exist for this agent (unknown, pruned, or not its configuration's).
#[derive(Debug, thiserror::Error)]
#[error("no such writeback request for this agent")]
pub struct UnknownRequest;

/// The queue and the wake-up of long polls.
#[derive(Debug, Default)]
pub struct WritebackQueue {
    entries: Mutex<HashMap<Uuid, Entry>>,
    /// Woken on every new request, so long polls return at once.
    arrived: Notify,
}

impl WritebackQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request; returns the receiver its answer arrives on.
    pub fn enqueue(
        &self,
        new: NewEntry,
        now: Instant,
    ) -> Result<watch::Receiver<Option<WritebackAnswer>>, QueueFull> {
        let mut entries = self.lock();
        prune(&mut entries, now);
        if entries.len() >= MAX_ENTRIES {
            return Err(QueueFull);
        }
        let (done, rx) = watch::channel(None);
        entries.insert(
            new.request.id,
            Entry {
                last_action_at: new.created_at.clone(),
                new,
                created: now,
                outcome: Outcome::Pending { handed_out: None },
                handed_to: None,
                finished: None,
                done,
            },
        );
        drop(entries);
        self.arrived.notify_waiters();
        Ok(rx)
    }

    /// Hands `agent` the requests available to it now (oldest first, at most
    /// [`MAX_REQUESTS_PER_POLL`]) among those of the configurations it is `paired` with, marking them
    /// in flight; also when the next one becomes available.
    pub fn take(
        &self,
        agent: Uuid,
        paired: &[Uuid],
        now: Instant,
    ) -> (Vec<WritebackRequest>, Option<Instant>) {
        let mut entries = self.lock();
        prune(&mut entries, now);
        let mut ready: Vec<&mut Entry> = Vec::new();
        let mut next: Option<Instant> = None;
        let mine =
            |e: &&mut Entry| e.for_agent(agent) && paired.contains(&e.new.request.configuration_id);
        for entry in entries.values_mut().filter(mine) {
            match entry.available_at(now) {
                Some(at) if at <= now => ready.push(entry),
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        ready.sort_by_key(|e| e.created);
        ready.truncate(MAX_REQUESTS_PER_POLL);
        let out = ready
            .into_iter()
            .map(|entry| {
                entry.outcome = Outcome::Pending {
                    handed_out: Some(now),
                };
                entry.handed_to = Some(agent);
                entry.last_action_at = super::state::now_rfc3339();
                let mut request = entry.new.request.clone();
                request.sealed_password = entry
                    .new
                    .sealed
                    .iter()
                    .find(|(a, _)| *a == agent)
                    .and_then(|(_, s)| s.clone());
                request
            })
            .collect();
        (out, next)
    }

    /// The long poll: requests for `agent` as soon as there are any, else empty at `deadline`.
    pub async fn poll(
        &self,
        agent: Uuid,
        paired: &[Uuid],
        deadline: Instant,
    ) -> Vec<WritebackRequest> {
        loop {
            // Registered before looking, so a request queued in between still wakes this poll.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let now = Instant::now();
            let (found, next) = self.take(agent, paired, now);
            if !found.is_empty() || now >= deadline {
                return found;
            }
            let wake = next.map_or(deadline, |n| n.min(deadline));
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Records `agent`'s answer. `Ok(true)` when it is the first, `Ok(false)` when the request was
    /// already answered or expired (ignored, so a retried answer is harmless).
    pub fn answer(
        &self,
        agent: Uuid,
        id: Uuid,
        answer: WritebackAnswer,
        now: Instant,
    ) -> Result<bool, UnknownRequest> {
        let mut entries = self.lock();
        prune(&mut entries, now);
        let entry = entries
            .get_mut(&id)
            .filter(|e| e.eligible(agent))
            .ok_or(UnknownRequest)?;
        if !matches!(entry.outcome, Outcome::Pending { .. }) {
            return Ok(false);
        }
        entry.outcome = Outcome::Answered(answer.clone());
        entry.finished = Some(now);
        entry.last_action_at = super::state::now_rfc3339();
        let _ = entry.done.send(Some(answer));
        Ok(true)
    }

    /// Marks a still-unanswered request expired (its caller stopped waiting): it is never handed
    /// out again. Returns whether it was still pending.
    pub fn expire(&self, id: Uuid, now: Instant) -> bool {
        let mut entries = self.lock();
        match entries.get_mut(&id) {
            Some(entry) if matches!(entry.outcome, Outcome::Pending { .. }) => {
                entry.outcome = Outcome::Expired;
                entry.finished = Some(now);
                entry.last_action_at = super::state::now_rfc3339();
                true
            }
            _ => false,
        }
    }

    /// The request's state for Graph's operation polling.
    pub fn view(&self, id: Uuid, now: Instant) -> Option<OperationView> {
        let mut entries = self.lock();
        prune(&mut entries, now);
        let entry = entries.get(&id)?;
        let (status, answer) = match &entry.outcome {
            Outcome::Pending { handed_out: None } => ("notStarted", None),
            Outcome::Pending { .. } => ("running", None),
            Outcome::Answered(a) if a.code == cloudsync_api::writeback::SUCCESS => {
                ("succeeded", Some(a.clone()))
            }
            Outcome::Answered(a) => ("failed", Some(a.clone())),
            Outcome::Expired => ("failed", None),
        };
        Some(OperationView {
            user_id: entry.new.user_id,
            status,
            answer,
            created_at: entry.new.created_at.clone(),
            last_action_at: entry.last_action_at.clone(),
        })
    }

    /// How many requests the queue holds (pending and finished).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the queue holds no request.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Expires pending requests past their `expires` and drops finished ones older than [`RETAIN`].
fn prune(entries: &mut HashMap<Uuid, Entry>, now: Instant) {
    for entry in entries.values_mut() {
        if matches!(entry.outcome, Outcome::Pending { .. }) && now >= entry.new.expires {
            entry.outcome = Outcome::Expired;
            entry.finished = Some(entry.new.expires);
        }
    }
    entries.retain(|_, e| e.finished.is_none_or(|f| now < f + RETAIN));
}

#[cfg(test)]
#[path = "writeback_queue_tests.rs"]
mod tests;
