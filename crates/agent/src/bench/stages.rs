//! The stage drivers: each feeds one real component the synthetic directory the way its real
//! producer does, and times it. The journal gets the initial read through its [`EventSink`] in
//! DirSync pages with the cookie; password hashes come off the [`HashPool`] and are appended as
//! `source::phs::cycle` appends them (page by page as they are hashed, then the MS-DRSR cookie); the outbox's
//! operations are handed to the tenant's in-process apply in the pusher's batch size. Projection
//! and push run through `runtime::cloud_stages` itself (see [`super::run`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_api::ops::OperationBatch;

use super::directory::Directory;
use super::error::BenchError;
use super::limits::{self, RawInserts};
use super::spec::DOMAIN;
use crate::event::{Event, Guid, SourceKind};
use crate::journal::{Journal, codec};
use crate::phs::HashPool;
use crate::push::{Outbox, OutboxError};
use crate::runtime::Progress;
use crate::source::ldap::checkpoint::DirSyncCheckpoint;
use crate::source::{EventSink, SourceCheckpoint};

/// Entries per DirSync page, and accounts per MS-DRSR page (`[phs] page_objects`' default).
pub const PAGE: usize = 1_000;
/// Operations per batch: the pusher's `max_batch_ops` default and the API's maximum.
pub const BATCH: usize = 500;

/// A stage's own time and its wall time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timed {
    /// Time in the component measured.
    pub own: Duration,
    /// Wall time, producing the input included.
    pub wall: Duration,
}

/// A DirSync cookie of a realistic size (AD's are ~100–200 bytes), distinct per page.
fn cookie(page: u64) -> Vec<u8> {
    let mut c = vec![0x5a; 120];
    c[..8].copy_from_slice(&page.to_le_bytes());
    c
}

/// Appends `events` in pages of [`PAGE`] with a DirSync checkpoint each, the last one closing
/// the full read when `closes_full_read`. `own` counts only the appends.
pub async fn append_pages(
    journal: &Journal,
    events: impl Iterator<Item = Event>,
    closes_full_read: bool,
    progress: &Progress,
) -> Result<(u64, Timed), BenchError> {
    let started = Instant::now();
    let mut events = events.peekable();
    let (mut own, mut appended, mut pages) = (Duration::ZERO, 0u64, 0u64);
    while events.peek().is_some() {
        let page: Vec<Event> = events.by_ref().take(PAGE).collect();
        let n = page.len() as u64;
        pages += 1;
        let checkpoint = SourceCheckpoint {
            domain: DOMAIN.into(),
            source: SourceKind::LdapDirSync,
            data: DirSyncCheckpoint {
                cookie: cookie(pages),
                full_read_in_progress: closes_full_read && events.peek().is_some(),
            }
            .encode(),
        };
        let t = Instant::now();
        EventSink::append(journal, page, Some(checkpoint)).await?;
        own += t.elapsed();
        appended += n;
        progress.update(appended);
    }
    progress.finish_at(appended);
    Ok((
        appended,
        Timed {
            own,
            wall: started.elapsed(),
        },
    ))
}

/// The journal's limit: the initial read's events, encoded exactly as the journal stores them
/// (key and envelope), inserted into raw sled in the same pages with a flush each. Also returns
/// the largest envelope's size.
pub fn raw_sled_limit(
    dir: &Path,
    directory: &Directory,
    cache_bytes: u64,
    progress: &Progress,
) -> Result<(RawInserts, u64), BenchError> {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut events = directory.initial_read();
    let (mut seq, mut largest, mut failed) = (0u64, 0u64, None);
    let pages = std::iter::from_fn(|| {
        let mut page = Vec::with_capacity(PAGE);
        for event in events.by_ref().take(PAGE) {
            seq += 1;
            match codec::encode_event(seq, now_ms, &event) {
                Ok(entry) => {
                    largest = largest.max(entry.1.len() as u64);
                    page.push(entry);
                }
                Err(e) => {
                    failed = Some(e);
                    return None;
                }
            }
        }
        progress.update(seq);
        (!page.is_empty()).then_some(page)
    });
    let done = limits::raw_sled_inserts(dir, cache_bytes, pages)?;
    progress.finish_at(seq);
    match failed {
        Some(e) => Err(e.into()),
        None => Ok((done, largest)),
    }
}

/// Hashes the NT hash of each of `users` on `pool` and appends one `PasswordHashChanged` per user,
/// as one PHS cycle does: a hashing task per page of [`PAGE`] accounts (started as pages arrive),
/// each page appended as soon as it is hashed, then the MS-DRSR checkpoint.
pub async fn hash_passwords(
    journal: &Journal,
    pool: &Arc<HashPool>,
    directory: &Directory,
    users: &mut dyn Iterator<Item = u64>,
    delta: bool,
    progress: &Progress,
) -> Result<(u64, Timed), BenchError> {
    let started = Instant::now();
    let mut tasks = std::collections::VecDeque::new();
    let mut hashed = 0u64;
    loop {
        let page: Vec<u64> = users.take(PAGE).collect();
        let last = page.is_empty();
        if !last {
            let nts = page.iter().map(|u| directory.nt_hash(*u, delta)).collect();
            let pool = Arc::clone(pool);
            tasks.push_back((page, tokio::spawn(async move { pool.hash_all(nts).await })));
        }
        // Keep the pool busy with a few pages in flight (replication outruns hashing), append the
        // oldest as it completes.
        while tasks.len() > 2 * pool_width(pool) || (last && !tasks.is_empty()) {
            let Some((page, task)) = tasks.pop_front() else {
                break;
            };
            let hashes = task.await.map_err(|_| crate::phs::PhsError::PoolClosed)??;
            let events: Vec<Event> = page
                .iter()
                .zip(hashes)
                .map(|(u, h)| Event::PasswordHashChanged {
                    domain: DOMAIN.into(),
                    guid: user_guid(directory, *u),
                    org_id_hash: h.to_string(),
                })
                .collect();
            hashed += events.len() as u64;
            EventSink::append(journal, events, None).await?;
            progress.update(hashed);
        }
        if last {
            break;
        }
    }
    let checkpoint = SourceCheckpoint {
        domain: DOMAIN.into(),
        source: SourceKind::Drsr,
        data: cookie(u64::MAX - u64::from(delta)),
    };
    EventSink::append(journal, Vec::new(), Some(checkpoint)).await?;
    progress.finish_at(hashed);
    let wall = started.elapsed();
    Ok((hashed, Timed { own: wall, wall }))
}

/// Pages hashed at once by `pool` (its threads).
fn pool_width(pool: &HashPool) -> usize {
    pool.threads().max(1)
}

fn user_guid(directory: &Directory, u: u64) -> Guid {
    super::names::guid(directory.spec.seed, super::names::kind::USER, u)
}

/// Applies operation batches to a fresh store of the tenant, in process, flushing after each as
/// the server does before answering: the push stage's limit. Implemented by the binary (which
/// alone may use the tenant crate) over `cloudsync_tenant::bench`.
pub trait InProcessApply {
    /// Applies every batch under `dir`; returns the time spent applying and flushing only.
    fn apply(
        &self,
        dir: &Path,
        batches: &mut dyn Iterator<Item = OperationBatch>,
    ) -> Result<Duration, String>;
}

/// The outbox's pending operations as batches of [`BATCH`], read window by window.
pub struct OutboxBatches<'a> {
    outbox: &'a Outbox,
    after: u64,
    /// Operations handed out.
    pub operations: u64,
    /// Their envelope payload bytes.
    pub payload_bytes: u64,
    /// Set when reading stopped on an error.
    pub failed: Option<OutboxError>,
}

impl<'a> OutboxBatches<'a> {
    /// From the push checkpoint on.
    pub fn new(outbox: &'a Outbox) -> Result<OutboxBatches<'a>, OutboxError> {
        Ok(OutboxBatches {
            after: outbox.checkpoint()?,
            outbox,
            operations: 0,
            payload_bytes: 0,
            failed: None,
        })
    }
}

impl Iterator for OutboxBatches<'_> {
    type Item = OperationBatch;

    fn next(&mut self) -> Option<OperationBatch> {
        let window = match self.outbox.read_sized(self.after, BATCH) {
            Ok(w) => w,
            Err(e) => {
                self.failed = Some(e);
                return None;
            }
        };
        let (last, _, _) = window.last()?;
        self.after = *last;
        self.operations += window.len() as u64;
        self.payload_bytes += window.iter().map(|(_, _, n)| *n as u64).sum::<u64>();
        Some(OperationBatch {
            batch_id: uuid::Uuid::new_v4(),
            operations: window.into_iter().map(|(_, op, _)| op.operation).collect(),
            reasons: Default::default(),
            epoch: None,
        })
    }
}
