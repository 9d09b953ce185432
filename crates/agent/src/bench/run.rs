//! One run of the harness: the stages in the order `agent sync-once` runs them (feed → password hash
//! sync → projection → heartbeat and push), each measured next to its limit, the tenant read back,
//! then the delta round. The agent side runs in this process through the real components; the
//! tenant is a `cloudsync tenant serve` child process reached over HTTPS.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::directory::Directory;
use super::error::BenchError;
use super::graph::GraphReader;
use super::limits;
use super::measure;
use super::options::BenchOptions;
use super::report::{
    BenchReport, DirectoryFigures, Limit, SCHEMA, SCHEMA_VERSION, StageFigures, Storage, StoreSize,
};
use super::setup::{ADMIN_UPN, Layout, admin_password, agent_config, tenant_seed};
use super::spec::{DOMAIN, Spec};
use super::stages::{self, InProcessApply, Timed};
use super::tenant_process::TenantProcess;
use crate::config::Config;
use crate::journal::{Journal, JournalOptions};
use crate::phs::HashPool;
use crate::runtime::Progress;
use crate::runtime::cloud_stages::CloudStages;

/// The parts of a run the stages after projection share.
pub(super) struct Cloud {
    /// The `tenant serve` process.
    pub tenant: TenantProcess,
    /// The agent's configuration.
    pub config: Config,
    /// The seeded administrator's password (Graph reads).
    pub password: String,
}

/// A run under way: what every stage reads and the report they fill.
pub(super) struct Run<'a> {
    pub opts: &'a BenchOptions,
    pub layout: Layout,
    pub directory: Directory,
    pub journal: Journal,
    pub pool: Arc<HashPool>,
    pub report: BenchReport,
    /// Time from the first append, the stages' wall time only (limits are measured between them).
    pub e2e: Duration,
    /// The largest stage peak RSS so far.
    pub peak: u64,
    /// Envelope bytes per initial-read event (from the journal's limit run).
    pub journal_payload: f64,
}

/// One stage's figures from its counts, times and limit.
pub(super) fn stage(
    name: &'static str,
    unit: &'static str,
    (items, objects): (u64, u64),
    t: Timed,
    limit: Option<Limit>,
    (start_rss_bytes, peak_rss_bytes): (u64, u64),
) -> StageFigures {
    let secs = t.own.as_secs_f64().max(1e-9);
    let items_per_second = items as f64 / secs;
    StageFigures {
        name,
        unit,
        items,
        objects,
        seconds: t.own.as_secs_f64(),
        wall_seconds: t.wall.as_secs_f64(),
        items_per_second,
        objects_per_second: objects as f64 / secs,
        ratio_to_limit: limit
            .as_ref()
            .map(|l| items_per_second / l.items_per_second),
        limit,
        start_rss_bytes,
        peak_rss_bytes,
    }
}

/// `bytes / count` (0 for nothing counted).
pub(super) fn per(bytes: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        bytes as f64 / count as f64
    }
}

/// A store's size on disk, per synced object.
pub(super) fn store_size(dir: &Path, objects: u64, payload: Option<f64>) -> StoreSize {
    let bytes = measure::dir_bytes(dir);
    StoreSize {
        bytes,
        bytes_per_object: per(bytes, objects),
        payload_bytes_per_record: payload,
    }
}

fn prepare(root: &Path) -> Result<(), BenchError> {
    if std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BenchError::StateDirInUse(root.to_path_buf()));
    }
    cloudsync_private_fs::create_private_dir(root).map_err(BenchError::io("creating --state-dir"))
}

/// Removes a limit's scratch store.
pub(super) fn remove(dir: &Path) -> Result<(), BenchError> {
    std::fs::remove_dir_all(dir).map_err(BenchError::io("removing a limit's scratch store"))
}

fn new_report(opts: &BenchOptions, directory: &Directory) -> BenchReport {
    let counts = directory.counts;
    BenchReport {
        schema: SCHEMA,
        version: SCHEMA_VERSION,
        cloudsync_version: env!("CARGO_PKG_VERSION"),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        objects: counts.synced(),
        seed: opts.seed,
        stages_run: opts.stages.names(),
        churn_percent: opts.churn_percent,
        directory: DirectoryFigures {
            users: counts.users,
            groups: counts.groups,
            contacts: counts.contacts,
            organizational_units: counts.organizational_units,
            memberships: (0..counts.groups)
                .map(|g| directory.spec.group(g).members())
                .sum(),
            largest_group_members: counts.largest_group_members,
            events: directory.initial_events(),
            largest_event_bytes: 0,
        },
        stages: Vec::new(),
        storage: Storage::default(),
        end_to_end: None,
        tenant: None,
        delta: None,
        throttle: None,
    }
}

/// Runs the harness (module doc). `apply` is the tenant's in-process apply, the push stage's limit.
pub async fn run(
    opts: &BenchOptions,
    apply: &dyn InProcessApply,
) -> Result<BenchReport, BenchError> {
    let layout = Layout {
        root: opts.state_dir.clone(),
    };
    prepare(&layout.root)?;
    let directory = Directory::new(Spec {
        objects: opts.objects,
        seed: opts.seed,
    });
    // Set-up, not timed: the tenant process and the agent's registration.
    let cloud = match opts.stages.projection {
        true => {
            let password = admin_password();
            let budget = opts
                .write_budget
                .map(|b| b.serve_args())
                .unwrap_or_default();
            let tenant = TenantProcess::start(
                &opts.tenant_exe,
                &layout.tenant(),
                &tenant_seed(&password),
                &budget,
            )?;
            let config = agent_config(
                &layout,
                &tenant.url,
                &tenant.ca_file(),
                opts.write_budget.map(|b| b.refill_per_second),
            )?;
            crate::control::register::register(&config, ADMIN_UPN, &password).await?;
            Some(Cloud {
                tenant,
                config,
                password,
            })
        }
        false => None,
    };
    let mut run = Run {
        opts,
        journal: Journal::open(&layout.journal(), JournalOptions::default())?,
        layout,
        report: new_report(opts, &directory),
        directory,
        pool: Arc::new(HashPool::with_all_cores()?),
        e2e: Duration::ZERO,
        peak: 0,
        journal_payload: 0.0,
    };
    run.journal_stage().await?;
    if opts.stages.phs {
        run.phs_stage().await?;
    }
    let synced = run.directory.counts.synced();
    let payload = run.journal_payload;
    run.report.storage.journal = Some(store_size(&run.layout.journal(), synced, Some(payload)));
    let Some(cloud) = cloud else {
        return Ok(run.report);
    };
    let mut stages = run.projection_stage(&cloud).await?;
    if opts.stages.push {
        run.push_stage(&mut stages, apply).await?;
        let reader = match opts.stages.tenant {
            true => {
                let tenant = cloud.config.tenant.as_ref();
                let tenant =
                    tenant.ok_or(crate::runtime::cloud_stages::CloudStagesError::NoTenant)?;
                let reader = GraphReader::sign_in(tenant, ADMIN_UPN, &cloud.password).await?;
                run.tenant_stage(&reader).await?;
                Some(reader)
            }
            false => None,
        };
        if opts.churn_percent > 0.0 {
            run.delta_round(&mut stages, reader.as_ref()).await?;
        }
    }
    if let Some(e) = run.report.end_to_end.as_mut() {
        e.tenant_peak_rss_bytes = cloud.tenant.pid().map_or(0, measure::peak_rss_of);
    }
    drop(stages);
    let state = cloud.tenant.dir.join("state");
    cloud
        .tenant
        .stop()
        .map_err(BenchError::io("stopping the local tenant"))?;
    run.report.storage.tenant = Some(store_size(&state, synced, None));
    Ok(run.report)
}

impl Run<'_> {
    pub(super) fn progress(&self, stage: &'static str, unit: &'static str, total: u64) -> Progress {
        Progress::stage(stage, DOMAIN, unit, Some(total), self.opts.interactive)
    }

    /// Adds a stage's figures and its share of the end-to-end time and peak.
    pub(super) fn record(&mut self, figures: StageFigures) {
        self.e2e += Duration::from_secs_f64(figures.wall_seconds);
        self.peak = self.peak.max(figures.peak_rss_bytes);
        self.report.stages.push(figures);
    }

    /// The initial read into the journal, then its limit: raw sled inserts of the same bytes.
    async fn journal_stage(&mut self) -> Result<(), BenchError> {
        let start = measure::reset_peak_rss();
        let total = self.directory.initial_events();
        let p = self.progress("journal", "events appended", total);
        let read = self.directory.initial_read();
        let (events, t) = stages::append_pages(&self.journal, read, true, &p).await?;
        let rss = measure::peak_rss_bytes();
        let (scratch, started) = (self.layout.limits("raw-sled"), Instant::now());
        let p = self.progress("journal limit", "events inserted into raw sled", total);
        let cache = JournalOptions::default().cache_capacity_bytes;
        let (raw, largest) = stages::raw_sled_limit(&scratch, &self.directory, cache, &p)?;
        remove(&scratch)?;
        let limit = Limit {
            what: "raw sled inserts of the same bytes, flushed per page",
            items_per_second: raw.rate(),
            seconds: started.elapsed().as_secs_f64(),
        };
        let synced = self.directory.counts.synced();
        self.record(stage(
            "journal",
            "events",
            (events, synced),
            t,
            Some(limit),
            (start, rss),
        ));
        self.report.directory.largest_event_bytes = largest;
        self.journal_payload = per(raw.value_bytes, raw.entries);
        Ok(())
    }

    /// Every user's password hash into the journal, then its limit: one stream of SHA-256
    /// compressions.
    async fn phs_stage(&mut self) -> Result<(), BenchError> {
        let start = measure::reset_peak_rss();
        let users = self.directory.counts.users;
        let p = self.progress("password hashes", "hashes appended", users);
        let (hashes, t) = stages::hash_passwords(
            &self.journal,
            &self.pool,
            &self.directory,
            &mut (0..users),
            false,
            &p,
        )
        .await?;
        let rss = measure::peak_rss_bytes();
        let started = Instant::now();
        let limit = Limit {
            what: "one stream of SHA-256 compressions, 2000 per hash",
            items_per_second: limits::hash_limit_per_second(20),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.record(stage(
            "phs",
            "hashes",
            (hashes, users),
            t,
            Some(limit),
            (start, rss),
        ));
        Ok(())
    }

    /// Projection into the outbox, through the agent's own assembly of the cloud stages (the
    /// tenant's settings fetched first, as `agent sync-once` does).
    async fn projection_stage(&mut self, cloud: &Cloud) -> Result<CloudStages, BenchError> {
        let start = measure::reset_peak_rss();
        let started = Instant::now();
        let mut cs = CloudStages::open(&cloud.config, self.journal.clone())?;
        cs.interactive = self.opts.interactive;
        let _ = cs.apply_cloud_config().await;
        let projected = cs.project_all().await?;
        let wall = started.elapsed();
        let rss = measure::peak_rss_bytes();
        let synced = self.directory.counts.synced();
        let t = Timed { own: wall, wall };
        self.record(stage(
            "projection",
            "events",
            (projected.events, synced),
            t,
            None,
            (start, rss),
        ));
        let storage = &mut self.report.storage;
        storage.outbox = Some(store_size(&cloud.config.agent.outbox_dir(), synced, None));
        storage.projection = Some(store_size(
            &cloud.config.agent.projection_dir(),
            synced,
            None,
        ));
        Ok(cs)
    }
}
