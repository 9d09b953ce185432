//! The throughput harness behind `cloudsync bench`. Enters: N, a seed, the stages to run and the
//! `cloudsync` executable. Leaves: a [`BenchReport`] (the versioned JSON of docs/bench.md).
//!
//! A seeded synthetic directory ([`spec`], [`directory`], [`names`]) is streamed as exactly the
//! events the AD feed appends for an initial read, and driven through the real components in the
//! order `agent sync-once` runs them: the journal (its [`source::EventSink`](crate::source::EventSink)),
//! password hashes off [`phs::HashPool`](crate::phs::HashPool), projection into the outbox and the
//! push over HTTPS through [`runtime::cloud_stages`](crate::runtime::cloud_stages), to a local tenant
//! that is a real `cloudsync tenant serve` child process ([`tenant_process`]). Each stage is
//! measured next to its limit in the same run ([`limits`]; the tenant's in-process apply comes in
//! through [`stages::InProcessApply`], since only the binary may use the tenant crate), the tenant
//! is read back over Graph ([`graph`]), and a delta round ([`delta`]) is timed from journal append
//! to the tenant's acknowledgement.
//!
//! # Layout
//! - [`spec`]      — the directory's shape from (N, seed): counts, OUs, group sizes and members.
//! - [`names`]     — word lists and AD value formats (GUIDs, SIDs, timestamps).
//! - [`directory`] — one object's full image; the initial read as a stream of events.
//! - [`delta`]     — the delta round's changes.
//! - [`stages`]    — the drivers: journal pages, password hash cycles, the outbox as batches.
//! - [`limits`]    — raw sled inserts, SHA-256 compressions (shared with `benches/`).
//! - [`measure`]   — peak RSS (per stage), bytes on disk (shared with `benches/`).
//! - [`setup`]     — the run's layout, the tenant's seed, the agent's configuration.
//! - [`tenant_process`] — `cloudsync tenant serve` as a child process (shared with `tests/`).
//! - [`graph`]     — reading the tenant back as an administrator.
//! - [`options`]   — the stages and options of a run.
//! - [`run`], `cloud_run.rs` — one run, stage by stage; [`report`] — what it reports.
//! - [`error`]     — [`BenchError`].

mod cloud_run;
pub mod delta;
pub mod directory;
pub mod error;
pub mod graph;
pub mod limits;
pub mod measure;
pub mod names;
pub mod options;
pub mod report;
pub mod run;
pub mod setup;
pub mod spec;
pub mod stages;
pub mod tenant_process;

#[cfg(test)]
mod tests;

pub use error::BenchError;
pub use options::{BenchOptions, Stages, WriteBudget};
pub use report::BenchReport;
pub use run::run;
pub use stages::InProcessApply;
