//! What `benches/lab_latency.rs` measured, as a table or JSON: the seeding and initial sync rates and,
//! per kind of change, the latency until visible, Samba's notification delay and the difference.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

/// p50, p99 and max of a series of seconds (nearest rank); all zero for an empty series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Stats {
    /// The statistics of `samples` (seconds).
    pub fn of(samples: &[f64]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            n: v.len(),
            p50: rank(0.5),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }

    fn json(&self) -> Value {
        json!({"samples": self.n, "p50_seconds": self.p50, "p99_seconds": self.p99, "max_seconds": self.max})
    }
}

/// One timed change: from the modify's return until visible in the tenant, and until Samba's
/// notification for the entry reached the bench's own watcher (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// `None`: not visible within the per-change deadline (a failure).
    pub visible: Option<f64>,
    /// `None`: no notification for the entry arrived.
    pub notified: Option<f64>,
    /// The agent's own notification (its log's "Change notification received.", the first after the
    /// modify was sent); `None` when there was none.
    pub agent_notified: Option<f64>,
}

/// One series of changes of one kind.
#[derive(Debug, Clone)]
pub struct Series {
    /// `title` or `password`.
    pub kind: &'static str,
    /// What "visible" means for this kind.
    pub visible_means: &'static str,
    /// Every change, in order.
    pub samples: Vec<Sample>,
}

impl Series {
    /// Changes not visible within the deadline.
    pub fn failures(&self) -> usize {
        self.samples.iter().filter(|s| s.visible.is_none()).count()
    }

    fn stats(&self, value: impl Fn(&Sample) -> Option<f64>) -> Stats {
        Stats::of(&self.samples.iter().filter_map(value).collect::<Vec<_>>())
    }

    /// Modify → visible, over the changes that became visible.
    pub fn latency(&self) -> Stats {
        self.stats(|s| s.visible)
    }

    /// Modify → Samba's notification at the bench's watcher.
    pub fn notification(&self) -> Stats {
        self.stats(|s| s.notified)
    }

    /// Modify → the agent's own notification (from its log).
    pub fn agent_notification(&self) -> Stats {
        self.stats(|s| s.agent_notified)
    }

    /// Per change with both: visible − the agent's own notification, the agent's share of the
    /// latency (the bench's watcher sits on another connection, which Samba may notify at another
    /// time; see `docs/bench.md`).
    pub fn beyond_notification(&self) -> Stats {
        self.stats(|s| Some(s.visible? - s.agent_notified?))
    }

    fn json(&self) -> Value {
        json!({
            "kind": self.kind,
            "visible_means": self.visible_means,
            "changes": self.samples.len(),
            "failures": self.failures(),
            "latency": self.latency().json(),
            "notification_delay": self.notification().json(),
            "agent_notification_delay": self.agent_notification().json(),
            "beyond_agent_notification": self.beyond_notification().json(),
            "p50_latency_minus_p50_agent_notification_seconds": self.latency().p50 - self.agent_notification().p50,
        })
    }
}

/// The seeding and the agent's initial sync of the seeded directory.
#[derive(Debug, Clone, Default)]
pub struct Seeding {
    /// Users added to `OU=LatBench` (with passwords).
    pub users: usize,
    /// LDAP connections (ldapmodify processes) they were added over.
    pub connections: usize,
    /// Time to add them.
    pub seed_seconds: f64,
    /// The agent's first DirSync pass, from its log: entries read and its time.
    pub dirsync_entries: u64,
    /// Its time, milliseconds.
    pub dirsync_ms: u64,
    /// The agent's first MS-DRSR PHS cycle, from its log: objects replicated, hashes made.
    pub phs_objects: u64,
    /// Hashes.
    pub phs_hashes: u64,
    /// Replication time, milliseconds.
    pub phs_replication_ms: u64,
    /// Hashing time, milliseconds.
    pub phs_hashing_ms: u64,
    /// From `agent run`'s start until Graph lists every seeded user.
    pub graph_complete_seconds: f64,
    /// From `agent run`'s start until sample seeded users sign in with their AD password.
    pub signin_complete_seconds: f64,
    /// Users Graph listed before the agent started (cloud-only users it shows).
    pub tenant_users_before: usize,
    /// Users Graph lists after the initial sync.
    pub tenant_users: usize,
}

impl Seeding {
    fn rate(items: u64, ms: u64) -> f64 {
        if ms == 0 {
            0.0
        } else {
            items as f64 * 1000.0 / ms as f64
        }
    }

    fn json(&self) -> Value {
        json!({
            "users": self.users,
            "connections": self.connections,
            "seed_seconds": self.seed_seconds,
            "seed_users_per_second": self.users as f64 / self.seed_seconds.max(1e-9),
            "dirsync": {"entries": self.dirsync_entries, "seconds": self.dirsync_ms as f64 / 1000.0,
                        "entries_per_second": Seeding::rate(self.dirsync_entries, self.dirsync_ms)},
            "phs": {"objects": self.phs_objects, "hashes": self.phs_hashes,
                    "replication_seconds": self.phs_replication_ms as f64 / 1000.0,
                    "hashing_seconds": self.phs_hashing_ms as f64 / 1000.0,
                    "objects_per_second": Seeding::rate(self.phs_objects, self.phs_replication_ms + self.phs_hashing_ms)},
            "graph_complete_seconds": self.graph_complete_seconds,
            "signin_complete_seconds": self.signin_complete_seconds,
            "tenant_users_before": self.tenant_users_before,
            "tenant_users": self.tenant_users,
        })
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The `cloudsync` binary that ran the agent and the tenant.
    pub binary: String,
    /// `release` or `debug` (from the binary's path).
    pub profile: &'static str,
    /// `date -u` at the start.
    pub started: String,
    /// `/proc/loadavg`'s first three fields at the start and the end.
    pub load: (String, String),
    /// CPUs this process may use.
    pub cpus: usize,
    /// The pause before each change is spread over 0..spread_ms (de-correlates from Samba's poll).
    pub spread_ms: u64,
    /// The per-change deadline.
    pub timeout_secs: u64,
    /// The seeding part.
    pub seeding: Seeding,
    /// `title` then `password`.
    pub series: Vec<Series>,
}

impl Report {
    /// Whether the initial sync completed (Graph listed every seeded user, they signed in) and every
    /// change became visible.
    pub fn ok(&self) -> bool {
        self.seeding.graph_complete_seconds > 0.0
            && self.seeding.signin_complete_seconds > 0.0
            && !self.series.is_empty()
            && self.series.iter().all(|s| s.failures() == 0)
    }

    /// The JSON form (`schema` `cloudsync-lab-latency`, version 1).
    pub fn json(&self) -> Value {
        json!({
            "schema": "cloudsync-lab-latency",
            "version": 1,
            "binary": self.binary,
            "profile": self.profile,
            "started": self.started,
            "load_start": self.load.0,
            "load_end": self.load.1,
            "cpus": self.cpus,
            "spread_ms": self.spread_ms,
            "timeout_seconds": self.timeout_secs,
            "seeding": self.seeding.json(),
            "series": self.series.iter().map(Series::json).collect::<Vec<_>>(),
            "ok": self.ok(),
        })
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let s = &self.seeding;
        let ms = |v: f64| format!("{:.0} ms", v * 1000.0);
        let mut out = format!(
            "lab_latency: {} build ({}), {} CPUs, started {}, load {} -> {}\n\n",
            self.profile, self.binary, self.cpus, self.started, self.load.0, self.load.1
        );
        out += &format!(
            "seeding: {} users with passwords over {} connections in {:.1} s ({:.0} users/s)\n",
            s.users,
            s.connections,
            s.seed_seconds,
            s.users as f64 / s.seed_seconds.max(1e-9)
        );
        out += &format!(
            "initial sync: DirSync {} entries in {:.2} s ({:.0}/s); PHS (MS-DRSR) {} objects, {} hashes: replication {:.2} s + hashing {:.2} s ({:.0} objects/s)\n",
            s.dirsync_entries,
            s.dirsync_ms as f64 / 1000.0,
            Seeding::rate(s.dirsync_entries, s.dirsync_ms),
            s.phs_objects,
            s.phs_hashes,
            s.phs_replication_ms as f64 / 1000.0,
            s.phs_hashing_ms as f64 / 1000.0,
            Seeding::rate(s.phs_objects, s.phs_replication_ms + s.phs_hashing_ms)
        );
        out += &format!(
            "  agent start -> Graph lists all {} users: {:.2} s; -> sample users sign in: {:.2} s; Graph users {} -> {}\n\n",
            s.users,
            s.graph_complete_seconds,
            s.signin_complete_seconds,
            s.tenant_users_before,
            s.tenant_users
        );
        out += "p50 / p99 / max, ms, from the modify's return:\n";
        out += &format!(
            "{:<9} {:>7} {:>6} | {:>20} | {:>20} | {:>20} | {:>22}\n",
            "change",
            "changes",
            "failed",
            "modify -> visible",
            "watcher notified",
            "agent notified",
            "visible - agent notif."
        );
        for series in &self.series {
            let row = |st: Stats| {
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    st.p50 * 1000.0,
                    st.p99 * 1000.0,
                    st.max * 1000.0
                )
            };
            out += &format!(
                "{:<9} {:>7} {:>6} | {:>20} | {:>20} | {:>20} | {:>22}\n",
                series.kind,
                series.samples.len(),
                series.failures(),
                row(series.latency()),
                row(series.notification()),
                row(series.agent_notification()),
                row(series.beyond_notification())
            );
        }
        for series in &self.series {
            out += &format!(
                "{}: visible = {}; p50 latency - p50 of the agent's notification = {}\n",
                series.kind,
                series.visible_means,
                ms(series.latency().p50 - series.agent_notification().p50)
            );
        }
        out
    }
}
