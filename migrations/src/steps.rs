//! The ordered list of migration steps.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::{META_TREE, MigrationError, VERSION_KEY, v1};

/// One forward step: moves the database from `from` to `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The version the step starts from.
    pub from: u32,
    /// A short name for logs and errors.
    pub name: &'static str,
    /// Performs the step and writes the new version marker (atomically, see the crate doc).
    pub run: fn(&sled::Db) -> Result<(), MigrationError>,
}

/// Every step, in order. Append only; never edit a released step.
pub static STEPS: &[Step] = &[Step {
    from: 0,
    name: "create-v1-layout",
    run: v0_to_v1,
}];

/// v0 -> v1: adopts a fresh database. Refuses any v0 database holding data (it was not written by cloudsync),
/// then creates the v1 layout — the `journal` tree with a sequence high-water mark of 0 — and stamps v1,
/// in one transaction.
fn v0_to_v1(db: &sled::Db) -> Result<(), MigrationError> {
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let label = String::from_utf8_lossy(&name).into_owned();
        let own = label == META_TREE || label == v1::JOURNAL_TREE;
        if !tree.is_empty() || !(own || label == "__sled__default") {
            return Err(MigrationError::NotAJournal {
                reason: format!("unversioned database with foreign content (tree `{label}`)"),
            });
        }
    }
    let journal = db.open_tree(v1::JOURNAL_TREE)?;
    let meta = db.open_tree(META_TREE)?;
    let mark = bincode::serde::encode_to_vec(0u64, v1::envelope::BINCODE).map_err(|e| {
        MigrationError::StepFailed {
            from: 0,
            to: 1,
            name: "create-v1-layout",
            reason: e.to_string(),
        }
    })?;
    let mark = v1::envelope::seal(v1::envelope::TYPE_HIGH_WATER, &mark);
    let result: Result<(), TransactionError<()>> = (&journal, &meta).transaction(|(j, m)| {
        j.insert(v1::HIGH_WATER_KEY, mark.as_slice())?;
        m.insert(VERSION_KEY, &1u32.to_be_bytes())?;
        Ok::<(), ConflictableTransactionError<()>>(())
    });
    match result {
        Ok(()) => Ok(()),
        Err(TransactionError::Storage(e)) => Err(MigrationError::Storage(e)),
        Err(TransactionError::Abort(())) => Err(MigrationError::StepFailed {
            from: 0,
            to: 1,
            name: "create-v1-layout",
            reason: "transaction aborted".into(),
        }),
    }
}
