//! MS-DRSR replication. Enters: a DC, credentials, a replication cookie. Leaves: NT hashes by objectGUID, a new cookie.
//!
//! MS-DRSR replication client for password hash sync.
//!
//! Enters: a domain controller address, the sync account's credentials, and the stored replication
//! cookie. Leaves: NT hashes (in zeroizing [`crate::nt_hash::NtHash`]) keyed by objectGUID, plus the new
//! cookie — never written anywhere by this module; `source::phs` turns the hashes into salted OrgId
//! strings before anything reaches the journal.
//!
//! The path: endpoint mapper on port 135 ([`epm`]) → TCP connection to the DRSUAPI endpoint with an
//! NTLMv2 bind at packet privacy ([`transport`], [`pdu`], [`ntlm`], [`sealing`]) → IDL_DRSBind ([`drsuapi`]) →
//! IDL_DRSGetNCChanges V8 over the domain NC, page by page until `fMoreData` is false
//! ([`getncchanges`], [`replentinf`], [`prefix`], [`cookie`]) → IDL_DRSUnbind. Secrets are decrypted with the NTLM session key ([`secrets`]).
//!
//! The required rights are those of the cloud sync account: *Replicating Directory Changes* and
//! *Replicating Directory Changes All* on the domain NC.

pub mod client;
pub mod cookie;
pub mod drsuapi;
pub mod epm;
pub mod error;
pub mod getncchanges;
pub mod ndr;
pub mod ntlm;
pub mod pdu;
pub mod prefix;
pub mod replentinf;
pub mod sealing;
pub mod secrets;
pub mod transport;

pub use client::{DrsrClient, DrsrSettings, ReplicatedHash, ReplicationRun};
pub use cookie::Cookie;
pub use error::DrsrError;
