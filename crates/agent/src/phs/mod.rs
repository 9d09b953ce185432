//! Password hash sync, the pure library: NT hash in, salted OrgId string out.
//!
//! Enters: NT hashes ([`crate::nt_hash::NtHash`], 16 bytes in zeroizing buffers). Leaves:
//! [`OrgIdHash`] values, written as the contract's `v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;`
//! string ([`cloudsync_api::orgid`]) — the only form of a password that may reach the journal (DESIGN
//! invariant 4) — and the FIPS policy's decision whether hashing may run at all.
//!
//! - [`orgid`]  — the salted OrgId hash of an NT hash (formatted and parsed through the contract).
//! - [`kernel`] — PBKDF2-HMAC-SHA256 over the raw SHA-256 compression function (precomputed HMAC
//!   states, pre-padded blocks, optional multi-lane interleave).
//! - [`pool`]   — hashing threads on all cores behind a bounded queue, callable from async code.
//! - [`fips`]   — the FIPS policy gate (`fips.enforce`, `fips.allow_md5_for_password_hash_sync`).
//!
//! Who reads the hashes and journals the strings is a source: `source::phs` (the replication cycle
//! and the `[phs]` settings), which calls this library for the hashing (and its FIPS gate). This
//! module imports nothing of `source/`: it does no I/O beyond the FIPS policy file.

pub mod fips;
pub mod kernel;
pub mod orgid;
pub mod pool;

pub use fips::{FipsDecision, FipsError, FipsSettings};
pub use orgid::OrgIdHash;
pub use pool::HashPool;

/// Errors of the hashing library.
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
}

impl PhsError {
    /// Whether retrying later may succeed (policy refusals need a configuration change first).
    pub fn is_retriable(&self) -> bool {
        match self {
            PhsError::Spawn(_) => true,
            PhsError::Fips(_) | PhsError::PoolClosed => false,
        }
    }
}
