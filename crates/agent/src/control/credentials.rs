//! The agent's credentials file, written by `cloudsync agent register` and read by `sync-once`/`run`.
//!
//! Format (JSON, mode 0600, written to a temporary file and renamed):
//! ```json
//! {"agentId": "…", "tenantId": "…", "clientId": "…", "clientSecret": "…",
//!  "tokenEndpoint": "/{tenant}/oauth2/v2.0/token",
//!  "configurations": {"corp.example.test": "<configuration id>"}}
//! ```
//! A file readable by group or others is refused: it holds the client secret.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

/// What registration produced.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCredentials {
    /// The agent's id (heartbeats go to `/api/v1/agents/{agentId}/heartbeat`).
    pub agent_id: Uuid,
    /// The tenant's id.
    pub tenant_id: Uuid,
    /// The client id for the client-credentials grant.
    pub client_id: String,
    /// The client secret (never logged).
    #[serde(with = "secret_string")]
    pub client_secret: Zeroizing<String>,
    /// The token endpoint path relative to the tenant's base URL.
    pub token_endpoint: String,
    /// Configuration id per domain DNS name (lower case).
    #[serde(default)]
    pub configurations: BTreeMap<String, Uuid>,
    /// The X25519 private key password writeback requests are sealed to (32 bytes, standard base64;
    /// never logged). Made at registration, or by the daemon for an agent registered before it existed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_secret_string"
    )]
    pub writeback_private_key: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("agent_id", &self.agent_id)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field(
                "writeback_private_key",
                &self.writeback_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("configurations", &self.configurations)
            .finish()
    }
}

/// Why the credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is readable by group or others; it must be 0600.
    #[error(
        "{path} has mode {mode:o}: it holds the client secret and must not be readable by group or others (chmod 600)"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not the JSON `agent register` writes.
    #[error("{path} is not a credentials file: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

impl AgentCredentials {
    /// Reads the file, refusing a group- or world-readable one.
    pub fn load(path: &Path) -> Result<AgentCredentials, CredentialsError> {
        let io = |source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = Zeroizing::new(std::fs::read(path).map_err(io)?);
        serde_json::from_slice(&text).map_err(|e| CredentialsError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes the file with mode 0600 (temporary file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let io = |source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = Zeroizing::new(serde_json::to_vec_pretty(self).map_err(|e| {
            CredentialsError::Malformed {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            cloudsync_private_fs::create_private_dir(dir).map_err(io)?;
        }
        cloudsync_private_fs::write_atomic(path, &json, 0o600).map_err(io)
    }

    /// The configuration a domain pushes to.
    pub fn configuration_for(&self, dns_name: &str) -> Option<Uuid> {
        self.configurations
            .get(&dns_name.to_ascii_lowercase())
            .copied()
    }
}

mod opt_secret_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(
        value: &Option<Zeroizing<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Zeroizing<String>>, D::Error> {
        Option::<String>::deserialize(d).map(|o| o.map(Zeroizing::new))
    }
}

mod secret_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(value: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
        String::deserialize(d).map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentCredentials {
        AgentCredentials {
            agent_id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            client_id: "client".into(),
            client_secret: Zeroizing::new("s3cret-value".into()),
            token_endpoint: "/t/oauth2/v2.0/token".into(),
            configurations: [("corp.example.test".to_string(), Uuid::from_u128(3))].into(),
            writeback_private_key: Some(Zeroizing::new("d2ItcHJpdmF0ZS1rZXk=".into())),
        }
    }

    #[test]
    fn round_trip_with_mode_0600_and_refuses_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/creds.json");
        sample().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = AgentCredentials::load(&path).unwrap();
        assert_eq!(back.client_secret.as_str(), "s3cret-value");
        assert_eq!(
            back.configuration_for("CORP.example.test"),
            Some(Uuid::from_u128(3))
        );
        assert!(!format!("{back:?}").contains("s3cret"));
        assert!(!format!("{back:?}").contains("d2ItcHJpdmF0ZS1rZXk"));
        assert_eq!(
            back.writeback_private_key.as_deref().map(String::as_str),
            Some("d2ItcHJpdmF0ZS1rZXk=")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            AgentCredentials::load(&path),
            Err(CredentialsError::TooOpen { mode: 0o640, .. })
        ));
    }
}
