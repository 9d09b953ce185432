//! The tenant state's format version and the migration from format 1 (see [`super::store`],
//! Format versions).
//!
//! Enters: a just-opened store whose `meta/format` is `1`. Leaves: the same store in format 2 — the
//! tenant-wide `anchors` tree re-keyed by owning configuration into `config_anchors`, `format` set to
//! `2`, the old tree dropped — or an error, with `format` still `1` so the next open redoes it.

use std::collections::HashMap;

use uuid::Uuid;

use super::store::{ConfigRecord, FORMAT, Store, StoreError, StoredObject, get_json, put_json};

/// Format 1 → 2: re-keys the tenant-wide anchor index by owning configuration (see the module
/// doc). Idempotent: a crash before `format` is written redoes it from the start.
pub(super) fn migrate_from_1(store: &Store) -> Result<(), StoreError> {
    let db = &store.db;
    let old = db.open_tree("anchors")?;
    store.anchors.clear()?;
    let mut moved = 0u64;
    let mut highest: HashMap<Uuid, u64> = HashMap::new();
    for entry in old.iter() {
        let (anchor, id) = entry?;
        let Some(object) = get_json::<StoredObject>(&store.objects, "objects", &id)? else {
            return Err(StoreError::CorruptKey("anchors"));
        };
        let mut key = object.configuration_id.as_bytes().to_vec();
        key.extend_from_slice(&anchor);
        store.anchors.insert(key, id)?;
        let top = highest.entry(object.configuration_id).or_default();
        *top = (*top).max(object.version);
        moved += 1;
    }
    for (config, version) in highest {
        if let Some(mut record) =
            get_json::<ConfigRecord>(&store.configs, "configs", config.as_bytes())?
        {
            record.version_high_water = record.version_high_water.max(version);
            put_json(&store.configs, config.as_bytes(), &record)?;
        }
    }
    store.batches.clear()?;
    store.meta.insert("format", FORMAT.as_bytes())?;
    db.flush()?;
    db.drop_tree("anchors")?;
    tracing::info!(
        anchors = moved,
        "Tenant state migrated from format 1 to 2: anchors are now kept per owning configuration."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{anchor_key, put_json};
    use cloudsync_api::ops::{ObjectKind, OnPremisesIdentity};
    use uuid::Uuid;

    fn object(id: Uuid, config: Uuid, anchor: &str) -> StoredObject {
        StoredObject {
            id,
            kind: ObjectKind::User,
            source_anchor: anchor.into(),
            version: 1,
            epoch: 0,
            deleted: false,
            on_premises: OnPremisesIdentity::default(),
            attributes: Default::default(),
            last_sync: String::new(),
            configuration_id: config,
        }
    }

    #[test]
    fn a_format_1_state_is_migrated_to_per_configuration_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let spec = cloudsync_api::config::ConfigurationSpec {
            domain: "corp.example.com".into(),
            scope: Default::default(),
            mappings: vec![],
            password_hash_sync: true,
            password_writeback: false,
            allow_unlock: false,
            delete_threshold: 0,
        };
        let record = ConfigRecord::new(Uuid::new_v4(), spec);
        let (id, config) = (Uuid::new_v4(), record.config.id);
        {
            // A state as format 1 wrote it: the anchor tree keyed by the bare anchor, batch
            // results by the bare batch id, and no version high-water mark.
            let db = sled::open(&path).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("format", b"1")
                .unwrap();
            let objects = db.open_tree("objects").unwrap();
            let mut stored = object(id, config, "anc");
            stored.version = 5_000_000_000;
            put_json(&objects, id.as_bytes(), &stored).unwrap();
            let configs = db.open_tree("configs").unwrap();
            put_json(&configs, config.as_bytes(), &record).unwrap();
            db.open_tree("batches")
                .unwrap()
                .insert(Uuid::new_v4().as_bytes(), b"{}".as_slice())
                .unwrap();
            db.open_tree("anchors")
                .unwrap()
                .insert("anc", id.as_bytes().as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.meta.get("format").unwrap().unwrap().as_ref(), b"2");
        assert_eq!(
            store
                .anchors
                .get(anchor_key(config, "anc"))
                .unwrap()
                .unwrap()
                .as_ref(),
            id.as_bytes()
        );
        assert_eq!(store.anchors.len(), 1);
        // The version bound starts at the configuration's highest stored version, not at 0: the
        // agent's next write (5e9 + 1) is more than 2^32 above 0.
        let migrated: ConfigRecord = get_json(&store.configs, "configs", config.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(migrated.version_high_water, 5_000_000_000);
        assert!(
            store.batches.is_empty(),
            "format 1's batch results are cleared"
        );
        assert!(
            !store
                .db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == b"anchors"),
            "the old tree is dropped"
        );
        drop(store);
        // Opening again changes nothing.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.anchors.len(), 1);
    }

    #[test]
    fn a_newer_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("format", b"3")
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(&err, StoreError::UnsupportedFormat { found } if found == "3"));
        assert!(err.to_string().contains("empty --state"), "{err}");
    }
}
