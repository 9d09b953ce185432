//! Progress of long work — a domain's full read, projecting the journal, pushing the outbox. Enters: the
//! running count (and, where known, the total). Leaves: a bar (with a total) or a spinner with the count
//! and the rate on a terminal, structured log lines otherwise (at most one per [`LOG_EVERY`], plus one
//! at the end). Nothing is drawn or logged until the first update, so small delta passes stay silent.
//!
//! Drawing uses `indicatif` (maintained, draws to stderr only when it is a terminal, rate and ETA built
//! in); the log lines carry the same numbers as fields (`stage`, `label`, `done`, `total`, `per_sec`).

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The shortest interval between two progress log lines of one reporter.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Work smaller than this is not reported (a delta of a few objects needs no progress).
pub const MIN_REPORTED: u64 = 1_000;

/// Reports the running count of one piece of long work.
#[derive(Debug)]
pub struct Progress {
    /// What is running: "full read", "projection", "push".
    stage: &'static str,
    /// Whose work: the domain, or "all domains".
    label: String,
    /// The unit counted: "entries read", "events projected", "operations acknowledged".
    unit: &'static str,
    total: Option<u64>,
    interactive: bool,
    started: Instant,
    bar: OnceLock<ProgressBar>,
    /// When the last log line was written (non-interactive).
    logged: Mutex<Option<Instant>>,
}

impl Progress {
    /// A full read of one domain (total unknown); draws only when stderr is a terminal and
    /// `interactive`.
    pub fn new(domain: &str, interactive: bool) -> Progress {
        Progress::stage("full read", domain, "entries read", None, interactive)
    }

    /// Any stage: `total` makes it a bar with an ETA, `None` a spinner.
    pub fn stage(
        stage: &'static str,
        label: &str,
        unit: &'static str,
        total: Option<u64>,
        interactive: bool,
    ) -> Progress {
        Progress {
            stage,
            label: label.to_string(),
            unit,
            total,
            interactive: interactive && std::io::stderr().is_terminal(),
            started: Instant::now(),
            bar: OnceLock::new(),
            logged: Mutex::new(None),
        }
    }

    /// Whether work of this size is reported at all.
    pub fn worth_reporting(&self) -> bool {
        self.total.is_none_or(|t| t >= MIN_REPORTED)
    }

    fn bar(&self) -> &ProgressBar {
        self.bar.get_or_init(|| {
            let (bar, template) = match self.total {
                Some(total) => (
                    ProgressBar::new(total),
                    format!(
                        "{{prefix}} {}: [{{bar:30}}] {{pos}}/{{len}} {} ({{per_sec}}, ETA {{eta}})",
                        self.stage, self.unit
                    ),
                ),
                None => (
                    ProgressBar::new_spinner(),
                    format!(
                        "{{spinner}} {{prefix}} {}: {{pos}} {} ({{per_sec}})",
                        self.stage, self.unit
                    ),
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar.set_prefix(self.label.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        })
    }

    fn per_sec(&self, done: u64) -> u64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            (done as f64 / secs) as u64
        } else {
            0
        }
    }

    /// Called with the running count.
    pub fn update(&self, done: u64) {
        if !self.worth_reporting() {
            return;
        }
        if self.interactive {
            self.bar().set_position(done);
            return;
        }
        let now = Instant::now();
        let Ok(mut logged) = self.logged.lock() else {
            return;
        };
        if logged.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            return;
        }
        *logged = Some(now);
        tracing::info!(
            stage = self.stage,
            label = %self.label,
            done,
            total = self.total,
            per_sec = self.per_sec(done),
            "{} in progress: {done} {}.",
            self.stage,
            self.unit
        );
    }

    /// Removes the bar, if one was drawn; without a terminal, a last line with the final count when
    /// any line was written.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }

    /// [`Progress::finish`] with the final count logged (non-interactive, when progress was shown).
    pub fn finish_at(&self, done: u64) {
        self.finish();
        let shown = self.logged.lock().map(|l| l.is_some()).unwrap_or(false);
        if !self.interactive && shown {
            tracing::info!(
                stage = self.stage,
                label = %self.label,
                done,
                total = self.total,
                per_sec = self.per_sec(done),
                "{} done: {done} {}.",
                self.stage,
                self.unit
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_work_is_not_reported_and_unknown_totals_always_are() {
        let small = Progress::stage("push", "all", "operations", Some(MIN_REPORTED - 1), false);
        assert!(!small.worth_reporting());
        small.update(10);
        assert!(small.logged.lock().map(|l| l.is_none()).unwrap_or(false));
        let large = Progress::stage("push", "all", "operations", Some(MIN_REPORTED), false);
        assert!(large.worth_reporting());
        large.update(10);
        assert!(large.logged.lock().map(|l| l.is_some()).unwrap_or(false));
        assert!(Progress::new("corp.example.test", false).worth_reporting());
    }

    #[test]
    fn log_lines_are_throttled() {
        let p = Progress::stage("projection", "all", "events", None, false);
        p.update(1);
        let first = p.logged.lock().ok().and_then(|l| *l);
        p.update(2);
        let second = p.logged.lock().ok().and_then(|l| *l);
        assert!(first.is_some());
        assert_eq!(
            first, second,
            "a second line within LOG_EVERY is not written"
        );
    }
}
