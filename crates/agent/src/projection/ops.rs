//! The cloud operations projection emits: the agent↔tenant contract's own types (`api::ops`), re-exported
//! so projection code names them in one place. Upserts carry the full mapped attribute set and
//! `version` = the journal sequence number of the event that produced them (monotonic per object).

pub use cloudsync_api::ops::{AttrName, ObjectKind, OnPremisesIdentity, Operation, Upsert};
