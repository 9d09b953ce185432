//! The daemon's status file (format in the [module doc](super)): where it lives, how it is written
//! atomically with mode 0600, how `agent status` reads it, and the lock probe that decides between
//! the file and the databases.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::collect::{RegistrationState, Sources, StatusError, collect};
use super::{AgentStatusReport, ReportSource};
use crate::config::Config;
use crate::control::credentials::AgentCredentials;
use crate::journal::Journal;
use crate::projection::store::ProjectionStore;
use crate::push::{Outbox, PushStatus};

/// How often the daemon rewrites the file (and at once when deletes are staged or released).
pub const WRITE_EVERY: Duration = Duration::from_secs(5);
/// A daemon's file older than this is reported as stale (the daemon may be stuck).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// The status file of the agent configured by `config`: `agent-status.json` beside the journal.
pub fn path(config: &Config) -> PathBuf {
    config.agent.journal_dir.with_file_name("agent-status.json")
}

/// Whether another process (a running `agent run`) holds the store in `dir`: probes the `flock`
/// sled takes on `dir/db` (journal, projection store) or the outbox takes on `dir/lock`, without
/// waiting. A missing store is not held.
pub fn held_by_another_process(dir: &Path) -> bool {
    ["db", crate::push::outbox::LOCK_FILE]
        .iter()
        .any(|name| flock_held(&dir.join(name)))
}

fn flock_held(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// Writes `report` to `path` atomically: a 0600 temporary file, flushed, renamed over the old one.
pub fn write(path: &Path, report: &AgentStatusReport) -> Result<(), StatusError> {
    let io = |source| StatusError::File {
        path: path.to_path_buf(),
        source,
    };
    let body = serde_json::to_vec_pretty(report).map_err(|e| StatusError::FileFormat {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    cloudsync_private_fs::write_atomic(path, &body, 0o600).map_err(io)
}

/// Reads the daemon's report from `path`.
pub fn read(path: &Path) -> Result<AgentStatusReport, StatusError> {
    let bytes = std::fs::read(path).map_err(|source| StatusError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let report: AgentStatusReport =
        serde_json::from_slice(&bytes).map_err(|e| StatusError::FileFormat {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if report.format != super::FORMAT {
        return Err(StatusError::FileFormat {
            path: path.to_path_buf(),
            message: format!(
                "format {} (this build reads {})",
                report.format,
                super::FORMAT
            ),
        });
    }
    Ok(report)
}

/// What the daemon's status writer reads from.
pub struct Writer {
    /// The configuration.
    pub config: Config,
    /// The registration (`None` without a `[tenant]`).
    pub creds: Option<AgentCredentials>,
    /// The journal.
    pub journal: Journal,
    /// Projection's store (with a `[tenant]`).
    pub projection: Option<ProjectionStore>,
    /// The outbox (with a `[tenant]`).
    pub outbox: Option<Arc<Outbox>>,
    /// The push stage's published status.
    pub push: Option<watch::Receiver<PushStatus>>,
    /// The tenant's settings in force (with refusals, which only the daemon knows).
    pub cloud: Option<Arc<crate::runtime::cloud_config::CloudSettings>>,
}

impl Writer {
    fn write_once(&self, path: &Path) -> Result<(), StatusError> {
        let live_quarantine = self
            .push
            .as_ref()
            .and_then(|rx| rx.borrow().quarantine.as_ref().map(|q| q.to_string()));
        let registration = match (&self.config.tenant, &self.creds) {
            (None, _) => RegistrationState::NoTenant,
            (Some(_), Some(c)) => RegistrationState::Registered(c),
            (Some(_), None) => RegistrationState::NotLoaded,
        };
        let mut report = collect(&Sources {
            config: &self.config,
            registration,
            journal: Some(&self.journal),
            projection: self.projection.as_ref(),
            outbox: self.outbox.as_deref(),
            live_quarantine,
            source: ReportSource::Daemon,
        })?;
        if let Some(cloud) = &self.cloud {
            let live = cloud.status();
            for d in &mut report.domains {
                if let Some(c) = live.get(&d.domain.to_ascii_lowercase()) {
                    if let Some(r) = &c.refused {
                        report.attention.push(super::Attention {
                            kind: super::AttentionKind::Other,
                            message: format!(
                                "The tenant's configuration of {} (revision {}) was refused, revision {} stays in force; fix it in the tenant: {}",
                                d.domain,
                                r.revision,
                                c.revision,
                                r.errors.join("; ")
                            ),
                        });
                    }
                    d.cloud = Some(c.clone());
                }
            }
        }
        write(path, &report)
    }

    /// Rewrites the status file every [`WRITE_EVERY`], at once when `wake` fires, and a last time
    /// when `cancel` fires. Failures are logged and retried on the next round.
    pub async fn run(self, wake: Arc<Notify>, cancel: CancellationToken) {
        let path = path(&self.config);
        loop {
            if let Err(e) = self.write_once(&path) {
                tracing::warn!(error = %e, file = %path.display(), "Could not write the status file; `agent status` shows older figures.");
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(WRITE_EVERY) => {}
            }
        }
        if let Err(e) = self.write_once(&path) {
            tracing::warn!(error = %e, file = %path.display(), "Could not write the final status file.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_lock_probe_sees_a_held_sled_database() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!held_by_another_process(dir.path()), "no database yet");
        let db = sled::open(dir.path()).unwrap();
        assert!(held_by_another_process(dir.path()), "sled holds its flock");
        drop(db);
    }

    #[test]
    fn the_lock_probe_sees_an_open_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = crate::push::Outbox::open(dir.path()).unwrap();
        assert!(
            held_by_another_process(dir.path()),
            "the outbox holds its flock"
        );
        drop(outbox);
        assert!(!held_by_another_process(dir.path()), "released on drop");
    }

    #[test]
    fn the_file_is_written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent-status.json");
        let report = AgentStatusReport {
            format: super::super::FORMAT,
            generated_at: "2026-01-01T00:00:00.000Z".into(),
            source: ReportSource::Daemon,
            registration: None,
            journal: Default::default(),
            projection: Default::default(),
            domains: vec![],
            push: None,
            attention: vec![],
            tenant: None,
        };
        write(&p, &report).unwrap();
        write(&p, &report).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read(&p).unwrap(), report);
        std::fs::write(&p, br#"{"format": 99}"#).unwrap();
        assert!(matches!(read(&p), Err(StatusError::FileFormat { .. })));
    }
}
