//! cloudsync: an open, event-sourced re-implementation of a hybrid-identity cloud sync provisioning agent.
//!
//! Changes read from Active Directory are first made durable in a local journal; everything downstream
//! (projection, push to the cloud directory) is a deterministic function of that journal. The local tenant
//! (`cloudsync tenant serve`) emulates the cloud side. ARCHITECTURE.md has the code map and invariants.
//!
//! # Layout
//! - [`event`]   — the journal's event types, the heart of the system.
//! - [`journal`] — the sled event store: envelope codec, atomic append + checkpoints, cursors, recovery.
//! - [`config`]  — layered agent configuration (defaults → TOML → `CLOUDSYNC_*`), validation, secrets.
//! - [`source`]  — readers of AD: the LDAP DirSync feed (+ uSNChanged fallback), MS-DRSR, Samba ldap_priv.
//! - [`runtime`] — the data path at run time: `sync_once`, the daemon's tasks (`run_all`), the feeds, the sinks, status file.
//! - [`control`] — the agent and the tenant: the one tenant client, registration, credentials, heartbeats, restarts.
//! - [`projection`] — journal events to cloud objects: mappings, expressions, scoping, anchors, delete threshold.
//! - [`cli`]     — clap commands (`journal`, `tenant`, `agent`, …); the binary in `main.rs` is thin.
//! - [`api`]     — the agent↔tenant contract: wire types shared by both sides.
//! - [`tenant`]  — the local tenant server (`cloudsync tenant serve`), the emulated cloud directory.
//! - [`push`]    — the push stage: durable outbox, batches, retries, in-order checkpoint.
//! - [`phs`]     — password hash sync: NT hash → salted OrgId string (PBKDF2 kernel, hashing pool, FIPS policy).
//! - [`private_fs`] — private state on disk: umask 0o077, 0700 directories, the start-up mode check.

pub mod config;
pub mod control;
pub mod event;
pub mod journal;
pub mod phs;
pub mod projection;
pub mod push;
pub mod runtime;
pub mod source;
