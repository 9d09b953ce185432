//! `[updater]`: the release key pinned at install and how an upgrade is applied. Enters: the TOML
//! table (through [`crate::config`], which validates it). Leaves: an [`UpdaterConfig`] for
//! `cloudsync updater run` ([`super::apply`]).
//!
//! ```toml
//! [updater]
//! public_key = "base64 of the 32-byte Ed25519 public key"   # absent: check and report only
//! restart_command = ["systemctl", "restart", "cloudsync-agent.service"]
//! health_deadline_secs = 120      # the new binary must heartbeat within this, or it is rolled back
//! slot_wait_secs = 600            # how long to wait for the tenant's upgrade slot before deferring
//! # binary = "/usr/local/bin/cloudsync"   # the file swapped; default: the running executable
//! ```

use std::path::PathBuf;

use base64::Engine;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// `[updater]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdaterConfig {
    /// Standard base64 of the release signing key's 32-byte Ed25519 public key, written by
    /// `agent install --release-public-key`. Without it the updater only checks and reports.
    pub public_key: Option<String>,
    /// The command (program and arguments, no shell) that restarts the agent after a swap and
    /// after a rollback.
    pub restart_command: Vec<String>,
    /// How long the new binary has to heartbeat to the tenant before it is rolled back, seconds.
    pub health_deadline_secs: u64,
    /// How long to wait for the tenant's upgrade slot before deferring to the next run, seconds.
    pub slot_wait_secs: u64,
    /// The binary to swap; default: the running executable (`/proc/self/exe`'s path).
    pub binary: Option<PathBuf>,
}

/// The default restart command.
pub const DEFAULT_RESTART: [&str; 3] = ["systemctl", "restart", "cloudsync-agent.service"];

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            public_key: None,
            restart_command: DEFAULT_RESTART.iter().map(|s| (*s).to_owned()).collect(),
            health_deadline_secs: 120,
            slot_wait_secs: 600,
            binary: None,
        }
    }
}

/// Parses a pinned key: standard base64 of 32 bytes that are an Ed25519 point.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("is not standard base64 ({e})"))?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("decodes to {} bytes, not 32", bytes.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "is not an Ed25519 public key".to_owned())
}

impl UpdaterConfig {
    /// Every problem, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(key) = &self.public_key
            && let Err(e) = parse_public_key(key)
        {
            out.push(("updater.public_key".into(), e));
        }
        if self
            .restart_command
            .first()
            .is_none_or(|p| p.trim().is_empty())
        {
            out.push((
                "updater.restart_command".into(),
                "must name a program, e.g. [\"systemctl\", \"restart\", \"cloudsync-agent.service\"]".into(),
            ));
        }
        if self.health_deadline_secs == 0 {
            out.push((
                "updater.health_deadline_secs".into(),
                "must be at least 1".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        assert_eq!(parse_public_key(&b64).unwrap(), key);
        assert!(parse_public_key("AAAA").unwrap_err().contains("3 bytes"));
        assert!(parse_public_key("!!").unwrap_err().contains("base64"));
        let bad = UpdaterConfig {
            public_key: Some("AAAA".into()),
            restart_command: vec![],
            health_deadline_secs: 0,
            ..UpdaterConfig::default()
        };
        let keys: Vec<_> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "updater.public_key",
                "updater.restart_command",
                "updater.health_deadline_secs"
            ]
        );
    }
}
