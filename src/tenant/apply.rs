//! Applying one operation batch to the store: the per-object semantics of the provisioning API.
//!
//! Enters: an [`OperationBatch`] for one configuration, already authenticated, size-checked and
//! throttled. Leaves: one [`OpResult`] per operation, the writes in the store, and one provisioning log
//! entry per operation. The caller holds the apply lock, so nothing interleaves. The rules are listed
//! in [`crate::api::ops`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::config::Health;
use crate::api::logs::LogEntry;
use crate::api::ops::{
    BatchResponse, ObjectKind, OpError, OpErrorCode, OpResult, OpStatus, Operation, OperationBatch,
    Upsert,
};

use super::orgid::OrgIdHash;
use super::store::{
    ConfigRecord, Store, StoreError, StoredObject, get_json, pair_key, put_json, uuid_value,
};

/// Who sent the batch, where to, and when.
#[derive(Debug, Clone)]
pub struct BatchContext {
    /// The sending agent.
    pub agent_id: Uuid,
    /// Unix seconds now.
    pub now: i64,
    /// RFC 3339 now.
    pub now_text: String,
    /// Length of the delete-counting window.
    pub delete_window_secs: u64,
    /// Failed batches in a row before quarantine.
    pub quarantine_after: u32,
}

/// A stored password hash with the version that set it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Per-object version of the `setPasswordHash` operation.
    pub version: u64,
    /// The `v1;PPH1_MD4,…` string.
    pub credential: String,
}

enum Outcome {
    Done(OpStatus, Option<Uuid>, &'static str),
    Failed(Option<Uuid>, OpError),
}

fn fail(code: OpErrorCode, message: impl Into<String>) -> Outcome {
    Outcome::Failed(None, OpError::new(code, message))
}

/// Applies a batch (the caller has checked that its id is new) and stores its results.
pub fn apply_batch(
    store: &Store,
    config: &mut ConfigRecord,
    batch: &OperationBatch,
    ctx: &BatchContext,
) -> Result<BatchResponse, StoreError> {
    roll_delete_window(config, ctx);
    let mut results = Vec::with_capacity(batch.operations.len());
    let mut permanent_failures = 0usize;
    for (index, op) in batch.operations.iter().enumerate() {
        let outcome = if let Health::Quarantine { reason } = &config.config.health {
            fail(
                OpErrorCode::Quarantined,
                format!(
                    "The configuration is in quarantine ({reason}); restart it with scope Quarantine."
                ),
            )
        } else {
            apply_one(store, config, op, ctx)?
        };
        let (status, object_id, error, message) = match outcome {
            Outcome::Done(status, id, message) => (status, id, None, message.to_owned()),
            Outcome::Failed(id, error) => {
                if !error.retriable {
                    permanent_failures += 1;
                }
                let message = error.message.clone();
                (OpStatus::Error, id, Some(error), message)
            }
        };
        let seq = store.next_id()?;
        let entry = LogEntry {
            seq,
            time: ctx.now_text.clone(),
            agent_id: ctx.agent_id,
            configuration_id: config.config.id,
            batch_id: batch.batch_id,
            object_id,
            source_anchor: op.source_anchor().to_owned(),
            action: op.action().to_owned(),
            result: status,
            error_code: error.as_ref().map(|e| e.code),
            message,
        };
        put_json(&store.logs, &seq.to_be_bytes(), &entry)?;
        results.push(OpResult {
            index,
            status,
            object_id,
            error,
        });
    }
    update_health(config, batch.operations.len(), permanent_failures, ctx);
    let response = BatchResponse {
        batch_id: batch.batch_id,
        replayed: false,
        results,
    };
    put_json(&store.batches, batch.batch_id.as_bytes(), &response)?;
    put_json(&store.configs, config.config.id.as_bytes(), config)?;
    Ok(response)
}

fn roll_delete_window(config: &mut ConfigRecord, ctx: &BatchContext) {
    let window = i64::try_from(ctx.delete_window_secs).unwrap_or(i64::MAX);
    if ctx.now.saturating_sub(config.delete_window_start) >= window {
        config.delete_window_start = ctx.now;
        config.delete_window_count = 0;
    }
}

fn update_health(
    config: &mut ConfigRecord,
    ops: usize,
    permanent_failures: usize,
    ctx: &BatchContext,
) {
    config.config.last_sync = Some(ctx.now_text.clone());
    if ops > 0 && permanent_failures == ops {
        config.consecutive_failed_batches += 1;
    } else if permanent_failures < ops {
        config.consecutive_failed_batches = 0;
    }
    if config.consecutive_failed_batches >= ctx.quarantine_after
        && config.config.health == Health::Healthy
    {
        config.config.health = Health::Quarantine {
            reason: "AllOperationsFailed".into(),
        };
        config.config.revision += 1;
        tracing::warn!(configuration = %config.config.id, "Configuration quarantined after consecutive failed batches.");
    }
}

/// Looks up the live or tombstoned object behind an anchor.
pub fn object_by_anchor(store: &Store, anchor: &str) -> Result<Option<StoredObject>, StoreError> {
    match store.anchors.get(anchor.as_bytes())? {
        None => Ok(None),
        Some(id) => get_json(&store.objects, "objects", &id),
    }
}

fn live(
    store: &Store,
    anchor: &str,
    kind: Option<ObjectKind>,
) -> Result<Result<StoredObject, Outcome>, StoreError> {
    Ok(match object_by_anchor(store, anchor)? {
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
        _ => Err(fail(
            OpErrorCode::ReferenceNotFound,
            format!("No object with source anchor {anchor} exists in the tenant."),
        )),
    })
}

fn apply_one(
    store: &Store,
    config: &mut ConfigRecord,
    op: &Operation,
    ctx: &BatchContext,
) -> Result<Outcome, StoreError> {
    match op {
        Operation::Upsert(u) => upsert(store, config.config.id, u, ctx),
        Operation::Delete {
            kind,
            source_anchor,
            version,
        } => delete(store, config, *kind, source_anchor, *version, ctx),
        Operation::AddMember {
            group_anchor,
            member_anchor,
        } => membership(store, group_anchor, member_anchor, true),
        Operation::RemoveMember {
            group_anchor,
            member_anchor,
        } => membership(store, group_anchor, member_anchor, false),
        Operation::SetPasswordHash {
            source_anchor,
            version,
            credential,
        } => set_password_hash(store, config, source_anchor, *version, credential),
    }
}

fn upsert(
    store: &Store,
    config_id: Uuid,
    u: &Upsert,
    ctx: &BatchContext,
) -> Result<Outcome, StoreError> {
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
    let existing = object_by_anchor(store, &u.source_anchor)?;
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
        if u.version <= o.version {
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
        deleted: false,
        on_premises: u.on_premises.clone(),
        attributes: u.attributes.clone().into_iter().collect(),
        last_sync: ctx.now_text.clone(),
        configuration_id: config_id,
    };
    put_json(&store.objects, id.as_bytes(), &object)?;
    store
        .anchors
        .insert(u.source_anchor.as_bytes(), id.as_bytes().as_slice())?;
    let message = match existing {
        Some(o) if !o.deleted => "Updated.",
        _ => "Created.",
    };
    Ok(Outcome::Done(OpStatus::Success, Some(id), message))
}

fn delete(
    store: &Store,
    config: &mut ConfigRecord,
    kind: ObjectKind,
    anchor: &str,
    version: u64,
    ctx: &BatchContext,
) -> Result<Outcome, StoreError> {
    let Some(mut object) = object_by_anchor(store, anchor)? else {
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
    if object.deleted || version <= object.version {
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

fn membership(
    store: &Store,
    group_anchor: &str,
    member_anchor: &str,
    add: bool,
) -> Result<Outcome, StoreError> {
    let group = match live(store, group_anchor, Some(ObjectKind::Group))? {
        Ok(g) => g,
        Err(outcome) => return Ok(outcome),
    };
    let member = match live(store, member_anchor, None)? {
        Ok(m) => m,
        Err(outcome) => return Ok(outcome),
    };
    let key = pair_key(group.id, member.id);
    let present = store.members.contains_key(key)?;
    if present == add {
        return Ok(Outcome::Done(
            OpStatus::Skipped,
            Some(group.id),
            "Membership already in the wanted state.",
        ));
    }
    if add {
        store.members.insert(key, &[])?;
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
) -> Result<Outcome, StoreError> {
    if !config.config.spec.password_hash_sync {
        return Ok(fail(
            OpErrorCode::PasswordHashSyncDisabled,
            "Password hash sync is not enabled for this configuration.",
        ));
    }
    if let Err(e) = OrgIdHash::parse(credential) {
        return Ok(fail(
            OpErrorCode::InvalidPasswordHash,
            format!("Invalid password hash: {e}."),
        ));
    }
    let user = match live(store, anchor, Some(ObjectKind::User))? {
        Ok(u) => u,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(old) =
        get_json::<StoredCredential>(&store.credentials, "credentials", user.id.as_bytes())?
        && version <= old.version
    {
        return Ok(Outcome::Done(
            OpStatus::Skipped,
            Some(user.id),
            "Stale password hash version.",
        ));
    }
    let stored = StoredCredential {
        version,
        credential: credential.to_owned(),
    };
    put_json(&store.credentials, user.id.as_bytes(), &stored)?;
    Ok(Outcome::Done(
        OpStatus::Success,
        Some(user.id),
        "Password hash set.",
    ))
}
