//! Progress of a full read: a spinner with a count on a terminal, structured log lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Reports how many entries a full read has received so far.
#[derive(Debug)]
pub struct Progress {
    domain: String,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress reporter for one domain; draws only when stderr is a terminal and `interactive`.
    pub fn new(domain: &str, interactive: bool) -> Progress {
        let bar = (interactive && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix}: {pos} entries read ({per_sec})")
            {
                bar.set_style(style);
            }
            bar.set_prefix(domain.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            domain: domain.to_string(),
            bar,
        }
    }

    /// Called with the running entry count.
    pub fn update(&self, entries: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(entries),
            None => tracing::info!(domain = %self.domain, entries, "Full read in progress."),
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
