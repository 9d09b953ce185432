//! The tenant's own apply rate, in process: batches applied to a store and flushed after each, as
//! the batch endpoint does before it answers, minus HTTP, TLS, JSON and authentication. It is the
//! push stage's limit in `cloudsync bench` and the baseline of `benches/push.rs` and
//! `benches/tenant.rs`. Uses [`apply_batch`] as it is; nothing here changes how a batch applies.

use std::time::{Duration, Instant};

use cloudsync_api::config::{ConfigurationSpec, Scope};
use cloudsync_api::ops::OperationBatch;
use uuid::Uuid;

use super::apply::{BatchContext, apply_batch};
use super::store::{ConfigRecord, Store, StoreError};

/// A configuration as registration creates one: password hash sync on, delete threshold 500.
pub fn config_record() -> ConfigRecord {
    config_record_with(500)
}

/// [`config_record`] with another delete threshold (0: none), for tests.
pub fn config_record_with(delete_threshold: u32) -> ConfigRecord {
    ConfigRecord::new(
        Uuid::new_v4(),
        ConfigurationSpec {
            domain: "corp.example.com".into(),
            scope: Scope::default(),
            mappings: vec![],
            password_hash_sync: true,
            password_writeback: false,
            allow_unlock: false,
            delete_threshold,
        },
    )
}

/// The context the server builds for a batch of an agent without a lease, at a fixed time.
pub fn batch_context() -> BatchContext {
    BatchContext {
        agent_id: Uuid::nil(),
        now: 0,
        now_text: "2026-01-01T00:00:00Z".into(),
        delete_window_secs: 120,
        quarantine_after: 3,
        epoch: 0,
    }
}

/// Applies every batch to `store` under `record`, flushing after each. Returns the operations
/// applied and the time spent applying and flushing (producing the batches is not counted).
pub fn apply_all(
    store: &Store,
    record: &mut ConfigRecord,
    batches: impl IntoIterator<Item = OperationBatch>,
) -> Result<(u64, Duration), StoreError> {
    let ctx = batch_context();
    let (mut operations, mut elapsed) = (0u64, Duration::ZERO);
    for batch in batches {
        let start = Instant::now();
        apply_batch(store, record, &batch, &ctx)?;
        store.flush_blocking()?;
        elapsed += start.elapsed();
        operations += batch.operations.len() as u64;
    }
    Ok((operations, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::ops::{ObjectKind, Operation, Upsert};

    #[test]
    fn every_operation_is_applied_and_timed() {
        let store = Store::temporary().unwrap();
        let mut record = config_record();
        let batch = |from: u64| OperationBatch {
            batch_id: Uuid::new_v4(),
            operations: (from..from + 3)
                .map(|n| {
                    Operation::Upsert(Upsert {
                        kind: ObjectKind::Group,
                        source_anchor: format!("a{n}"),
                        version: 1,
                        on_premises: Default::default(),
                        attributes: [("displayName".into(), serde_json::json!(format!("G{n}")))]
                            .into_iter()
                            .collect(),
                    })
                })
                .collect(),
            reasons: Default::default(),
            epoch: None,
        };
        let (ops, elapsed) = apply_all(&store, &mut record, [batch(0), batch(3)]).unwrap();
        assert_eq!(ops, 6);
        assert!(elapsed > Duration::ZERO);
        assert_eq!(store.objects.len(), 6);
    }
}
