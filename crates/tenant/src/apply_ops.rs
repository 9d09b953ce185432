//! The per-operation rules of a batch: upsert, delete, membership and password hash.
//!
//! Each function returns an outcome (applied, skipped or failed with a code) and does its store
//! writes; the batch loop in [`super::apply`] logs the outcome. Every operation is confined to the
//! calling configuration's own objects, and every version is bounded ([`super::apply_guard`]).

use uuid::Uuid;

use cloudsync_api::config::Health;
use cloudsync_api::ops::{ObjectKind, OpError, OpErrorCode, OpStatus, Operation, Upsert};
use cloudsync_api::orgid::OrgIdString;

use super::apply::{BatchContext, Outcome, StoredCredential, fail};
use super::apply_guard::{
    foreign, held_elsewhere, note_version, object_by_anchor, own_live, reserved_attribute,
    version_out_of_range,
};
use super::lease::newer;
use super::store::{
    ConfigRecord, Store, StoreError, StoredObject, anchor_key, get_json, pair_key, put_json,
    uuid_value,
};

/// Applies one operation. `swept` receives the objects an `imageComplete` deleted (cloud id,
/// anchor), for the provisioning log.
pub(super) fn apply_one(
    store: &Store,
    config: &mut ConfigRecord,
    op: &Operation,
    ctx: &BatchContext,
    swept: &mut Vec<Removed>,
) -> Result<Outcome, StoreError> {
    if let Some(version) = op.version()
        && let Some(refused) = version_out_of_range(config, ctx.epoch, version)
    {
        return Ok(refused);
    }
    let outcome = match op {
        Operation::Upsert(u) => upsert(store, config, u, ctx, swept),
        Operation::Delete {
            kind,
            source_anchor,
            version,
        } => delete(store, config, *kind, source_anchor, *version, ctx),
        Operation::AddMember {
            group_anchor,
            member_anchor,
        } => membership(
            store,
            config.config.id,
            group_anchor,
            member_anchor,
            Some(ctx.epoch),
        ),
        Operation::RemoveMember {
            group_anchor,
            member_anchor,
        } => membership(store, config.config.id, group_anchor, member_anchor, None),
        Operation::SetPasswordHash {
            source_anchor,
            version,
            credential,
        } => set_password_hash(store, config, source_anchor, *version, credential, ctx),
        Operation::ImageComplete { version, keep } => super::apply_image::image_complete(
            store, config, *version, keep, ctx,
        )
        .map(|(outcome, removed)| {
            swept.extend(removed.objects.into_iter().map(|(id, anchor)| Removed {
                id,
                anchor,
                why: RemovedBy::ImageComplete,
            }));
            outcome
        }),
    }?;
    if let (Outcome::Done(OpStatus::Success, ..), Some(version)) = (&outcome, op.version()) {
        note_version(config, ctx.epoch, version);
    }
    Ok(outcome)
}

/// An object an operation removed besides its own target: one provisioning log entry each.
#[derive(Debug)]
pub(super) struct Removed {
    /// Its cloud id.
    pub id: Uuid,
    /// Its source anchor.
    pub anchor: String,
    /// Why.
    pub why: RemovedBy,
}

/// Why an object went without a delete of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RemovedBy {
    /// `imageComplete` swept it: not in the new lease holder's image.
    ImageComplete,
    /// An upsert under a newer lease epoch claimed its userPrincipalName while the object was written
    /// by an earlier holder and not (yet) re-sent by this one: the sweep, early, for that one object.
    SupersededInImage,
}

fn upsert(
    store: &Store,
    config: &mut ConfigRecord,
    u: &Upsert,
    ctx: &BatchContext,
    swept: &mut Vec<Removed>,
) -> Result<Outcome, StoreError> {
    let config_id = config.config.id;
    if u.source_anchor.is_empty() {
        return Ok(fail(
            OpErrorCode::InvalidAttribute,
            "sourceAnchor must not be empty.",
        ));
    }
    if !u
        .attributes
        .get("displayName")
        .is_some_and(|v| v.is_string())
    {
        return Ok(fail(
            OpErrorCode::InvalidAttribute,
            "displayName is required and must be a string.",
        ));
    }
    let upn = u
        .attributes
        .get("userPrincipalName")
        .and_then(|v| v.as_str());
    if u.kind == ObjectKind::User && !upn.is_some_and(|s| s.contains('@') && !s.starts_with('@')) {
        return Ok(fail(
            OpErrorCode::InvalidAttribute,
            "userPrincipalName is required for users and must look like name@domain.",
        ));
    }
    if let Some(refused) = reserved_attribute(u) {
        return Ok(refused);
    }
    let existing = object_by_anchor(store, config_id, &u.source_anchor)?;
    if existing.as_ref().is_none_or(|o| o.deleted)
        && held_elsewhere(store, config_id, &u.source_anchor, true)?
    {
        return Ok(foreign(&format!("Source anchor {}", u.source_anchor)));
    }
    if let Some(o) = &existing {
        if o.kind != u.kind {
            return Ok(Outcome::Failed(
                Some(o.id),
                OpError::new(
                    OpErrorCode::KindMismatch,
                    format!("Anchor {} is a {}.", u.source_anchor, o.kind.as_str()),
                ),
            ));
        }
        if !newer(ctx.epoch, u.version, o.epoch, o.version) {
            return Ok(Outcome::Done(
                OpStatus::Skipped,
                Some(o.id),
                "Stale version; nothing changed.",
            ));
        }
    }
    let id = existing.as_ref().map_or_else(Uuid::new_v4, |o| o.id);
    if u.kind == ObjectKind::User
        && let Some(upn) = upn
        && let Some(holder) = store.upns.get(upn.to_lowercase().as_bytes())?
        && uuid_value("upns", &holder)? != id
    {
        let holder: Option<StoredObject> = get_json(&store.objects, "objects", &holder)?;
        if holder
            .as_ref()
            .is_some_and(|h| h.configuration_id != config_id)
        {
            return Ok(foreign(&format!("userPrincipalName {upn}")));
        }
        // Written by an earlier lease holder (epoch ≥ 1, below this batch's) and not re-sent by this
        // one: the takeover image's sweep would delete it unless the image re-sends it, and this
        // upsert cannot wait for the sweep (`imageComplete` goes only after it). So it is the sweep,
        // early, for that one object (ARCHITECTURE.md § lease contract, rule 11). Objects written
        // before leases (epoch 0) are never superseded: a first lease sends no image.
        if let Some(h) = holder.filter(|h| h.epoch >= 1 && h.epoch < ctx.epoch && !h.deleted) {
            let removed = delete(store, config, h.kind, &h.source_anchor, u.version, ctx)?;
            if matches!(removed, Outcome::Done(OpStatus::Success, ..)) {
                swept.push(Removed {
                    id: h.id,
                    anchor: h.source_anchor,
                    why: RemovedBy::SupersededInImage,
                });
                return upsert(store, config, u, ctx, swept);
            }
        }
        return Ok(Outcome::Failed(
            existing.as_ref().map(|o| o.id),
            OpError::new(
                OpErrorCode::DuplicateUserPrincipalName,
                format!(
                    "Another object with the same value for property userPrincipalName ({upn}) already exists."
                ),
            ),
        ));
    }
    if let Some(old) = existing
        .as_ref()
        .filter(|o| !o.deleted)
        .and_then(|o| o.upn())
        && upn.is_none_or(|new| !new.eq_ignore_ascii_case(old))
    {
        store.upns.remove(old.to_lowercase().as_bytes())?;
    }
    if u.kind == ObjectKind::User
        && let Some(upn) = upn
    {
        store
            .upns
            .insert(upn.to_lowercase().as_bytes(), id.as_bytes().as_slice())?;
    }
    let object = StoredObject {
        id,
        kind: u.kind,
        source_anchor: u.source_anchor.clone(),
        version: u.version,
        epoch: ctx.epoch,
        deleted: false,
        on_premises: u.on_premises.clone(),
        // The upsert is the full set: what it leaves out, or sends as null / [], is absent now.
        attributes: u
            .attributes
            .iter()
            .filter(|(_, v)| !super::store::is_unset(v))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        last_sync: ctx.now_text.clone(),
        configuration_id: config_id,
    };
    put_json(&store.objects, id.as_bytes(), &object)?;
    store.anchors.insert(
        anchor_key(config_id, &u.source_anchor),
        id.as_bytes().as_slice(),
    )?;
    let message = match existing {
        Some(o) if !o.deleted => "Updated.",
        _ => "Created.",
    };
    Ok(Outcome::Done(OpStatus::Success, Some(id), message))
}

pub(super) fn delete(
    store: &Store,
    config: &mut ConfigRecord,
    kind: ObjectKind,
    anchor: &str,
    version: u64,
    ctx: &BatchContext,
) -> Result<Outcome, StoreError> {
    let Some(mut object) = object_by_anchor(store, config.config.id, anchor)? else {
        if held_elsewhere(store, config.config.id, anchor, false)? {
            return Ok(foreign(&format!("Source anchor {anchor}")));
        }
        return Ok(Outcome::Done(
            OpStatus::Skipped,
            None,
            "No such object; nothing to delete.",
        ));
    };
    if object.kind != kind {
        return Ok(Outcome::Failed(
            Some(object.id),
            OpError::new(
                OpErrorCode::KindMismatch,
                format!("Anchor {anchor} is a {}.", object.kind.as_str()),
            ),
        ));
    }
    if object.deleted || !newer(ctx.epoch, version, object.epoch, object.version) {
        return Ok(Outcome::Done(
            OpStatus::Skipped,
            Some(object.id),
            "Already deleted or stale version.",
        ));
    }
    let threshold = config.config.spec.delete_threshold;
    let forced = ctx.now < config.force_deletes_until;
    if threshold > 0 && !forced {
        let blocked = matches!(config.config.health, Health::DeleteThresholdExceeded { .. })
            || config.delete_window_count + 1 >= threshold;
        if blocked {
            if !matches!(config.config.health, Health::DeleteThresholdExceeded { .. }) {
                config.config.health = Health::DeleteThresholdExceeded {
                    deletes: config.delete_window_count + 1,
                };
                config.config.revision += 1;
                tracing::warn!(configuration = %config.config.id, threshold, "Delete threshold exceeded; deletes are staged.");
            }
            return Ok(Outcome::Failed(
                Some(object.id),
                OpError::new(
                    OpErrorCode::DeleteThresholdExceeded,
                    format!(
                        "StagedDelete: the delete threshold ({threshold}) was reached; restart with ForceDeletes to allow it."
                    ),
                ),
            ));
        }
    }
    config.delete_window_count += 1;
    if let Some(upn) = object.upn() {
        store.upns.remove(upn.to_lowercase().as_bytes())?;
    }
    remove_memberships(store, object.id)?;
    store.credentials.remove(object.id.as_bytes())?;
    object.deleted = true;
    object.version = version;
    object.epoch = ctx.epoch;
    object.last_sync = ctx.now_text.clone();
    put_json(&store.objects, object.id.as_bytes(), &object)?;
    Ok(Outcome::Done(
        OpStatus::Success,
        Some(object.id),
        "Deleted.",
    ))
}

fn remove_memberships(store: &Store, id: Uuid) -> Result<(), StoreError> {
    for entry in store.member_of.scan_prefix(id.as_bytes()) {
        let (key, _) = entry?;
        let group = uuid_value("member_of", key.get(16..).unwrap_or_default())?;
        store.members.remove(pair_key(group, id))?;
        store.member_of.remove(key)?;
    }
    for entry in store.members.scan_prefix(id.as_bytes()) {
        let (key, _) = entry?;
        let member = uuid_value("members", key.get(16..).unwrap_or_default())?;
        store.member_of.remove(pair_key(member, id))?;
        store.members.remove(key)?;
    }
    Ok(())
}

/// The lease epoch a membership link was last asserted under: the `members` value, 8 bytes
/// big-endian; empty (links written before leases) or malformed is 0.
pub(super) fn link_epoch(value: &[u8]) -> u64 {
    <[u8; 8]>::try_from(value).map_or(0, u64::from_be_bytes)
}

/// Adds (`add_epoch` = the batch's epoch) or removes (`None`) a membership link. Adding a link that
/// is already there changes nothing but the epoch it was last asserted under (which
/// [`super::apply_image`] compares).
fn membership(
    store: &Store,
    config_id: Uuid,
    group_anchor: &str,
    member_anchor: &str,
    add_epoch: Option<u64>,
) -> Result<Outcome, StoreError> {
    let add = add_epoch.is_some();
    let group = match own_live(store, config_id, group_anchor, Some(ObjectKind::Group))? {
        Ok(g) => g,
        Err(outcome) => return Ok(outcome),
    };
    let member = match own_live(store, config_id, member_anchor, None)? {
        Ok(m) => m,
        Err(outcome) => return Ok(outcome),
    };
    let key = pair_key(group.id, member.id);
    let present = store.members.get(key)?;
    if let (Some(old), Some(epoch)) = (&present, add_epoch)
        && link_epoch(old) < epoch
    {
        store.members.insert(key, &epoch.to_be_bytes())?;
    }
    if present.is_some() == add {
        return Ok(Outcome::Done(
            OpStatus::Skipped,
            Some(group.id),
            "Membership already in the wanted state.",
        ));
    }
    if let Some(epoch) = add_epoch {
        store.members.insert(key, &epoch.to_be_bytes())?;
        store.member_of.insert(pair_key(member.id, group.id), &[])?;
        Ok(Outcome::Done(
            OpStatus::Success,
            Some(group.id),
            "Member added.",
        ))
    } else {
        store.members.remove(key)?;
        store.member_of.remove(pair_key(member.id, group.id))?;
        Ok(Outcome::Done(
            OpStatus::Success,
            Some(group.id),
            "Member removed.",
        ))
    }
}

fn set_password_hash(
    store: &Store,
    config: &ConfigRecord,
    anchor: &str,
    version: u64,
    credential: &str,
    ctx: &BatchContext,
) -> Result<Outcome, StoreError> {
    if !config.config.spec.password_hash_sync {
        return Ok(fail(
            OpErrorCode::PasswordHashSyncDisabled,
            "Password hash sync is not enabled for this configuration.",
        ));
    }
    if let Err(e) = OrgIdString::parse(credential) {
        return Ok(fail(
            OpErrorCode::InvalidPasswordHash,
            format!("Invalid password hash: {e}."),
        ));
    }
    let user = match own_live(store, config.config.id, anchor, Some(ObjectKind::User))? {
        Ok(u) => u,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(old) =
        get_json::<StoredCredential>(&store.credentials, "credentials", user.id.as_bytes())?
        && !newer(ctx.epoch, version, old.epoch, old.version)
    {
        return Ok(Outcome::Done(
            OpStatus::Skipped,
            Some(user.id),
            "Stale password hash version.",
        ));
    }
    let stored = StoredCredential {
        version,
        epoch: ctx.epoch,
        credential: credential.to_owned(),
    };
    put_json(&store.credentials, user.id.as_bytes(), &stored)?;
    Ok(Outcome::Done(
        OpStatus::Success,
        Some(user.id),
        "Password hash set.",
    ))
}
