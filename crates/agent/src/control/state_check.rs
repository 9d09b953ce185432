//! The agent's start-up check of its state on disk. Enters: the configuration. Leaves: `Ok`, or
//! every group- or world-accessible state path with the `chmod` that fixes it (rule and layers:
//! [`cloudsync_private_fs`]).

use std::path::PathBuf;

use crate::config::Config;
use cloudsync_private_fs::{CheckError, check_private};

/// The paths that hold the agent's secrets: journal, projection store, outbox, credentials file
/// (when a `[tenant]` is configured) and the daemon's status file.
pub fn state_paths(config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![
        config.agent.journal_dir.clone(),
        config.agent.projection_dir(),
        config.agent.outbox_dir(),
        crate::runtime::status::file::path(config),
    ];
    if let Some(t) = &config.tenant {
        paths.push(t.credentials_file.clone());
    }
    paths
}

/// Some state is not private.
#[derive(Debug, thiserror::Error)]
#[error("refusing to start: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct UnsafeState {
    /// One problem per offending state path.
    pub problems: Vec<CheckError>,
}

/// Checks every state path that exists; reports every offending one at once.
pub fn check_state(config: &Config) -> Result<(), UnsafeState> {
    let problems: Vec<CheckError> = state_paths(config)
        .iter()
        .filter_map(|p| check_private(p).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(UnsafeState { problems })
    }
}
