//! What `cloudsync bench` reports: [`BenchReport`], serialised as the versioned JSON schema of
//! docs/bench.md (`--json`), or rendered as a table. Within one [`SCHEMA_VERSION`] fields are only
//! ever added; renaming, removing or changing the meaning of one bumps it. A stage that did not
//! run is `null`.

use serde::Serialize;

/// The `schema` field's value.
pub const SCHEMA: &str = "cloudsync-bench";
/// The schema's version.
pub const SCHEMA_VERSION: u32 = 1;

/// One run of the harness.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The `cloudsync` version that ran.
    pub cloudsync_version: &'static str,
    /// `release` or `debug` (an unoptimised build's figures are not comparable).
    pub profile: &'static str,
    /// CPUs available to the process.
    pub cpus: usize,
    /// `--objects`.
    pub objects: u64,
    /// `--seed`.
    pub seed: u64,
    /// The stages that ran, in order.
    pub stages_run: Vec<&'static str>,
    /// `--churn`.
    pub churn_percent: f64,
    /// What the generator made.
    pub directory: DirectoryFigures,
    /// Per stage, in order.
    pub stages: Vec<StageFigures>,
    /// Bytes on disk per object.
    pub storage: Storage,
    /// From the first journal append until the tenant acknowledged the last operation.
    pub end_to_end: Option<EndToEnd>,
    /// The tenant's own account of what it holds (`tenant` stage).
    pub tenant: Option<TenantCheck>,
    /// The delta round (with `push` and `--churn` > 0).
    pub delta: Option<DeltaFigures>,
    /// The push stage against the tenant's write budget (with `--write-capacity`).
    pub throttle: Option<ThrottleFigures>,
}

/// The push stage against a write budget: how close to the ceiling it went, and whether above.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleFigures {
    /// The bucket's capacity (burst), in operations.
    pub capacity: f64,
    /// Its refill, operations per second: the sustained ceiling.
    pub refill_per_second: f64,
    /// The push stage's wall time.
    pub seconds: f64,
    /// Operations the tenant acknowledged in it.
    pub operations: u64,
    /// The most the bucket let through in that time: capacity + refill × seconds.
    pub ceiling_operations: f64,
    /// `operations / ceiling_operations`.
    pub ratio_to_ceiling: f64,
    /// The push's rate over the refill rate: `operations / seconds / refill` (above 1 only by
    /// spending the burst; the agent paces itself to the refill, so close to 1 is the goal).
    pub ratio_to_refill: f64,
    /// Answers the tenant throttled (429 or per-item `Throttled`): pushes above the ceiling.
    pub throttled_answers: u64,
}

/// The synthetic directory.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryFigures {
    /// Users.
    pub users: u64,
    /// Groups.
    pub groups: u64,
    /// Contacts.
    pub contacts: u64,
    /// OUs (read, never sent to the cloud).
    pub organizational_units: u64,
    /// Group memberships (values of `member`, over all groups).
    pub memberships: u64,
    /// Members of the largest group, All Staff.
    pub largest_group_members: u64,
    /// Events of the initial read.
    pub events: u64,
    /// Bytes of the largest event (the largest group's full image), as the journal encodes it.
    pub largest_event_bytes: u64,
}

/// One stage's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StageFigures {
    /// `journal`, `phs`, `projection` or `push`.
    pub name: &'static str,
    /// What `items` counts: `events`, `hashes`, `operations`.
    pub unit: &'static str,
    /// Items the stage handled.
    pub items: u64,
    /// Directory objects they cover.
    pub objects: u64,
    /// Time in the stage's own work.
    pub seconds: f64,
    /// Wall time of the stage, producing its input included (the generator, for the journal).
    pub wall_seconds: f64,
    /// `items / seconds`.
    pub items_per_second: f64,
    /// `objects / seconds`.
    pub objects_per_second: f64,
    /// The limit measured in the same run, if the stage has one.
    pub limit: Option<Limit>,
    /// `items_per_second / limit.items_per_second`.
    pub ratio_to_limit: Option<f64>,
    /// RSS of the harness process when the stage started (what earlier stages left), bytes.
    pub start_rss_bytes: u64,
    /// Peak RSS of the harness process during the stage (VmHWM, reset to the current RSS before
    /// it), bytes.
    pub peak_rss_bytes: u64,
}

/// A stage's speed limit.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    /// What was measured.
    pub what: &'static str,
    /// Its rate, in the stage's unit.
    pub items_per_second: f64,
    /// How long measuring it took.
    pub seconds: f64,
}

/// Bytes on disk of the agent's stores (sled's files, as `du --apparent-size` counts them); a
/// store whose stage did not run is `null`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Storage {
    /// The journal after the initial read and the password hashes.
    pub journal: Option<StoreSize>,
    /// The outbox after projection, before pushing.
    pub outbox: Option<StoreSize>,
    /// Projection's store (snapshot, provisioning log) after projecting.
    pub projection: Option<StoreSize>,
    /// The tenant's state directory after the run (`tenant serve --state`).
    pub tenant: Option<StoreSize>,
}

/// One store's size.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSize {
    /// Bytes of its files.
    pub bytes: u64,
    /// Per synced object.
    pub bytes_per_object: f64,
    /// Envelope payload bytes per record (journal: per initial-read event; outbox: per operation,
    /// known when the push stage ran), `null` otherwise.
    pub payload_bytes_per_record: Option<f64>,
}

/// The whole initial sync.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    /// From the first append until the tenant acknowledged the last operation (limits excluded).
    pub seconds: f64,
    /// Synced objects per second over that time.
    pub objects_per_second: f64,
    /// Peak RSS of the harness (the agent's stages) over all stages, bytes.
    pub peak_rss_bytes: u64,
    /// Peak RSS of the tenant process, bytes.
    pub tenant_peak_rss_bytes: u64,
}

/// What the tenant's Graph API says it holds.
#[derive(Debug, Clone, Serialize)]
pub struct TenantCheck {
    /// Users counted.
    pub users: u64,
    /// Groups counted.
    pub groups: u64,
    /// Contacts counted.
    pub contacts: u64,
    /// Members of All Staff counted.
    pub largest_group_members: u64,
    /// Whether every count equals the directory's.
    pub matches_directory: bool,
    /// How long counting took.
    pub seconds: f64,
}

/// The delta round.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaFigures {
    /// `--churn`.
    pub percent: f64,
    /// Objects changed.
    pub objects: u64,
    /// Feed events appended.
    pub events: u64,
    /// Password hashes appended (every fourth changed user, with `phs`).
    pub password_hashes: u64,
    /// Operations projection enqueued.
    pub operations: u64,
    /// Appending the feed's events.
    pub append_seconds: f64,
    /// Hashing and appending the new password hashes.
    pub phs_seconds: f64,
    /// Projecting.
    pub projection_seconds: f64,
    /// Pushing until acknowledged.
    pub push_seconds: f64,
    /// From the first append until the tenant acknowledged the last operation.
    pub seconds: f64,
    /// From the last append (the changes are in the journal) until acknowledged.
    pub seconds_after_journal: f64,
    /// Whether the first changed user's new job title reads back from the tenant (`tenant` stage).
    pub verified: Option<bool>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl BenchReport {
    /// The table printed without `--json`.
    pub fn render(&self) -> String {
        let d = &self.directory;
        let mut out = format!(
            "cloudsync bench: {} objects (seed {}, {} build, {} CPUs): {} users, {} groups, {} contacts, {} OUs, {} memberships (All Staff: {})\n\n",
            self.objects,
            self.seed,
            self.profile,
            self.cpus,
            d.users,
            d.groups,
            d.contacts,
            d.organizational_units,
            d.memberships,
            d.largest_group_members
        );
        out.push_str(
            "stage         items              s    items/s  objects/s    limit/s  ratio  RSS start/peak\n",
        );
        for s in &self.stages {
            let (limit, ratio) = match (&s.limit, s.ratio_to_limit) {
                (Some(l), Some(r)) => (format!("{:.0}", l.items_per_second), format!("{r:.3}")),
                _ => ("-".into(), "-".into()),
            };
            out.push_str(&format!(
                "{:<10} {:>8} {:<10} {:>7.2} {:>10.0} {:>10.0} {:>10} {:>6} {:>5.0}/{:.0} MiB\n",
                s.name,
                s.items,
                s.unit,
                s.seconds,
                s.items_per_second,
                s.objects_per_second,
                limit,
                ratio,
                mib(s.start_rss_bytes),
                mib(s.peak_rss_bytes)
            ));
        }
        out.push('\n');
        for (name, size) in [
            ("journal", &self.storage.journal),
            ("outbox", &self.storage.outbox),
            ("projection", &self.storage.projection),
            ("tenant", &self.storage.tenant),
        ] {
            if let Some(size) = size {
                out.push_str(&format!(
                    "{name} store: {:.1} MiB, {:.0} B/object{}\n",
                    mib(size.bytes),
                    size.bytes_per_object,
                    size.payload_bytes_per_record
                        .map(|p| format!(", {p:.0} B payload/record"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(e) = &self.end_to_end {
            out.push_str(&format!(
                "end to end: {:.1} s until the tenant acknowledged everything ({:.0} objects/s); peak RSS {:.0} MiB (tenant {:.0} MiB)\n",
                e.seconds,
                e.objects_per_second,
                mib(e.peak_rss_bytes),
                mib(e.tenant_peak_rss_bytes)
            ));
        }
        if let Some(t) = &self.tenant {
            out.push_str(&format!(
                "tenant (Graph): {} users, {} groups, {} contacts, All Staff {} members: {} ({:.1} s to count)\n",
                t.users,
                t.groups,
                t.contacts,
                t.largest_group_members,
                if t.matches_directory {
                    "matches the directory"
                } else {
                    "DOES NOT match the directory"
                },
                t.seconds
            ));
        }
        if let Some(t) = &self.throttle {
            out.push_str(&format!(
                "write budget {:.0} + {:.2}/s: {} operations in {:.1} s = {:.4} of the ceiling ({:.0}), {:.4} of the refill rate; {} throttled answers\n",
                t.capacity,
                t.refill_per_second,
                t.operations,
                t.seconds,
                t.ratio_to_ceiling,
                t.ceiling_operations,
                t.ratio_to_refill,
                t.throttled_answers
            ));
        }
        if let Some(x) = &self.delta {
            out.push_str(&format!(
                "delta {}%: {} objects, {} events, {} operations: {:.2} s from append to acknowledged ({:.2} s after the journal; append {:.2}, phs {:.2}, projection {:.2}, push {:.2}){}\n",
                x.percent,
                x.objects,
                x.events,
                x.operations,
                x.seconds,
                x.seconds_after_journal,
                x.append_seconds,
                x.phs_seconds,
                x.projection_seconds,
                x.push_seconds,
                match x.verified {
                    Some(true) => "; read back from the tenant",
                    Some(false) => "; NOT read back from the tenant",
                    None => "",
                }
            ));
        }
        out
    }
}
