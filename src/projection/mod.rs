//! Projection: a deterministic function from the journal to (a) the projected state of every object and
//! (b) the cloud operations the push stage sends.
//!
//! Enters: `(seq, Event)` pairs read from the journal in order. Leaves: operations for the outbox, each
//! upsert carrying the full mapped attribute set and `version = seq`; provisioning-log entries.

pub mod dn;
pub mod expr;
pub mod sid;
