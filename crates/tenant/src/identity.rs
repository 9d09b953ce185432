//! The tenant's identity (id, domain, environment) and its admin users, from a seed file.
//!
//! # Seed file (TOML)
//! ```toml
//! tenant_id = "6f1c…"                 # optional; otherwise generated once and kept in the state
//! domain = "contoso.onmicrosoft.com"  # the tenant's initial domain
//! [[users]]
//! user_principal_name = "admin@contoso.onmicrosoft.com"
//! password = "…"                      # lab only: keep the seed file 0600
//! roles = ["GlobalAdministrator"]     # or HybridIdentityAdministrator, or [] / ["User"]
//! ```
//! Without a seed file the tenant creates one Global Administrator `admin@<domain>` with a random
//! password and writes it to `<state>/admin-password` (mode 0600). Passwords are held in memory only as
//! salted PBKDF2 values; the seed file is the source of truth and is re-read at every start.

use std::path::Path;

use rand::RngCore;
use serde::Deserialize;
use uuid::Uuid;

use cloudsync_api::Environment;
use cloudsync_api::auth::Role;

use super::orgid::{constant_time_eq, pbkdf2_hmac_sha256};

/// Errors loading the seed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The seed file could not be read or written.
    #[error("seed file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The seed file is not valid TOML of the expected shape.
    #[error("seed file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parse error.
        source: toml::de::Error,
    },
    /// The seed file is readable or writable by group or others: it holds passwords.
    #[error(
        "seed file {path} is mode {mode:o}: it holds passwords, so it must be readable by its owner only (chmod 600 {path})"
    )]
    Open {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// The seed file's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Tenant id; generated when absent.
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
    /// The tenant's initial domain.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Admin and plain users.
    #[serde(default)]
    pub users: Vec<SeedUser>,
}

/// A seeded user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Sign-in name.
    pub user_principal_name: String,
    /// Cleartext password (lab only).
    pub password: String,
    /// Directory roles.
    #[serde(default)]
    pub roles: Vec<Role>,
}

fn default_domain() -> String {
    "cloudsync.onmicrosoft.com".to_owned()
}

impl Seed {
    /// Reads a seed file.
    /// Loads the seed file, refusing one that group or others may read or change (it holds the
    /// seeded users' passwords).
    pub fn load(path: &Path) -> Result<Seed, SeedError> {
        use std::os::unix::fs::PermissionsExt as _;
        let io = |source| SeedError::Io {
            path: path.display().to_string(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SeedError::Open {
                path: path.display().to_string(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        toml::from_str(&text).map_err(|source| SeedError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

/// A cloud-only user who can sign in with the password grant.
#[derive(Debug, Clone)]
pub struct AdminUser {
    /// Stable object id derived from the UPN.
    pub id: Uuid,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Roles; an empty list means a plain user.
    pub roles: Vec<Role>,
    salt: [u8; 16],
    key: [u8; 32],
}

const ADMIN_PBKDF2_ITERATIONS: u32 = 10_000;

impl AdminUser {
    /// Builds a user, keeping only a salted PBKDF2 value of the password.
    pub fn new(upn: &str, password: &str, roles: Vec<Role>) -> AdminUser {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let mut key = [0u8; 32];
        pbkdf2_hmac_sha256(
            password.as_bytes(),
            &salt,
            ADMIN_PBKDF2_ITERATIONS,
            &mut key,
        );
        AdminUser {
            id: stable_id(upn),
            user_principal_name: upn.to_owned(),
            roles,
            salt,
            key,
        }
    }

    /// Whether the password is right.
    pub fn check_password(&self, password: &str) -> bool {
        let mut key = [0u8; 32];
        pbkdf2_hmac_sha256(
            password.as_bytes(),
            &self.salt,
            ADMIN_PBKDF2_ITERATIONS,
            &mut key,
        );
        constant_time_eq(&key, &self.key)
    }
}

/// A stable object id for a seeded user: the first 16 bytes of SHA-256 over the lower-cased UPN.
fn stable_id(upn: &str) -> Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(upn.to_lowercase().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Who the tenant is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Tenant id.
    pub tenant_id: Uuid,
    /// Initial domain.
    pub domain: String,
    /// Emulated cloud.
    pub environment: Environment,
    /// Seeded users.
    pub users: Vec<AdminUser>,
}

impl Identity {
    /// Whether a `{tenant}` path segment names this tenant (its id or its domain, case-insensitive).
    pub fn matches(&self, segment: &str) -> bool {
        segment.eq_ignore_ascii_case(&self.domain)
            || Uuid::parse_str(segment).is_ok_and(|id| id == self.tenant_id)
    }

    /// Finds a seeded user by UPN (case-insensitive).
    pub fn user(&self, upn: &str) -> Option<&AdminUser> {
        self.users
            .iter()
            .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
    }
}

/// A random password for the generated admin: 24 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const SEED: &str = "[[users]]\nuser_principal_name = \"ga@contoso.onmicrosoft.com\"\npassword = \"Ga-Passw0rd!\"\nroles = [\"GlobalAdministrator\"]\n";

    #[test]
    fn a_seed_file_others_may_read_is_refused_and_a_private_one_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.toml");
        std::fs::write(&path, SEED).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Seed::load(&path).unwrap_err();
            assert!(
                matches!(err, SeedError::Open { mode: m, .. } if m == mode),
                "{mode:o}: {err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let seed = Seed::load(&path).unwrap();
        assert_eq!(seed.users.len(), 1);
    }
}
