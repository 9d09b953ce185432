//! Projection: a deterministic function from the journal to (a) the projected state of every object and
//! (b) the cloud operations the push stage sends.
//!
//! Enters: `(seq, Event)` pairs read from the journal in order. Leaves: operations for the outbox, each
//! upsert carrying the full mapped attribute set and `version = seq`; provisioning-log entries.

pub mod anchor;
pub mod config;
pub mod dn;
pub mod expr;
pub mod mapping;
mod membership;
pub mod model;
pub mod ops;
pub mod projector;
#[cfg(test)]
mod projector_tests;
pub mod provlog;
pub mod runner;
pub mod scope;
pub mod sid;
pub mod state;
pub mod store;
pub mod threshold;
