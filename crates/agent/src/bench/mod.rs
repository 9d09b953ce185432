//! The throughput harness behind `cloudsync bench` (being built): a seeded synthetic directory
//! streamed as exactly the events the AD feed appends for an initial read, and the speed limits and
//! measurements the stages are compared with.
//!
//! # Layout
//! - [`spec`]      — the directory's shape from (N, seed): counts, OUs, group sizes and members.
//! - [`names`]     — word lists and AD value formats (GUIDs, SIDs, timestamps).
//! - [`directory`] — one object's full image; the initial read as a stream of events.
//! - [`delta`]     — the delta round's changes.
//! - [`limits`]    — raw sled inserts, SHA-256 compressions (shared with `benches/`).
//! - [`measure`]   — peak RSS (per stage), bytes on disk (shared with `benches/`).
//! - [`tenant_process`] — `cloudsync tenant serve` as a child process (shared with `tests/`).

pub mod delta;
pub mod directory;
pub mod limits;
pub mod measure;
pub mod names;
pub mod spec;
pub mod tenant_process;

#[cfg(test)]
mod tests;
