//! The PHS cycle: replicate what changed, hash it, and append only the salted strings.
//!
//! One cycle, as numbered steps (DESIGN invariants 2 and 4):
//! 1. Read this source's checkpoint (the DRSR cookie or the `ldap_priv` USN) from the [`EventSink`].
//! 2. Replicate from it: NT hashes arrive in zeroizing buffers and stay in memory.
//! 3. Hash every NT hash on the pool (fresh 10-byte salt, 1,000 iterations), page by page while the
//!    next page is fetched; the NT hashes are dropped (zeroized) as soon as they are hashed.
//! 4. Append each page's `Event::PasswordHashChanged`s (one per account, only the OrgId string) as
//!    soon as the page is hashed, in replication order ([`EventSink::append`], durable on return; the
//!    journal in production), so a cycle holds about one page of results whatever the directory's
//!    size (one append of a whole cycle took ~10 KB of memory per hash: 9.9 GB at 900,000 accounts).
//! 5. Then append the new checkpoint as a [`SourceCheckpoint`], after every page it covers.
//!
//! A crash or an error before step 5 re-replicates the same changes next time (new salts, same
//! passwords): nothing is lost, the pages appended already are sent again with other salts (the
//! cloud's effect is the same), and nothing but salted values was ever written.
//!
//! Scheduling ([`PhsCycle::run`]): a cycle runs when the LDAP feed signals a password change
//! (`Event::PasswordChanged` → [`tokio::sync::Notify::notify_one`]; signals during a cycle coalesce
//! into one more cycle) and at least every `interval` (2 minutes by default).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::CycleError;
use crate::event::{Event, Guid, SourceKind};
use crate::nt_hash::NtHash;
use crate::phs::fips::{self, FipsDecision, FipsSettings};
use crate::phs::{HashPool, OrgIdHash, PhsError};
use crate::source::drsr::{Cookie, DrsrClient, DrsrSettings};
use crate::source::ldap::DomainConfig;
use crate::source::samba_priv;
use crate::source::{EventSink, SourceCheckpoint};

/// Default upper bound between two cycles.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);

/// Where the hashes come from.
#[derive(Debug)]
pub enum PhsSource {
    /// MS-DRSR replication from a DC (any AD; the portable choice).
    Drsr(DrsrSettings),
    /// MS-DRSR replication as a group managed service account: before each cycle the gMSA's NT hash
    /// is taken from [`crate::account::gmsa::hashes`] (read again when due), replacing the one in the
    /// settings; a refused sign-in tries the other held hash, then a fresh read.
    DrsrAsGmsa(DrsrSettings, Box<DomainConfig>),
    /// Samba's root-only `ldap_priv` socket (agent on a Samba DC only).
    SambaPriv {
        /// Path of `private/ldap_priv/ldapi`.
        socket: PathBuf,
        /// The domain's base DN.
        base_dn: String,
    },
}

impl PhsSource {
    fn kind(&self) -> SourceKind {
        match self {
            PhsSource::Drsr(_) | PhsSource::DrsrAsGmsa(..) => SourceKind::Drsr,
            PhsSource::SambaPriv { .. } => SourceKind::SambaPriv,
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Objects replicated (DRSR) or accounts read (ldap_priv).
    pub objects: usize,
    /// Password hashes appended.
    pub hashes: usize,
    /// Secrets that did not decrypt (quarantined).
    pub skipped: usize,
    /// Time spent replicating.
    pub replication: Duration,
    /// Hashing time left after replication finished (pages are hashed while later ones are fetched).
    pub hashing: Duration,
    /// First and last sequence numbers of the hashes written (pages are appended one by one, so
    /// other sources' events may lie in between).
    pub seqs: Option<(u64, u64)>,
}

/// The objectGUIDs of one page and the task hashing their NT hashes (same order).
type HashingBatch = (
    Vec<[u8; 16]>,
    tokio::task::JoinHandle<Result<Vec<OrgIdHash>, PhsError>>,
);

/// What a source returned besides its pages: the checkpoint that covers them.
struct Fetched {
    data: Vec<u8>,
    objects: usize,
    skipped: usize,
}

/// Accounts per hashing batch (and so per journal append) when a source returns them all at once
/// (`ldap_priv`); MS-DRSR pages are smaller than this already.
const APPEND_CHUNK: usize = 1_000;

/// Where the pages' hashing batches go, in replication order, to be appended as they complete.
type BatchSender = tokio::sync::mpsc::UnboundedSender<HashingBatch>;

/// Counters of a running stage, for `status`/`doctor` and tests.
#[derive(Debug, Default)]
pub struct PhsProgress {
    /// Cycles started.
    pub attempted: AtomicU64,
    /// Cycles that appended their results.
    pub succeeded: AtomicU64,
    /// Password hashes appended in total.
    pub hashes: AtomicU64,
}

/// A configured PHS stage for one domain, appending to the sink `S` (the journal in production).
#[derive(Debug)]
pub struct PhsCycle<S> {
    sink: S,
    pool: Arc<HashPool>,
    domain: String,
    source: PhsSource,
    progress: Arc<PhsProgress>,
}

impl<S: EventSink> PhsCycle<S> {
    /// Checks the FIPS policy against `host_fips_file` and builds the stage; refuses to start when
    /// the policy forbids MD4/MD5/RC4.
    pub fn new(
        sink: S,
        pool: HashPool,
        domain: String,
        source: PhsSource,
        fips_settings: &FipsSettings,
        host_fips_file: &std::path::Path,
    ) -> Result<PhsCycle<S>, PhsError> {
        if let FipsDecision::AllowedByException(reason) =
            fips::check_password_hash_sync(fips_settings, host_fips_file)?
        {
            tracing::info!(%reason, domain, "Password hash sync runs under a FIPS exception.");
        }
        Ok(PhsCycle {
            sink,
            pool: Arc::new(pool),
            domain,
            source,
            progress: Arc::default(),
        })
    }

    /// The stage's counters (shared; still readable after [`PhsCycle::run`] took the stage).
    pub fn progress(&self) -> Arc<PhsProgress> {
        Arc::clone(&self.progress)
    }

    /// Starts hashing one page on the pool; the NT hashes move into the task and are zeroized there.
    fn spawn_hashing(&self, accounts: Vec<([u8; 16], NtHash)>) -> HashingBatch {
        let (guids, nts): (Vec<[u8; 16]>, Vec<NtHash>) = accounts.into_iter().unzip();
        let pool = Arc::clone(&self.pool);
        (guids, tokio::spawn(async move { pool.hash_all(nts).await }))
    }

    /// Step 2 over MS-DRSR: each page is hashed on the pool while the next one is fetched. As a gMSA,
    /// the held hashes are tried in order, then read again once, before a refusal is reported.
    async fn replicate(
        &self,
        cookie: Option<&Cookie>,
        batches: &BatchSender,
    ) -> Result<crate::source::drsr::ReplicationRun, CycleError> {
        let mut on_page = |page: Vec<crate::source::drsr::ReplicatedHash>| {
            // The receiver lives until the cycle ends; a send fails only when the append side
            // already failed, and then the cycle reports that error.
            let _ = batches
                .send(self.spawn_hashing(page.into_iter().map(|h| (h.guid, h.nt_hash)).collect()));
        };
        let (settings, domain) = match &self.source {
            PhsSource::Drsr(settings) => {
                return Ok(DrsrClient::replicate_pages(settings, cookie, on_page).await?);
            }
            PhsSource::DrsrAsGmsa(settings, domain) => (settings, domain),
            PhsSource::SambaPriv { .. } => {
                return Err(CycleError::Drsr(crate::source::drsr::DrsrError::malformed(
                    "source",
                    "not an MS-DRSR source",
                )));
            }
        };
        let mut last = None;
        for force in [false, true] {
            let hashes = crate::account::gmsa::hashes(domain, force)
                .await
                .map_err(|e| CycleError::Gmsa(Box::new(e)))?;
            for hash in hashes {
                let mut as_gmsa = settings.clone();
                as_gmsa.credentials.nt_hash = hash;
                match DrsrClient::replicate_pages(&as_gmsa, cookie, &mut on_page).await {
                    Err(e)
                        if e.is_access_denied()
                            || matches!(e, crate::source::drsr::DrsrError::BindRejected(_)) =>
                    {
                        last = Some(e);
                    }
                    other => return Ok(other?),
                }
            }
        }
        Err(last.map(CycleError::Drsr).unwrap_or_else(|| {
            CycleError::Gmsa(Box::new(crate::account::gmsa::GmsaError::NotConfigured))
        }))
    }

    /// Steps 1–2: replicates from the stored checkpoint, sending each page's hashing batch to `batches`
    /// as it arrives; returns the new checkpoint.
    async fn fetch(
        &self,
        stored: Option<&[u8]>,
        batches: BatchSender,
    ) -> Result<Fetched, CycleError> {
        match &self.source {
            PhsSource::Drsr(_) | PhsSource::DrsrAsGmsa(..) => {
                let cookie = match stored {
                    Some(bytes) => Cookie::from_bytes(bytes)?,
                    None => None,
                };
                let run = self.replicate(cookie.as_ref(), &batches).await?;
                Ok(Fetched {
                    data: run.cookie.to_bytes(),
                    objects: run.objects,
                    skipped: run.undecryptable,
                })
            }
            PhsSource::SambaPriv { socket, base_dn } => {
                let since = stored
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_le_bytes);
                let run = samba_priv::read_hashes(socket, base_dn, since).await?;
                let objects = run.hashes.len();
                let mut accounts = run.hashes.into_iter().map(|h| (h.guid, h.nt_hash));
                loop {
                    let chunk: Vec<_> = accounts.by_ref().take(APPEND_CHUNK).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    let _ = batches.send(self.spawn_hashing(chunk));
                }
                Ok(Fetched {
                    data: run.highest_usn.to_le_bytes().to_vec(),
                    objects,
                    skipped: 0,
                })
            }
        }
    }

    /// Steps 3–4 per page: awaits each batch's hashing in replication order and appends its events
    /// without a checkpoint, so a cycle holds one page of results at a time, whatever the directory's
    /// size. Returns the hashes appended and the first and last sequence numbers written.
    async fn append_pages(
        &self,
        mut batches: tokio::sync::mpsc::UnboundedReceiver<HashingBatch>,
    ) -> Result<(usize, Option<(u64, u64)>), CycleError> {
        let mut hashed = 0usize;
        let mut seqs: Option<(u64, u64)> = None;
        while let Some((guids, task)) = batches.recv().await {
            let hashes = task.await.map_err(|_| PhsError::PoolClosed)??;
            let events: Vec<Event> = guids
                .iter()
                .zip(&hashes)
                .map(|(guid, h)| Event::PasswordHashChanged {
                    domain: self.domain.clone(),
                    guid: Guid(*guid),
                    org_id_hash: h.to_string(),
                })
                .collect();
            if events.is_empty() {
                continue;
            }
            let count = events.len();
            let last = self.sink.append(events, None).await?;
            hashed += count;
            if let Some((first, last)) = first_and_last(last, count) {
                seqs = Some((seqs.map_or(first, |s| s.0), last));
            }
        }
        Ok((hashed, seqs))
    }

    /// Runs one cycle (module doc, steps 1–5).
    #[tracing::instrument(skip_all, err, fields(domain = %self.domain))]
    pub async fn run_once(&self) -> Result<CycleReport, CycleError> {
        self.progress.attempted.fetch_add(1, Ordering::Relaxed);
        let kind = self.source.kind();
        let stored = self.sink.checkpoint(&self.domain, kind)?;
        let started = Instant::now();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let fetch = async move {
            let fetched = self.fetch(stored.as_deref(), tx).await?;
            Ok::<_, CycleError>((fetched, Instant::now()))
        };
        // The first error of either side ends the cycle; pages already appended stay (the next cycle
        // replicates them again from the unchanged checkpoint: new salts, same passwords).
        let ((fetched, replicated_at), (hashed, seqs)) =
            tokio::try_join!(fetch, self.append_pages(rx))?;
        let replication = replicated_at.duration_since(started);
        // What was left of the hashing and appending once replication was done (the rest overlapped it).
        let hashing = replicated_at.elapsed();
        let Fetched {
            data,
            objects,
            skipped,
        } = fetched;
        // Step 4's end: the checkpoint goes only after every page it covers is durable.
        self.sink
            .append(
                Vec::new(),
                Some(SourceCheckpoint {
                    domain: self.domain.clone(),
                    source: kind,
                    data,
                }),
            )
            .await?;
        self.progress.succeeded.fetch_add(1, Ordering::Relaxed);
        self.progress
            .hashes
            .fetch_add(hashed as u64, Ordering::Relaxed);
        let report = CycleReport {
            objects,
            hashes: hashed,
            skipped,
            replication,
            hashing,
            seqs,
        };
        crate::metrics::phs_cycle(&self.domain, hashed as u64);
        tracing::info!(
            objects = report.objects,
            hashes = report.hashes,
            skipped = report.skipped,
            replication_ms = report.replication.as_millis() as u64,
            hashing_ms = report.hashing.as_millis() as u64,
            "Password hash sync cycle done."
        );
        Ok(report)
    }

    /// Runs cycles on `signal` and at least every `interval` until `cancel` fires. Failed cycles are
    /// logged (retriable ones as warnings) and retried at the next trigger; the checkpoint did not move.
    pub async fn run(self, signal: Arc<Notify>, interval: Duration, cancel: CancellationToken) {
        self.run_gated(signal, interval, cancel, || true).await
    }

    /// [`PhsCycle::run`], skipping each trigger at which `allowed()` says no (the tenant switched
    /// password hash sync off for the domain): nothing is replicated and the cookie stays, so the
    /// first cycle after it is switched on again picks up every change since. While it is off,
    /// `allowed()` is asked again every [`GATE_RECHECK`], so switching it on takes effect at once.
    pub async fn run_gated(
        self,
        signal: Arc<Notify>,
        interval: Duration,
        cancel: CancellationToken,
        allowed: impl Fn() -> bool,
    ) {
        let mut off = false;
        // Whether this round was triggered by a password change or the interval (not a re-check).
        let mut triggered = true;
        // Retriable failures in a row: the next try comes after a backoff, not a whole interval.
        let mut failed: u32 = 0;
        loop {
            if !allowed() {
                if triggered {
                    tracing::info!(domain = %self.domain, "Password hash sync is switched off in the tenant for this domain; cycle skipped.");
                }
                off = true;
            } else {
                if off {
                    tracing::info!(domain = %self.domain, "Password hash sync is switched on again in the tenant; catching up.");
                }
                off = false;
                match self.run_once().await {
                    Ok(_) => failed = 0,
                    Err(err) if err.is_retriable() => {
                        failed = failed.saturating_add(1);
                        let retry_in = retry_delay(failed).min(interval);
                        tracing::warn!(error = %err, retry_in_secs = retry_in.as_secs(), "Password hash sync cycle failed; will retry.");
                    }
                    Err(err) => {
                        failed = 0;
                        tracing::error!(error = %err, "Password hash sync cycle failed; fix the cause, it will be retried.");
                    }
                }
            }
            let recheck = if off {
                GATE_RECHECK.min(interval)
            } else if failed > 0 {
                retry_delay(failed).min(interval)
            } else {
                interval
            };
            triggered = tokio::select! {
                () = cancel.cancelled() => return,
                () = signal.notified() => true,
                () = tokio::time::sleep(recheck) => !off,
            };
        }
    }
}

/// How often a switched-off cycle asks again whether it may run.
pub const GATE_RECHECK: Duration = Duration::from_secs(2);

/// The wait after a first retriable failure (a DC that stopped answering, a full disk); it doubles
/// with each failure in a row, up to the interval. Before, a failed cycle waited for the next
/// password-change signal or the whole interval (120 s by default), so a password changed while the
/// DC was frozen reached the cloud minutes late (found by the fault campaign, `samba-frozen`).
pub const RETRY_FIRST: Duration = Duration::from_secs(5);

/// The wait before try `failed + 1` after `failed` retriable failures in a row (≥ 1).
fn retry_delay(failed: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1u32 << failed.saturating_sub(1).min(16))
}

/// The first and last sequence numbers of an append of `count` events that ended at `last`.
fn first_and_last(last: Option<u64>, count: usize) -> Option<(u64, u64)> {
    let count = u64::try_from(count).ok().filter(|&c| c > 0)?;
    last.map(|last| (last.saturating_add(1).saturating_sub(count), last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, JournalOptions};
    use crate::source::SinkError;

    /// A stage whose source always fails at once (a missing `ldap_priv` socket).
    fn failing_stage(dir: &std::path::Path) -> PhsCycle<Journal> {
        let fips_off = dir.join("fips_enabled");
        std::fs::write(&fips_off, "0").unwrap();
        PhsCycle::new(
            Journal::open(&dir.join("journal"), JournalOptions::default()).unwrap(),
            HashPool::new(1, 1).unwrap(),
            "corp.example.test".into(),
            PhsSource::SambaPriv {
                socket: dir.join("missing-ldapi"),
                base_dn: "DC=corp".into(),
            },
            &FipsSettings::default(),
            &fips_off,
        )
        .unwrap()
    }

    /// Polls until `attempts` cycles have started (deadline 10 s: a hang fails instead of blocking).
    async fn until(progress: &PhsProgress, attempts: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while progress.attempted.load(Ordering::Relaxed) < attempts {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {attempts} cycles started",
                progress.attempted.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Switched off in the tenant: signals start no cycle; switched on again, a cycle runs without
    /// waiting for a signal or the hour-long interval.
    #[tokio::test]
    async fn a_switched_off_gate_skips_cycles_and_switching_on_runs_one_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let stage = failing_stage(dir.path());
        let progress = stage.progress();
        let signal = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let on = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let gate = Arc::clone(&on);
        let task = tokio::spawn(stage.run_gated(
            Arc::clone(&signal),
            Duration::from_secs(3600),
            cancel.clone(),
            move || gate.load(Ordering::Relaxed),
        ));
        until(&progress, 1).await;
        on.store(false, Ordering::Relaxed);
        signal.notify_one();
        signal.notify_one();
        // Two re-check periods pass (time is paused: they pass at once, in order).
        tokio::time::pause();
        tokio::time::sleep(GATE_RECHECK * 2).await;
        tokio::time::resume();
        assert_eq!(progress.attempted.load(Ordering::Relaxed), 1);
        on.store(true, Ordering::Relaxed);
        until(&progress, 2).await;
        cancel.cancel();
        task.await.unwrap();
    }

    /// A sink that refuses the checkpoint read (as a full or closed store would).
    struct RefusingSink;

    impl EventSink for RefusingSink {
        fn checkpoint(&self, _: &str, _: SourceKind) -> Result<Option<Vec<u8>>, SinkError> {
            Err(SinkError {
                message: "refused".into(),
                retriable: true,
            })
        }

        async fn append(
            &self,
            _: Vec<Event>,
            _: Option<SourceCheckpoint>,
        ) -> Result<Option<u64>, SinkError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn the_checkpoint_is_read_from_the_sink_and_its_refusal_is_a_retriable_sink_error() {
        let dir = tempfile::tempdir().unwrap();
        let fips_off = dir.path().join("fips_enabled");
        std::fs::write(&fips_off, "0").unwrap();
        let stage = PhsCycle::new(
            RefusingSink,
            HashPool::new(1, 1).unwrap(),
            "corp.example.test".into(),
            PhsSource::SambaPriv {
                socket: dir.path().join("missing-ldapi"),
                base_dn: "DC=corp".into(),
            },
            &FipsSettings::default(),
            &fips_off,
        )
        .unwrap();
        // The sink answers before the (missing) socket is touched.
        let err = stage.run_once().await.unwrap_err();
        assert!(
            matches!(&err, CycleError::Sink(e) if e.message == "refused"),
            "{err}"
        );
        assert!(err.is_retriable());
    }

    #[test]
    fn an_appends_sequence_numbers_are_consecutive_up_to_the_last() {
        assert_eq!(first_and_last(Some(10), 3), Some((8, 10)));
        assert_eq!(first_and_last(Some(1), 1), Some((1, 1)));
        assert_eq!(first_and_last(Some(5), 0), None);
        assert_eq!(first_and_last(None, 0), None);
    }

    #[tokio::test]
    async fn a_cycle_runs_at_start_and_on_each_password_change_signal() {
        let dir = tempfile::tempdir().unwrap();
        let stage = failing_stage(dir.path());
        let progress = stage.progress();
        let signal = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        // An hour-long interval: only the start and the signals can trigger cycles here.
        let task = tokio::spawn(stage.run(
            Arc::clone(&signal),
            Duration::from_secs(3600),
            cancel.clone(),
        ));
        until(&progress, 1).await;
        signal.notify_one();
        until(&progress, 2).await;
        signal.notify_one();
        until(&progress, 3).await;
        assert_eq!(progress.succeeded.load(Ordering::Relaxed), 0);
        cancel.cancel();
        task.await.unwrap();
    }

    /// A retriable failure is tried again after [`RETRY_FIRST`], then twice as long, not after the
    /// hour-long interval.
    #[tokio::test(start_paused = true)]
    async fn a_failed_cycle_is_retried_with_backoff_before_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        // A socket nobody listens on any more: the connection is refused, as by a DC that stopped.
        drop(std::os::unix::net::UnixListener::bind(dir.path().join("missing-ldapi")).unwrap());
        let stage = failing_stage(dir.path());
        let err = stage.run_once().await.unwrap_err();
        assert!(
            err.is_retriable(),
            "the stage's failure is retriable: {err}"
        );
        let progress = stage.progress();
        let before = progress.attempted.load(Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn(stage.run(
            Arc::new(Notify::new()),
            Duration::from_secs(3600),
            cancel.clone(),
        ));
        let mut at = Vec::new();
        while at.len() < 3 {
            let n = progress.attempted.load(Ordering::Relaxed) - before;
            if n as usize > at.len() {
                at.push(start.elapsed());
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "attempts at {at:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(at[0] < Duration::from_secs(1), "the first at once: {at:?}");
        let (first, second) = (at[1] - at[0], at[2] - at[1]);
        assert!(
            first >= RETRY_FIRST && first < RETRY_FIRST + Duration::from_secs(1),
            "retried after {first:?}"
        );
        assert!(
            second >= RETRY_FIRST * 2 && second < RETRY_FIRST * 2 + Duration::from_secs(1),
            "then after {second:?}"
        );
        assert_eq!(retry_delay(40), RETRY_FIRST * 65_536, "bounded shift");
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn cycles_repeat_at_the_interval_without_signals() {
        let dir = tempfile::tempdir().unwrap();
        let stage = failing_stage(dir.path());
        let progress = stage.progress();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(stage.run(
            Arc::new(Notify::new()),
            Duration::from_millis(20),
            cancel.clone(),
        ));
        until(&progress, 4).await;
        cancel.cancel();
        task.await.unwrap();
    }
}
