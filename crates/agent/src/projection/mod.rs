//! Projection. Enters: journal events in sequence order. Leaves: cloud operations into the outbox, a provisioning log.
//!
//! Projection: a deterministic function from the journal to (a) the projected state of every object and
//! (b) the cloud operations the push stage sends.
//!
//! Enters: `(seq, Event)` pairs read from the journal in sequence order ([`runner::Runner`] reads them).
//! Leaves: `api::ops::Operation`s for the outbox — upserts with the full mapped attribute set and
//! `version` = the producing event's sequence, deletes, membership changes by anchor, password hashes —
//! enqueued together with projection's cursor in one atomic outbox write; provisioning-log entries
//! (Import → Scope → Match → Action) per object; staged deletes when the delete threshold trips.
//!
//! Invariant (DESIGN 5): the state is built from ordered maps and a slab with ids in journal order (its hash
//! indexes are derived and never iterated), with no clock or randomness, so the
//! same journal always yields the same bytes ([`state::State::to_bytes`]); `tests/projection_determinism.rs`
//! checks it with restarts in the middle — for a given configuration: [`config::Compiled`] is the
//! TOML's `[projection]` with the tenant's per-domain settings on top ([`cloud`]), and a change of it
//! while running ([`runner::Runner::reconfigure`]) is followed by a re-read of the domains it affects. The state's layout and byte form are in [`state`], the snapshot's
//! envelope and the restart contract in [`store`]; the expression language is in [`expr`];
//! docs/projection.md has the whole picture.

pub mod anchor;
pub mod cloud;
pub mod config;
pub mod dn;
pub mod expr;
pub mod image;
pub mod mapping;
mod membership;
pub mod ops;
pub mod projector;
#[cfg(test)]
mod projector_tests;
pub mod provlog;
mod reconcile;
pub mod runner;
pub mod scope;
pub mod sid;
pub mod state;
pub mod store;
pub mod threshold;
