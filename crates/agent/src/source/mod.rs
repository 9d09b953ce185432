//! Sources. Enters: Active Directory (LDAP, MS-DRSR, Samba's ldap_priv). Leaves: events through an [`EventSink`].
//!
//! Sources: readers of Active Directory that turn directory changes into journal events.
//!
//! - [`ldap`] — the DirSync change feed (and the uSNChanged fallback).
//! - [`drsr`] — MS-DRSR replication for password hash sync.
//! - [`samba_priv`] — Samba's root-only `ldap_priv` socket, the local alternative on a Samba DC.
//! - [`phs`] — password hash sync: replicate NT hashes (via [`drsr`] or [`samba_priv`]), hash them with
//!   the [`crate::phs`] library, append the salted strings with the cookie.
//!
//! Enters: a domain's configuration and its last checkpoint. Leaves: batches of [`Event`]s, each handed to
//! an [`EventSink`] together with the checkpoint that covers it, in one call (DESIGN invariant 2).

use std::future::Future;

use crate::event::{Event, SourceKind};

pub mod drsr;
pub mod ldap;
pub mod phs;
pub mod samba_priv;

/// A checkpoint written atomically with the events it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCheckpoint {
    /// The domain's DNS name.
    pub domain: String,
    /// The reader owning the checkpoint.
    pub source: SourceKind,
    /// Opaque bytes (format owned by the source; see [`ldap::checkpoint`]).
    pub data: Vec<u8>,
}

/// An append failure, as reported by the sink.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// The sink's message.
    pub message: String,
    /// True when the same append may succeed later (e.g. a full queue); false for a poisoned store.
    pub retriable: bool,
}

impl SinkError {
    /// True when the same append may succeed later.
    pub fn is_retriable(&self) -> bool {
        self.retriable
    }
}

/// Where sources put their events: the journal in production. `append` must be durable on return and
/// atomic with the checkpoint.
pub trait EventSink: Send + Sync {
    /// The last checkpoint stored for this domain and source.
    fn checkpoint(&self, domain: &str, source: SourceKind) -> Result<Option<Vec<u8>>, SinkError>;

    /// Appends events and (optionally) the checkpoint covering them, durably and atomically.
    /// Returns the sequence number of the last event written, if any.
    fn append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<SourceCheckpoint>,
    ) -> impl Future<Output = Result<Option<u64>, SinkError>> + Send;
}
