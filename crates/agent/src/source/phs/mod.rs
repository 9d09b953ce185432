//! Password hash sync as a source: NT hashes read from AD, hashed, appended through an [`EventSink`].
//!
//! Enters: the `[phs]` settings ([`settings`]), a domain's replication source (MS-DRSR via
//! [`super::drsr`], or Samba's `ldap_priv` socket via [`super::samba_priv`]) and the checkpoint the
//! sink holds for it (the DRSR cookie or the highest USN). Leaves: `Event::PasswordHashChanged`
//! events (salted OrgId strings only), each batch appended through the [`EventSink`] together with
//! the new checkpoint, like the DirSync feed's pages (DESIGN invariants 2 and 4).
//!
//! - [`cycle`]    — one cycle (read the checkpoint → replicate → hash → append) and its scheduling.
//! - [`settings`] — the `[phs]` configuration section.
//!
//! The hashing itself is the pure library [`crate::phs`] (pool, OrgId kernel, FIPS gate): that is the
//! only thing this module takes from it, and `phs` imports nothing of `source`.
//!
//! [`EventSink`]: super::EventSink

pub mod cycle;
pub mod settings;

pub use settings::{PhsSettings, PhsSourceKind};

use super::SinkError;
use super::drsr::DrsrError;
use super::samba_priv::SambaPrivError;
use crate::phs::PhsError;

/// Why a password hash sync cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The hashing library failed (FIPS refusal, no hashing thread, the pool shut down).
    #[error(transparent)]
    Phs(#[from] PhsError),
    /// MS-DRSR replication failed.
    #[error(transparent)]
    Drsr(#[from] DrsrError),
    /// Reading Samba's privileged socket failed.
    #[error(transparent)]
    SambaPriv(#[from] SambaPrivError),
    /// The sink refused the append or the checkpoint read.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The gMSA's password could not be read.
    #[error(transparent)]
    Gmsa(Box<crate::account::gmsa::GmsaError>),
}

impl CycleError {
    /// Whether retrying later may succeed (policy refusals need a configuration change first).
    pub fn is_retriable(&self) -> bool {
        match self {
            CycleError::Phs(e) => e.is_retriable(),
            CycleError::Drsr(e) => e.is_retriable(),
            CycleError::SambaPriv(e) => e.is_retriable(),
            CycleError::Sink(e) => e.is_retriable(),
            CycleError::Gmsa(e) => match e.as_ref() {
                crate::account::gmsa::GmsaError::Ldap { source, .. } => source.is_retriable(),
                _ => false,
            },
        }
    }
}
