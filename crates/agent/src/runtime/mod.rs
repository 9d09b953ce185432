//! The agent's data path at run time. Enters: a validated [`crate::config::Config`], the journal
//! (as the sources' [`crate::source::EventSink`], `journal_sink`) and, with a `[tenant]`, the
//! credentials file written by [`crate::control::register`]. Leaves: events in the journal; with a
//! tenant, projected operations in the outbox ([`outbox_sink::OutboxSink`] is projection's
//! `OpSink`) and batches pushed to the tenant; the status file for `agent status` ([`status`]).
//!
//! - [`sync_once`] — `agent sync-once`: one pass of everything, returned as a report the CLI prints.
//! - [`daemon::run_all`] — `agent run`: the feeds, projection, push, heartbeats and the status file
//!   as tasks under one cancellation token, with a bounded shutdown.
//! - [`feeds`] — the domain feeds (one pass per domain, or one task per domain until cancelled);
//!   [`phs`] — password hash sync's cycles beside them; [`Progress`] — full-read progress.
//! - [`cloud_stages`] — projection → outbox → push and the agent's tenant client, opened;
//!   [`cloud_config`] — the tenant's per-domain settings (scope, mappings, threshold, PHS and
//!   writeback switches) fetched, checked and applied without a restart.
//! - [`metrics_task`] — `GET /metrics` (`[metrics]`), the counters of [`crate::metrics`].
//! - [`writeback`] — password writeback: the long poll, AD written through [`crate::writeback`], the
//!   answers journaled and sent.
//! - [`rebuild`] — `journal rebuild`: a damaged journal re-read from AD.
//!
//! Invariant: nothing here imports the tenant crate.

pub mod cloud_config;
pub mod cloud_stages;
pub mod daemon;
pub mod feeds;
mod journal_sink;
pub mod metrics_task;
pub mod outbox_sink;
pub mod phs;
mod progress;
pub mod rebuild;
mod settings;
pub mod status;
mod sync_once;
pub mod takeover;
pub mod writeback;

pub use progress::Progress;
pub use settings::AgentConfig;
pub use sync_once::{CloudCycleError, CloudReport, SyncOnceOptions, SyncOnceReport, sync_once};
