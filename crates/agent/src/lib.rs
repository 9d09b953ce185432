//! cloudsync's agent library. Enters: Active Directory (LDAP DirSync, MS-DRSR) and a layered configuration.
//! Leaves: a durable event journal, the projected cloud objects and operations, and HTTPS batches to a
//! tenant's provisioning API.
//!
//! Changes read from Active Directory are first made durable in the journal; everything downstream
//! (projection, push to the cloud directory) is a deterministic function of it. The agent meets the tenant
//! only through `cloudsync_api` and HTTPS: this crate never depends on `cloudsync-tenant`
//! (tests/crate_boundaries.rs). ARCHITECTURE.md has the code map and invariants.
//!
//! # Layout (in the order data flows)
//! - [`config`]  — loads and layers (defaults → TOML → `CLOUDSYNC_*` → `--set`) and validates; each stage
//!   owns its section's type.
//! - [`source`]  — readers of AD: the LDAP DirSync feed (+ uSNChanged fallback), MS-DRSR, Samba ldap_priv,
//!   and password hash sync as a source; all append through [`source::EventSink`].
//! - [`event`]   — the journal's event types, the heart of the system.
//! - [`journal`] — the sled event store: envelope codec, atomic append + checkpoints, cursors, recovery.
//! - [`projection`] — journal events to cloud objects: mappings, expressions, scoping, anchors, delete threshold.
//! - [`push`]    — the push stage: durable outbox, batches, retries, in-order checkpoint.
//! - [`runtime`] — what runs the stages: the daemon's tasks, the one `sync_once`, the sinks, the status file.
//! - [`writeback`] — password writeback: cloud resets and unlocks written into AD over LDAP, AD's answers
//!   mapped to the product's result codes (33001–33009).
//! - [`control`] — the agent's dealings with the tenant: the one HTTP client, registration, credentials,
//!   heartbeats and health, restarts; the start-up state check; and `agent install` as library steps.
//! - [`phs`]     — the pure hashing library: NT hash → salted OrgId string (PBKDF2 kernel, pool, FIPS policy).
//! - [`metrics`] — the process's Prometheus counters (a leaf; served by `runtime::metrics_task`).
//! - [`nt_hash`] — the zeroizing NT hash, shared by the readers that obtain it and `phs`, which hashes it.
//! - [`secret`]  — a string that never prints (bind passwords).
//! - [`bench`]   — the throughput harness of `cloudsync bench`: a seeded synthetic directory through the
//!   real stages to a local tenant process, each stage measured next to its limit.

pub mod account;
pub mod bench;
pub mod config;
pub mod control;
pub mod event;
pub mod journal;
pub mod metrics;
pub mod nt_hash;
pub mod ntlmssp;
pub mod phs;
pub mod projection;
pub mod push;
pub mod runtime;
pub mod secret;
pub mod source;
pub mod writeback;
