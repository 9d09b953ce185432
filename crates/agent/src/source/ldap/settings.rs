//! One domain's `[domains.<label>]` settings: where the DC is, how to bind, how to read changes. Owned by the
//! LDAP source (every reader in this folder takes a [`DomainConfig`]); `crate::config` loads, layers and
//! validates them with the rest of the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::nt_hash::NtHash;
use crate::secret::Secret;

/// How the service account binds (`bind_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BindMethod {
    /// LDAP simple bind with the password.
    #[default]
    Simple,
    /// NTLMv2 over SASL `GSS-SPNEGO` from the password's NT hash (TLS only; `bind_dn` as
    /// `DOMAIN\user` or a UPN). The form a group managed service account uses.
    Ntlm,
}

/// Which kind of service account a domain binds as (`account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AccountForm {
    /// A regular account whose password the agent keeps (`password` or `password_file`).
    #[default]
    Password,
    /// A group managed service account: the DC keeps its password and serves it to this host's
    /// computer account (`gmsa_dn`, `host_dn`, `host_password_file`); the agent binds with NTLM from
    /// the hash it reads ([`crate::account::gmsa`]).
    Gmsa,
}

/// What the bind presents: a password (simple bind) or an NT hash (NTLM bind, see
/// [`super::ntlm_bind`]). A gMSA only ever has the second.
#[derive(Debug, Clone)]
pub enum BindCredential {
    /// A cleartext password, sent in an LDAP simple bind.
    Password(Secret),
    /// An NT hash, proven with NTLMv2 over SASL `GSS-SPNEGO`.
    NtHash(NtHash),
}

/// How changes are read from a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// The DirSync control (needs "Replicating Directory Changes", or `object_security`).
    #[default]
    Dirsync,
    /// Paged search on `uSNChanged` for accounts without the DirSync right; **cannot see deletes**
    /// unless the account can read tombstones.
    UsnPoll,
}

/// One domain: its own connection, cookie and status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The domain's DNS name (`corp.example.test`), stamped on every event.
    pub dns_name: String,
    /// `ldaps://host:636` or `ldap://host:389` (with `starttls = true`).
    pub url: String,
    /// The NC head to read; derived from `dns_name` when absent.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// The service account, as UPN (`svc@corp.example.test`) or DN; for a gMSA its NTLM name
    /// (`provAgentgMSA$@corp.example.test`).
    pub bind_dn: String,
    /// `password` (default): a regular account and its password; `gmsa`: a group managed service
    /// account whose password this host reads from the DC.
    #[serde(default)]
    pub account: AccountForm,
    /// With `account = "gmsa"`: the gMSA's DN (`CN=provAgentgMSA,CN=Managed Service Accounts,…`).
    #[serde(default)]
    pub gmsa_dn: Option<String>,
    /// With `account = "gmsa"`: this host's computer account DN, which reads the gMSA's password.
    #[serde(default)]
    pub host_dn: Option<String>,
    /// With `account = "gmsa"`: the file (0600) holding the computer account's password.
    #[serde(default)]
    pub host_password_file: Option<PathBuf>,
    /// The bind password (prefer `password_file` or the environment).
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the bind password (first line; should be mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `simple` (default) or `ntlm`: NTLMv2 from the password's NT hash over LDAPS/StartTLS.
    #[serde(default)]
    pub bind_method: BindMethod,
    /// PEM file with the CA(s) that sign the DC's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Skip certificate verification (labs only; logged as a warning at every start).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Allow `ldap://` without StartTLS (labs only; the password crosses the wire in clear).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// TCP + TLS connect timeout, seconds.
    #[serde(default = "default_timeout")]
    pub connect_timeout_secs: u64,
    /// Per-operation timeout, seconds.
    #[serde(default = "default_timeout")]
    pub operation_timeout_secs: u64,
    /// Delta poll interval, seconds (minimum 1).
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// Keep a change-notification search open to run deltas as soon as something changes.
    #[serde(default = "default_true")]
    pub notifications: bool,
    /// DirSync or the uSNChanged fallback.
    #[serde(default)]
    pub mode: SyncMode,
    /// Send `LDAP_DIRSYNC_OBJECT_SECURITY` (for accounts without "Replicating Directory Changes").
    #[serde(default)]
    pub object_security: bool,
    /// Page size of the uSNChanged fallback.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The tenant configuration this domain pushes to; default: the one `agent register` recorded.
    #[serde(default)]
    pub configuration_id: Option<uuid::Uuid>,
}

fn default_timeout() -> u64 {
    30
}
fn default_poll() -> u64 {
    120
}
fn default_true() -> bool {
    true
}
fn default_page_size() -> u32 {
    500
}

/// A secret file's first line (the password files' format: one line, 0600), read through a
/// zeroizing buffer.
pub fn first_line(path: &Path) -> Result<Secret, std::io::Error> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
    Ok(Secret::new(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

impl DomainConfig {
    /// The NC head: `base_dn`, or `DC=corp,DC=example,DC=test` from `dns_name`.
    pub fn base(&self) -> String {
        match &self.base_dn {
            Some(b) => b.clone(),
            None => self
                .dns_name
                .split('.')
                .filter(|p| !p.is_empty())
                .map(|p| format!("DC={p}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The bind password, from `password` or the first line of `password_file`.
    pub fn resolve_password(&self) -> Result<Secret, std::io::Error> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        first_line(self.password_file.as_deref().unwrap_or(Path::new("")))
    }

    /// This domain's connection settings bound as `bind_dn` with `password` (simple bind) instead of
    /// the configured service account: for the domain administrator during install and
    /// `permissions set`, and for the host computer account reading a gMSA's password.
    pub fn as_account(&self, bind_dn: &str, password: Secret) -> DomainConfig {
        DomainConfig {
            account: AccountForm::Password,
            bind_dn: bind_dn.to_string(),
            password: Some(password),
            password_file: None,
            bind_method: BindMethod::Simple,
            gmsa_dn: None,
            host_dn: None,
            host_password_file: None,
            ..self.clone()
        }
    }

    /// The host computer account's password (`host_password_file`'s first line), for the gMSA form.
    pub fn host_password(&self) -> Result<Secret, std::io::Error> {
        first_line(self.host_password_file.as_deref().unwrap_or(Path::new("")))
    }

    /// What the configured bind presents: the password for `simple`, its NT hash for `ntlm`. For a
    /// gMSA there is nothing configured to present: [`crate::account::gmsa::hashes`] reads it.
    pub fn bind_credential(&self) -> Result<BindCredential, std::io::Error> {
        let password = self.resolve_password()?;
        Ok(match self.bind_method {
            BindMethod::Simple => BindCredential::Password(password),
            BindMethod::Ntlm => BindCredential::NtHash(NtHash::from_password(password.expose())),
        })
    }

    /// True when the connection is TLS-protected (`ldaps://` or StartTLS).
    pub fn uses_tls(&self) -> bool {
        self.url.to_ascii_lowercase().starts_with("ldaps://") || self.starttls
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The operation timeout.
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_secs(self.operation_timeout_secs)
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval_secs.max(1))
    }
}
