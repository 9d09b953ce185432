//! The agent daemon. Enters: a validated [`crate::config::Config`] and an [`crate::source::EventSink`]
//! (the journal). Leaves: events in the sink; [`sync_once`] returns one report per domain, [`run`]
//! keeps every domain's feed going until its cancellation token fires.

mod daemon;
pub mod phs;
mod progress;
mod sink;

pub use daemon::{DomainOutcome, RunError, run, run_domain_pass, sync_once};
pub use progress::Progress;
