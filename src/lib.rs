//! cloudsync: an open, event-sourced re-implementation of a hybrid-identity cloud sync provisioning agent.
//!
//! Changes read from Active Directory are first made durable in a local journal; everything downstream
//! (projection, push to the cloud directory) is a deterministic function of that journal. The local tenant
//! (`cloudsync tenant serve`) emulates the cloud side. ARCHITECTURE.md has the code map and invariants.
//!
//! # Layout
//! - [`event`]   — the journal's event types, the heart of the system.
//! - [`journal`] — the sled event store: envelope codec, atomic append + checkpoints, cursors, recovery.
//! - [`cli`]     — clap commands (`journal`, `tenant`, `agent`, …); the binary in `main.rs` is thin.
//! - [`api`]     — the agent↔tenant contract: wire types shared by both sides.
//! - [`tenant`]  — the local tenant server (`cloudsync tenant serve`), the emulated cloud directory.
//! - [`source`]  — readers of AD (`source::drsr`: MS-DRSR replication for password hash sync).
//! - [`phs`]     — password hash sync: NT hash → salted OrgId string (PBKDF2 kernel, hashing pool, FIPS policy).

pub mod api;
pub mod cli;
pub mod event;
pub mod journal;
pub mod phs;
pub mod source;
pub mod tenant;
