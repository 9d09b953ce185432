//! The LDAP change feed: DirSync (or the uSNChanged fallback) from a domain NC into the journal.
//!
//! Enters: a [`DomainConfig`] and the domain's last checkpoint. Leaves: [`crate::event::Event`]s
//! appended to an [`crate::source::EventSink`], each page atomically with its new checkpoint.
//!
//! # One pass ([`dirsync::run_pass`])
//! 1. Load the checkpoint; none (or a rejected cookie) means a full read, announced by `ResyncStarted`.
//! 2. Search the NC head, subtree, with the DirSync control (critical; flags `ANCESTORS_FIRST_ORDER |
//!    INCREMENTAL_VALUES`, plus `OBJECT_SECURITY` when configured). Continuation references are ignored.
//! 3. Decode each entry with the non-panicking decoder ([`entry`]); complete ranged attributes
//!    ([`range`]); look up `objectClass`/`uSNChanged` of delta objects; classify ([`classify`]).
//! 4. Append. Samba returns a whole domain as one page and ignores `maxBytes`, so the pass buffers up
//!    to a memory budget: whenever the buffer exceeds it, the events go out **without** the cookie; the
//!    cookie travels only with the page's last chunk. A crash mid-page re-reads the page from the old
//!    cookie, which is harmless: full images, set-valued member deltas, moves and deletes are idempotent.
//! 5. While the server says `moreResults`, repeat with the new cookie.
//!
//! # Checkpoint format ([`checkpoint`])
//! ```text
//! DirSync:  u8 version = 1 | u8 flags (bit 0: a full read is in progress) | cookie bytes (opaque MSDS blob)
//! USN poll: u8 version = 1 | u8 flags (bit 0 as above) | u64 big-endian highest committed USN read
//! ```
//! The "full read in progress" bit makes a restart between two DirSync pages of a full read still end
//! with `ResyncCompleted`.
//!
//! # Low latency ([`notify`])
//! A second connection keeps a change-notification search (with Show Deleted) open; any entry on it
//! wakes the domain task, which runs a delta at once. A poll interval (default 120 s) backs it up.

pub mod backoff;
pub mod ber;
pub mod checkpoint;
pub mod classify;
pub mod conn;
pub mod control;
pub mod dirsync;
pub mod entry;
pub mod error;
pub mod notify;
pub mod ntlm_bind;
pub mod page;
pub mod range;
mod settings;
pub mod usn_poll;

pub use error::{BindFailure, LdapSourceError};
pub use settings::{AccountForm, BindCredential, BindMethod, DomainConfig, SyncMode, first_line};
