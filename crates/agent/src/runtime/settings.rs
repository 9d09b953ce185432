//! The `[agent]` section: where the runtime keeps its state (journal, projection store, outbox) and how it
//! paces itself (memory budget per pass, shutdown grace). Owned by the runtime; `crate::config` loads,
//! layers and validates it with the rest of the file.

use std::path::PathBuf;

use serde::Deserialize;

/// Agent-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Where the event journal lives.
    pub journal_dir: PathBuf,
    /// Entries buffered per pass before a chunk is appended without the cookie, in KiB (approximate).
    pub memory_budget_kib: u64,
    /// How long `agent run` waits for passes to finish after SIGTERM before it gives up, in seconds.
    pub shutdown_grace_secs: u64,
    /// Projection's store (state snapshot, provisioning log); default: `projection` next to the journal.
    pub projection_dir: Option<PathBuf>,
    /// The push stage's outbox; default: `outbox` next to the journal.
    pub outbox_dir: Option<PathBuf>,
}

impl AgentConfig {
    fn beside_journal(&self, name: &str) -> PathBuf {
        self.journal_dir.with_file_name(name)
    }

    /// Where projection's store lives.
    pub fn projection_dir(&self) -> PathBuf {
        self.projection_dir
            .clone()
            .unwrap_or_else(|| self.beside_journal("projection"))
    }

    /// Where the outbox lives.
    pub fn outbox_dir(&self) -> PathBuf {
        self.outbox_dir
            .clone()
            .unwrap_or_else(|| self.beside_journal("outbox"))
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            journal_dir: PathBuf::from("/var/lib/cloudsync/journal"),
            memory_budget_kib: 64 * 1024,
            shutdown_grace_secs: 30,
            projection_dir: None,
            outbox_dir: None,
        }
    }
}
