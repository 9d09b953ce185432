//! Restarts handed over by the tenant in heartbeats, carried out by the agent's tasks:
//! `Watermark`/`Full` make the domain's feed re-read AD from scratch ([`ResyncRequests`]: the next
//! pass ignores the stored DirSync cookie or USN and starts with `ResyncStarted { reason: Requested }`),
//! `ForceDeletes`/`Full` release the staged deletes. A restart is acknowledged to the tenant only
//! when every part of it is done ([`RestartTracker`]); until then the tenant keeps handing it over,
//! so a restart interrupted by a crash is carried out again after the next start. A configuration
//! change from the tenant asks for re-reads here too, under the nil id (nothing to acknowledge:
//! `part_done` ignores an id it does not track).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use uuid::Uuid;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A restart to carry out, from the heartbeat task to the projection task: release the staged
/// deletes of `domain` (all domains when `None`), then count the part done for `id`.
#[derive(Debug, Clone)]
pub struct Release {
    /// The restart.
    pub id: Uuid,
    /// The domain whose staged deletes to release.
    pub domain: Option<String>,
}

/// Full re-reads requested per domain, shared between the heartbeat task and the domain feeds.
#[derive(Debug, Default)]
pub struct ResyncRequests {
    pending: Mutex<BTreeMap<String, Vec<Uuid>>>,
    done: Mutex<Vec<Uuid>>,
    wakers: Mutex<BTreeMap<String, Arc<Notify>>>,
    any_done: Notify,
    /// Per domain: passes started and passes completed, counted by the feed (a takeover waits
    /// for a pass that started after it, see `runtime::takeover`).
    passes: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl ResyncRequests {
    /// No request yet.
    pub fn new() -> Arc<ResyncRequests> {
        Arc::new(ResyncRequests::default())
    }

    /// Asks for a full re-read of `domain` on behalf of restart `id`, and wakes its feed.
    pub fn request(&self, domain: &str, id: Uuid) {
        let key = domain.to_ascii_lowercase();
        lock(&self.pending).entry(key).or_default().push(id);
        self.waker(domain).notify_one();
    }

    /// The notifier the feed of `domain` waits on between passes.
    pub fn waker(&self, domain: &str) -> Arc<Notify> {
        lock(&self.wakers)
            .entry(domain.to_ascii_lowercase())
            .or_default()
            .clone()
    }

    /// Takes the requests for `domain` (the feed runs its next pass as a full read).
    pub fn take(&self, domain: &str) -> Vec<Uuid> {
        lock(&self.pending)
            .remove(&domain.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The full read for `ids` completed (wakes [`ResyncRequests::wait_done`]).
    pub fn finished(&self, ids: Vec<Uuid>) {
        if !ids.is_empty() {
            lock(&self.done).extend(ids);
            self.any_done.notify_one();
        }
    }

    /// Returns when a requested full read has completed (so the heartbeat acknowledges it soon).
    pub async fn wait_done(&self) {
        self.any_done.notified().await;
    }

    /// The full read for `ids` failed: they are asked for again (the next pass retries them).
    pub fn failed(&self, domain: &str, ids: Vec<Uuid>) {
        if !ids.is_empty() {
            lock(&self.pending)
                .entry(domain.to_ascii_lowercase())
                .or_default()
                .extend(ids);
        }
    }

    /// The feed of `domain` starts a pass; returns the pass's number (1, 2, …).
    pub fn pass_started(&self, domain: &str) -> u64 {
        let mut passes = lock(&self.passes);
        let p = passes.entry(domain.to_ascii_lowercase()).or_default();
        p.0 += 1;
        p.0
    }

    /// The feed of `domain` completed pass `number` (its events are in the journal). A failed pass
    /// is not reported.
    pub fn pass_completed(&self, domain: &str, number: u64) {
        let mut passes = lock(&self.passes);
        let p = passes.entry(domain.to_ascii_lowercase()).or_default();
        p.1 = p.1.max(number);
    }

    /// (the number of the last pass started, of the last pass completed) of `domain`'s feed.
    pub fn passes(&self, domain: &str) -> (u64, u64) {
        lock(&self.passes)
            .get(&domain.to_ascii_lowercase())
            .copied()
            .unwrap_or_default()
    }

    /// Asks `domain`'s feed for a pass now (a delta read, from its stored checkpoint).
    pub fn read_now(&self, domain: &str) {
        self.waker(domain).notify_one();
    }

    /// Restarts whose full read completed since the last call.
    pub fn drain_done(&self) -> Vec<Uuid> {
        std::mem::take(&mut *lock(&self.done))
    }
}

/// Counts the parts of each restart still to do and collects the ones to acknowledge.
#[derive(Debug, Default)]
pub struct RestartTracker {
    parts: Mutex<BTreeMap<Uuid, u8>>,
    ready: Mutex<Vec<Uuid>>,
}

impl RestartTracker {
    /// Starts tracking restart `id` with `parts` parts (0: acknowledge at once).
    pub fn begin(&self, id: Uuid, parts: u8) {
        if parts == 0 {
            lock(&self.ready).push(id);
        } else {
            lock(&self.parts).insert(id, parts);
        }
    }

    /// One part of restart `id` is done.
    pub fn part_done(&self, id: Uuid) {
        let mut parts = lock(&self.parts);
        if let Some(left) = parts.get_mut(&id) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                parts.remove(&id);
                lock(&self.ready).push(id);
            }
        }
    }

    /// Restarts to acknowledge in the next heartbeat.
    pub fn to_acknowledge(&self) -> Vec<Uuid> {
        lock(&self.ready).clone()
    }

    /// The tenant received these acknowledgements.
    pub fn acknowledged(&self, sent: &[Uuid]) {
        lock(&self.ready).retain(|id| !sent.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_acknowledged_when_all_its_parts_are_done() {
        let t = RestartTracker::default();
        let (full, watermark, quarantine) =
            (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        t.begin(full, 2);
        t.begin(watermark, 1);
        t.begin(quarantine, 0);
        assert_eq!(t.to_acknowledge(), vec![quarantine]);
        t.part_done(full);
        t.part_done(watermark);
        assert_eq!(t.to_acknowledge(), vec![quarantine, watermark]);
        t.acknowledged(&[quarantine, watermark]);
        t.part_done(full);
        assert_eq!(t.to_acknowledge(), vec![full]);
    }

    #[test]
    fn a_failed_resync_is_asked_for_again() {
        let r = ResyncRequests::default();
        let id = Uuid::from_u128(7);
        r.request("Corp.Example.Test", id);
        let ids = r.take("corp.example.test");
        assert_eq!(ids, vec![id]);
        assert!(r.take("corp.example.test").is_empty());
        r.failed("corp.example.test", ids);
        let ids = r.take("corp.example.test");
        r.finished(ids);
        assert_eq!(r.drain_done(), vec![id]);
        assert!(r.drain_done().is_empty());
    }
}
