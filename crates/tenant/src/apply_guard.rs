//! The confinement rules every batch operation passes before it writes: ownership, reserved
//! attribute names and the version bound (the rules are stated in [`cloudsync_api::ops`]).
//!
//! Enters: the calling configuration, an anchor, an upsert's attributes or a version. Leaves: the
//! caller's own object behind an anchor, or the per-item `Outcome` that refuses the operation.
//! Nothing here writes, except [`note_version`] on the configuration record the batch stores.

use uuid::Uuid;

use cloudsync_api::ops::{MAX_VERSION, MAX_VERSION_STEP, ObjectKind, OpError, OpErrorCode, Upsert};

use super::apply::{Outcome, fail};
use super::store::{ConfigRecord, Store, StoreError, StoredObject, anchor_key, get_json};

/// Graph properties the tenant derives for every object ([`super::graph::to_graph`]); an attribute
/// may not carry one of these names.
pub const DERIVED_PROPERTIES: &[&str] = &[
    "id",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesDistinguishedName",
    "onPremisesSecurityIdentifier",
    "onPremisesDomainName",
    "onPremisesSyncEnabled",
    "onPremisesLastSyncDateTime",
];

/// Looks up the live or tombstoned object behind `anchor` among `config`'s own objects.
pub fn object_by_anchor(
    store: &Store,
    config: Uuid,
    anchor: &str,
) -> Result<Option<StoredObject>, StoreError> {
    match store.anchors.get(anchor_key(config, anchor))? {
        None => Ok(None),
        Some(id) => get_json(&store.objects, "objects", &id),
    }
}

/// Whether a configuration other than `config` holds a live object with `anchor` (one point look-up
/// per configuration; a tenant has a handful). With `or_deleted`, a tombstone counts too: a
/// deleted object keeps its anchor for its configuration, so it can come back under it.
pub fn held_elsewhere(
    store: &Store,
    config: Uuid,
    anchor: &str,
    or_deleted: bool,
) -> Result<bool, StoreError> {
    for key in store.configs.iter().keys() {
        let key = key?;
        let Ok(other) = Uuid::from_slice(&key) else {
            return Err(StoreError::CorruptKey("configs"));
        };
        if other != config
            && object_by_anchor(store, other, anchor)?.is_some_and(|o| or_deleted || !o.deleted)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The refusal of an operation on another configuration's object. The message names neither the
/// other configuration nor the object, so a refused agent learns nothing it could use.
pub(super) fn foreign(what: &str) -> Outcome {
    fail(
        OpErrorCode::OwnedByAnotherConfiguration,
        format!(
            "{what} belongs to an object of another configuration; a configuration may only act on the objects it created."
        ),
    )
}

/// The caller's live object behind `anchor`, of `kind` when given; else the refusal:
/// `OwnedByAnotherConfiguration` when only another configuration holds it, `KindMismatch`, or the
/// retriable `ReferenceNotFound`.
pub(super) fn own_live(
    store: &Store,
    config: Uuid,
    anchor: &str,
    kind: Option<ObjectKind>,
) -> Result<Result<StoredObject, Outcome>, StoreError> {
    Ok(match object_by_anchor(store, config, anchor)? {
        Some(o) if !o.deleted => match kind {
            Some(k) if o.kind != k => Err(Outcome::Failed(
                Some(o.id),
                OpError::new(
                    OpErrorCode::KindMismatch,
                    format!(
                        "Anchor {anchor} is a {}, not a {}.",
                        o.kind.as_str(),
                        k.as_str()
                    ),
                ),
            )),
            _ => Ok(o),
        },
        _ if held_elsewhere(store, config, anchor, false)? => {
            Err(foreign(&format!("Source anchor {anchor}")))
        }
        _ => Err(fail(
            OpErrorCode::ReferenceNotFound,
            format!("No object with source anchor {anchor} exists in this configuration."),
        )),
    })
}

/// Refuses an upsert that names a derived property or an OData annotation.
pub(super) fn reserved_attribute(u: &Upsert) -> Option<Outcome> {
    let name = u.attributes.keys().find(|k| {
        // Graph property names are case-insensitive (`$select=id` also matched an `Id`).
        DERIVED_PROPERTIES
            .iter()
            .any(|d| d.eq_ignore_ascii_case(k.as_ref()))
            || k.contains('@')
    })?;
    Some(fail(
        OpErrorCode::InvalidAttribute,
        format!(
            "Attribute '{name}' is reserved: the tenant derives it (or it is an OData annotation); it cannot be set."
        ),
    ))
}

/// Refuses a version above [`MAX_VERSION`] or more than [`MAX_VERSION_STEP`] past the
/// configuration's high-water mark.
/// The high-water mark counts within its epoch: a newer epoch's first versions are bounded by
/// [`MAX_VERSION`] alone (they are another agent's sequence numbers).
pub(super) fn version_out_of_range(
    config: &ConfigRecord,
    epoch: u64,
    version: u64,
) -> Option<Outcome> {
    let bound = if epoch > config.version_high_water_epoch {
        MAX_VERSION
    } else {
        config
            .version_high_water
            .saturating_add(MAX_VERSION_STEP)
            .min(MAX_VERSION)
    };
    (version > bound).then(|| {
        fail(
            OpErrorCode::VersionOutOfRange,
            format!(
                "Version {version} is out of range: this configuration's versions may not exceed {bound} (its highest applied version {} plus {MAX_VERSION_STEP}, at most {MAX_VERSION}).",
                config.version_high_water
            ),
        )
    })
}

/// Raises the configuration's high-water mark after an applied operation.
pub fn note_version(config: &mut ConfigRecord, epoch: u64, version: u64) {
    if super::lease::newer(
        epoch,
        version,
        config.version_high_water_epoch,
        config.version_high_water,
    ) {
        config.version_high_water_epoch = epoch;
        config.version_high_water = version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_names_are_exactly_what_graph_derives() {
        // An object without attributes shows only derived properties in Graph.
        let o = StoredObject {
            id: Uuid::new_v4(),
            kind: ObjectKind::User,
            source_anchor: "a".into(),
            version: 1,
            epoch: 0,
            deleted: false,
            on_premises: Default::default(),
            attributes: Default::default(),
            last_sync: String::new(),
            configuration_id: Uuid::new_v4(),
        };
        let mut derived: Vec<String> = super::super::graph::to_graph(&o).keys().cloned().collect();
        derived.sort();
        let mut reserved: Vec<String> = DERIVED_PROPERTIES.iter().map(|s| s.to_string()).collect();
        reserved.sort();
        assert_eq!(derived, reserved);
    }
}
