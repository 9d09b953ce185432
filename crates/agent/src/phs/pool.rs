//! Hashing on all cores, off the async runtime.
//!
//! Enters: NT hashes (in [`NtHash`], zeroized on drop) from an async caller. Leaves: [`OrgIdHash`]
//! values with fresh salts. Jobs go through one bounded queue (a full queue makes the caller wait:
//! back-pressure reaches the reader) to plain OS threads, one per core; a worker that finds two jobs
//! waiting runs them through the two-lane kernel.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use cloudsync_api::orgid::{ITERATIONS, SALT_LEN};
use tokio::sync::{mpsc, oneshot};

use super::PhsError;
use super::kernel::{self, HmacKey};
use super::orgid::{OrgIdHash, hmac_key};
use crate::nt_hash::NtHash;

struct Job {
    nt: NtHash,
    reply: oneshot::Sender<OrgIdHash>,
}

type SharedReceiver = Arc<Mutex<mpsc::Receiver<Job>>>;

/// A fixed set of hashing threads fed by a bounded queue.
pub struct HashPool {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl HashPool {
    /// Starts `threads` workers (at least one) behind a queue of `queue` jobs (at least one).
    pub fn new(threads: usize, queue: usize) -> Result<HashPool, PhsError> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let rx: SharedReceiver = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for index in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name(format!("phs-hash-{index}"))
                .spawn(move || worker(&rx))
                .map_err(PhsError::Spawn)?;
            workers.push(handle);
        }
        Ok(HashPool {
            tx: Some(tx),
            workers,
        })
    }

    /// One worker per available core, with a queue of 4 jobs per worker.
    pub fn with_all_cores() -> Result<HashPool, PhsError> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        HashPool::new(threads, threads * 4)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Hashes one NT hash with a fresh salt, waiting for queue space.
    pub async fn hash(&self, nt: NtHash) -> Result<OrgIdHash, PhsError> {
        self.enqueue(nt)
            .await?
            .await
            .map_err(|_| PhsError::PoolClosed)
    }

    /// Hashes many NT hashes; results come back in input order.
    pub async fn hash_all(&self, nts: Vec<NtHash>) -> Result<Vec<OrgIdHash>, PhsError> {
        let mut replies = Vec::with_capacity(nts.len());
        for nt in nts {
            replies.push(self.enqueue(nt).await?);
        }
        let mut out = Vec::with_capacity(replies.len());
        for reply in replies {
            out.push(reply.await.map_err(|_| PhsError::PoolClosed)?);
        }
        Ok(out)
    }

    /// The blocking form of [`HashPool::hash_all`], for callers outside a runtime (CLI, benches).
    pub fn hash_all_blocking(&self, nts: Vec<NtHash>) -> Result<Vec<OrgIdHash>, PhsError> {
        let tx = self.tx.as_ref().ok_or(PhsError::PoolClosed)?;
        let mut replies = Vec::with_capacity(nts.len());
        for nt in nts {
            let (reply, rx) = oneshot::channel();
            tx.blocking_send(Job { nt, reply })
                .map_err(|_| PhsError::PoolClosed)?;
            replies.push(rx);
        }
        replies
            .into_iter()
            .map(|rx| rx.blocking_recv().map_err(|_| PhsError::PoolClosed))
            .collect()
    }

    async fn enqueue(&self, nt: NtHash) -> Result<oneshot::Receiver<OrgIdHash>, PhsError> {
        let tx = self.tx.as_ref().ok_or(PhsError::PoolClosed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Job { nt, reply })
            .await
            .map_err(|_| PhsError::PoolClosed)?;
        Ok(rx)
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        // Closing the queue ends every worker once it has drained the jobs already queued.
        self.tx = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn worker(rx: &SharedReceiver) {
    loop {
        let (first, second) = {
            let mut guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(first) = guard.blocking_recv() else {
                return;
            };
            (first, guard.try_recv().ok())
        };
        match second {
            Some(second) => {
                let [a, b] = hash_lanes([&first.nt, &second.nt]);
                let _ = first.reply.send(a);
                let _ = second.reply.send(b);
            }
            None => {
                let [a] = hash_lanes([&first.nt]);
                let _ = first.reply.send(a);
            }
        }
    }
}

/// Hashes `N` NT hashes in lock step, each with its own fresh salt.
pub fn hash_lanes<const N: usize>(nts: [&NtHash; N]) -> [OrgIdHash; N] {
    let salts: [[u8; SALT_LEN]; N] = std::array::from_fn(|_| rand::random());
    let keys: [HmacKey; N] = std::array::from_fn(|i| hmac_key(nts[i]));
    let first: [kernel::Words; N] = std::array::from_fn(|i| {
        let mut message = [0u8; SALT_LEN + 4];
        message[..SALT_LEN].copy_from_slice(&salts[i]);
        message[SALT_LEN + 3] = 1;
        keys[i].mac(&message)
    });
    let sums = kernel::derive_lanes(std::array::from_fn(|i| &keys[i]), first, ITERATIONS);
    std::array::from_fn(|i| {
        OrgIdHash::from_parts(salts[i].to_vec(), ITERATIONS, kernel::to_bytes(&sums[i]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_produce_verifiable_hashes_with_distinct_salts() {
        let a = NtHash::from_password("Init!Pass00001");
        let b = NtHash::from_password("Init!Pass00002");
        let [ha, hb] = hash_lanes([&a, &b]);
        assert!(ha.matches(&a) && !ha.matches(&b));
        assert!(hb.matches(&b) && !hb.matches(&a));
        assert_ne!(ha.salt(), hb.salt());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_hashes_in_order_with_a_small_queue() {
        let pool = HashPool::new(2, 1).unwrap();
        let passwords: Vec<String> = (0..9).map(|i| format!("pw{i}")).collect();
        let nts = passwords.iter().map(|p| NtHash::from_password(p)).collect();
        let out = pool.hash_all(nts).await.unwrap();
        assert_eq!(out.len(), 9);
        for (h, p) in out.iter().zip(&passwords) {
            assert!(h.matches(&NtHash::from_password(p)), "{p}");
        }
        let one = pool.hash(NtHash::from_password("solo")).await.unwrap();
        assert!(one.matches(&NtHash::from_password("solo")));
    }

    #[test]
    fn blocking_api_and_drop_join_the_workers() {
        let pool = HashPool::new(3, 2).unwrap();
        assert_eq!(pool.threads(), 3);
        let out = pool
            .hash_all_blocking(vec![NtHash::from_password("a"), NtHash::from_password("b")])
            .unwrap();
        assert!(out[1].matches(&NtHash::from_password("b")));
        drop(pool);
    }
}
