//! Journal format migrations. Enters: an open sled database of an older format. Leaves: it at the current one.
//!
//! Numbered, forward-only migrations of the cloudsync journal's on-disk format.
//!
//! Enters: an open `sled::Db` and the format version the running build writes. Leaves: the database at that
//! version, or a [`MigrationError`] that says why not (a newer database is refused, never downgraded).
//!
//! # Where the version lives
//! Tree `meta`, key `format_version`, value a u32 big-endian. A database without it is *v0*: a freshly
//! created, empty sled database. v0 holding any data is not something cloudsync wrote and is refused.
//!
//! # Steps
//! [`STEPS`] is the ordered list; each step moves the database from `from` to `from + 1`. A step runs in
//! one sled transaction that also writes the new version marker, so a crash leaves the database at either
//! the old or the new version, never between. A future step too large for one transaction must be
//! idempotent and write the marker last. Steps read old records through frozen types (`v1`, later `v2` …)
//! that never change after release; the `cloudsync` crate holds the live types and does not depend back.

mod error;
mod steps;
pub mod v1;

pub use error::MigrationError;
pub use steps::{STEPS, Step};

/// The newest format version this crate knows how to produce.
pub const LATEST_VERSION: u32 = 1;
/// The sled tree holding the version marker.
pub const META_TREE: &str = "meta";
/// The key of the version marker in [`META_TREE`].
pub const VERSION_KEY: &[u8] = b"format_version";

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0 for a fresh database).
    pub from: u32,
    /// The version now stored.
    pub to: u32,
    /// The names of the steps that ran, in order.
    pub steps: Vec<&'static str>,
}

/// Reads the stored format version; `None` when the marker is absent (v0).
pub fn stored_version(db: &sled::Db) -> Result<Option<u32>, MigrationError> {
    // Look before opening: opening a tree creates it, and read-only callers must not write.
    if !db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == META_TREE.as_bytes())
    {
        return Ok(None);
    }
    let meta = db.open_tree(META_TREE)?;
    match meta.get(VERSION_KEY)? {
        None => Ok(None),
        Some(bytes) => {
            let raw = <[u8; 4]>::try_from(bytes.as_ref())
                .map_err(|_| MigrationError::CorruptVersion { len: bytes.len() })?;
            Ok(Some(u32::from_be_bytes(raw)))
        }
    }
}

/// Checks, without writing, that the database is exactly at `build_version` (for read-only tooling).
pub fn check(db: &sled::Db, build_version: u32) -> Result<u32, MigrationError> {
    match stored_version(db)? {
        None => Err(MigrationError::NotAJournal {
            reason: "no format version marker".into(),
        }),
        Some(found) if found > build_version => Err(MigrationError::NewerThanBuild {
            found,
            supported: build_version,
        }),
        Some(found) if found < build_version => Err(MigrationError::NeedsMigration {
            found,
            supported: build_version,
        }),
        Some(found) => Ok(found),
    }
}

/// Brings the database to `build_version` by running every step from the stored version on, then flushes.
///
/// A stored version above `build_version` is refused with [`MigrationError::NewerThanBuild`].
pub fn migrate(db: &sled::Db, build_version: u32) -> Result<Migrated, MigrationError> {
    let from = stored_version(db)?.unwrap_or(0);
    if from > build_version {
        return Err(MigrationError::NewerThanBuild {
            found: from,
            supported: build_version,
        });
    }
    let mut current = from;
    let mut ran = Vec::new();
    while current < build_version {
        let step = STEPS
            .iter()
            .find(|s| s.from == current)
            .ok_or(MigrationError::NoPath { from: current })?;
        (step.run)(db)?;
        ran.push(step.name);
        current = step.from + 1;
    }
    db.flush()?;
    Ok(Migrated {
        from,
        to: current,
        steps: ran,
    })
}
