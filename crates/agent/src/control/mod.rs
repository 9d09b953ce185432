//! The agent's dealings with the tenant about itself. Enters: the `[tenant]` settings, the
//! installer's admin sign-in, the credentials file and projection's staged deletes. Leaves: the
//! registration (credentials file, mode 0600), heartbeats carrying the agent's health, and the
//! restarts the tenant hands over, passed to the runtime as re-read requests and delete releases.
//!
//! - [`tenant_client`] — the one HTTP client for the tenant (TLS pinning, tokens, form encoding),
//!   also used by the push stage; the `[tenant]` settings live with it.
//! - [`register`] — the installer flow (`agent register`); [`credentials`] — the file it writes.
//! - [`heartbeat`] — the heartbeat call and the daemon's heartbeat task; [`health`] — what a
//!   heartbeat says; [`restarts`] — carrying out the restarts heartbeats hand over.
//! - [`lease`] — the configurations this agent holds the lease of, and their epochs (from heartbeats).
//! - [`state_check`] — the start-up refusal of group- or world-accessible state.
//! - [`service_unit`] — the hardened systemd unit that runs the agent (`agent units`).
//! - [`updater`] — `cloudsync updater run`: the release channel, the signed download, the atomic
//!   swap, restart, health check and rollback; [`executable`] — the running binary's SHA-256 that
//!   heartbeats carry (the updater's health criterion).
//! - [`writeback_relay`] — password writeback's relay: the agent's X25519 key, the long poll for
//!   requests and the answers (the AD side is [`crate::writeback`]).
//! - [`doctor`] — `agent doctor`: every check of an installed agent, each failure with its fix.
//! - [`install`] — `agent install` (wizard and unattended), its cmdlets and `agent uninstall`, as
//!   library steps: sign-in, domains, files, registration, services, verification.
//!
//! Invariant: nothing here imports the tenant crate; only [`cloudsync_api`] wire types cross.

pub mod credentials;
pub mod doctor;
pub mod executable;
pub mod health;
pub mod heartbeat;
pub mod install;
pub mod lease;
pub mod register;
pub mod restarts;
pub mod service_unit;
pub mod state_check;
pub mod tenant_client;
pub mod updater;
pub mod writeback_relay;
