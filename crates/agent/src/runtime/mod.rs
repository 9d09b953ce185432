//! The agent daemon. Enters: a validated [`crate::config::Config`], the journal (as the sources'
//! [`crate::source::EventSink`]) and, with a `[tenant]`, the credentials file written by
//! [`cloud::Cloud::register_agent`] (`agent register`). Leaves: events in the journal; with a tenant,
//! projected operations in the outbox ([`outbox_sink::OutboxSink`] is projection's `OpSink`) and
//! batches pushed to the tenant, plus heartbeats that carry the agent's health ([`health`]). [`sync_once`] returns one report per domain,
//! [`run`] keeps every domain's feed going until its cancellation token fires, and
//! [`service::run_all`] adds projection, push and heartbeats under the same token.
//!
//! The credentials file format is in [`credentials`]. Invariant: nothing here imports `crate::tenant`.

pub mod cloud;
pub mod credentials;
mod daemon;
pub mod health;
pub mod outbox_sink;
pub mod phs;
pub mod pipeline;
mod progress;
pub mod rebuild;
pub mod register;
pub mod restarts;
pub mod service;
mod sink;
pub mod state_check;
pub mod status;

pub use daemon::{DomainOutcome, RunError, run, run_domain_pass, run_with_resyncs, sync_once};
pub use progress::Progress;
