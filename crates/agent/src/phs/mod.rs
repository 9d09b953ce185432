//! Password hash sync: NT hash in, salted OrgId string out.
//!
//! Enters: NT hashes (16 bytes, from `source::drsr` or `source::samba_priv`), only ever in zeroizing
//! buffers. Leaves: `v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;` strings ([`OrgIdHash`]) — the
//! only form of a password that may reach the journal (DESIGN invariant 4).
//!
//! - [`orgid`]  — the NT hash wrapper, the OrgId string, its parser.
//! - [`kernel`] — PBKDF2-HMAC-SHA256 over the raw SHA-256 compression function (precomputed HMAC
//!   states, pre-padded blocks, optional multi-lane interleave).
//! - [`pool`]   — hashing threads on all cores behind a bounded queue, callable from async code.
//! - [`cycle`]  — one PHS cycle: replicate → hash → journal the strings with the cookie; scheduling.
//! - [`settings`] — the `[phs]` configuration section.
//! - [`fips`]   — the FIPS policy gate (`fips.enforce`, `fips.allow_md5_for_password_hash_sync`).

pub mod cycle;
pub mod fips;
pub mod kernel;
pub mod orgid;
pub mod pool;
pub mod settings;

pub use fips::{FipsDecision, FipsError, FipsSettings};
pub use orgid::{NtHash, OrgIdError, OrgIdHash};
pub use pool::HashPool;
pub use settings::{PhsSettings, PhsSourceKind};

/// Errors of the PHS stage.
#[derive(Debug, thiserror::Error)]
pub enum PhsError {
    /// FIPS policy refuses the algorithms password hash sync needs.
    #[error(transparent)]
    Fips(#[from] FipsError),
    /// A hashing thread could not be started.
    #[error("cannot start a hashing thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The hashing pool has shut down.
    #[error("the hashing pool has shut down")]
    PoolClosed,
    /// MS-DRSR replication failed.
    #[error(transparent)]
    Drsr(#[from] crate::source::drsr::DrsrError),
    /// Reading Samba's privileged socket failed.
    #[error(transparent)]
    SambaPriv(#[from] crate::source::samba_priv::SambaPrivError),
    /// The journal refused the write or the checkpoint read.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

impl PhsError {
    /// Whether retrying later may succeed (policy refusals need a configuration change first).
    pub fn is_retriable(&self) -> bool {
        match self {
            PhsError::Spawn(_) => true,
            PhsError::Drsr(e) => e.is_retriable(),
            PhsError::SambaPriv(e) => e.is_retriable(),
            PhsError::Journal(e) => e.is_retriable(),
            PhsError::Fips(_) | PhsError::PoolClosed => false,
        }
    }
}
