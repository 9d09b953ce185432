//! What a run is asked to do: the stages (`--stages`) and the options of [`super::run`].

use std::path::PathBuf;

use super::error::BenchError;

/// The stages `--stages` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    /// The initial read appended to the journal (always: every other stage reads the journal).
    pub journal: bool,
    /// Password hashes computed and appended.
    pub phs: bool,
    /// Projection into the outbox.
    pub projection: bool,
    /// Push over HTTPS to the tenant (and the delta round).
    pub push: bool,
    /// The tenant read back over Graph.
    pub tenant: bool,
}

impl Stages {
    /// The names `--stages` accepts, in running order.
    pub const NAMES: [&'static str; 5] = ["journal", "phs", "projection", "push", "tenant"];

    /// Every stage.
    pub fn all() -> Stages {
        Stages {
            journal: true,
            phs: true,
            projection: true,
            push: true,
            tenant: true,
        }
    }

    /// Parses a comma-separated list; a stage needs the one it reads (projection the journal,
    /// push projection, tenant push).
    pub fn parse(list: &str) -> Result<Stages, BenchError> {
        let mut s = Stages {
            journal: false,
            phs: false,
            projection: false,
            push: false,
            tenant: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let slot = match name {
                "journal" => &mut s.journal,
                "phs" => &mut s.phs,
                "projection" => &mut s.projection,
                "push" => &mut s.push,
                "tenant" => &mut s.tenant,
                other => {
                    return Err(BenchError::Stages(format!(
                        "unknown stage `{other}` (stages: {})",
                        Self::NAMES.join(",")
                    )));
                }
            };
            *slot = true;
        }
        let needs = [
            (
                s.phs || s.projection,
                s.journal,
                "phs and projection need journal",
            ),
            (s.push, s.projection, "push needs projection"),
            (s.tenant, s.push, "tenant needs push"),
            (true, s.journal, "every run starts with journal"),
        ];
        match needs.iter().find(|(wanted, has, _)| *wanted && !*has) {
            Some((_, _, why)) => Err(BenchError::Stages((*why).to_string())),
            None => Ok(s),
        }
    }

    /// The selected names, in running order.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.journal,
            self.phs,
            self.projection,
            self.push,
            self.tenant,
        ];
        Self::NAMES
            .into_iter()
            .zip(on)
            .filter_map(|(n, on)| on.then_some(n))
            .collect()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Synced objects (users + groups + contacts).
    pub objects: u64,
    /// The generator's seed.
    pub seed: u64,
    /// The stages.
    pub stages: Stages,
    /// Percent of the objects the delta round changes (0: no delta round).
    pub churn_percent: f64,
    /// Where the run keeps its stores (must be empty or absent).
    pub state_dir: PathBuf,
    /// The `cloudsync` executable, for `tenant serve`.
    pub tenant_exe: PathBuf,
    /// Draw progress bars on a terminal (log lines otherwise).
    pub interactive: bool,
    /// The tenant's write budget (`--write-capacity`, `--write-refill-per-second`); `None`: unthrottled.
    pub write_budget: Option<WriteBudget>,
}

/// A token bucket of writes the tenant process enforces (`tenant serve --write-capacity C
/// --write-refill-per-second R`): it starts full, each operation costs one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteBudget {
    /// Operations the bucket holds (the burst).
    pub capacity: f64,
    /// Operations refilled per second (the sustained ceiling).
    pub refill_per_second: f64,
}

impl WriteBudget {
    /// The most operations the tenant can accept in `seconds` from a full bucket.
    pub fn ceiling(&self, seconds: f64) -> f64 {
        self.capacity + self.refill_per_second * seconds
    }

    /// The tenant's flags for this budget.
    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--write-capacity".into(),
            self.capacity.to_string(),
            "--write-refill-per-second".into(),
            self.refill_per_second.to_string(),
        ]
    }
}
