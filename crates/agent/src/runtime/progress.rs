//! Progress of a full read: a spinner with a count on a terminal, structured log lines otherwise.
//! Nothing is drawn or logged until the first update, so delta passes stay silent.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Reports how many entries a full read has received so far.
#[derive(Debug)]
pub struct Progress {
    domain: String,
    interactive: bool,
    bar: OnceLock<ProgressBar>,
}

impl Progress {
    /// A progress reporter for one domain; draws only when stderr is a terminal and `interactive`.
    pub fn new(domain: &str, interactive: bool) -> Progress {
        Progress {
            domain: domain.to_string(),
            interactive: interactive && std::io::stderr().is_terminal(),
            bar: OnceLock::new(),
        }
    }

    fn spinner(&self) -> &ProgressBar {
        self.bar.get_or_init(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix}: {pos} entries read ({per_sec})")
            {
                bar.set_style(style);
            }
            bar.set_prefix(self.domain.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        })
    }

    /// Called with the running entry count.
    pub fn update(&self, entries: u64) {
        if self.interactive {
            self.spinner().set_position(entries);
        } else {
            tracing::info!(domain = %self.domain, entries, "Full read in progress.");
        }
    }

    /// Removes the spinner, if one was drawn.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}
