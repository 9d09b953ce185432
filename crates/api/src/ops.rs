//! Operation batches: what the agent's push stage sends, and the per-operation results it gets back.
//!
//! # Semantics the push stage relies on
//! - **Leases and epochs** ([`crate::lease`]): a batch carries its sender's lease epoch; versions
//!   compare as (epoch, version), and a batch of a lost lease is refused whole (409 `LeaseLost`).
//! - Objects are keyed by their **source anchor** (`onPremisesImmutableId`, base64 of the objectGUID by
//!   default). The tenant assigns each new anchor a cloud object id (GUID) that never changes.
//! - An upsert carries the **full** set of mapped attributes and a per-object `version` (monotonic, e.g.
//!   the journal sequence number). The set replaces the stored one: a property left out — or sent as
//!   JSON `null`, or `[]` for a collection — is cleared (this is how an attribute removed in AD reaches
//!   the cloud; the agent leaves cleared targets out). An upsert or delete whose version is not greater than the stored one
//!   is acknowledged with status `skipped` and changes nothing, so replays are harmless.
//! - A `batchId` (a UUID, unique across configurations) the tenant has seen before returns the stored
//!   results (`replayed: true`) and applies nothing twice. Batches over
//!   [`super::MAX_BATCH_OPERATIONS`] operations are refused with 413.
//! - Operations are applied in order, so an upsert earlier in a batch may be referenced by a
//!   membership operation later in the same batch.
//! - Membership operations reference anchors. A group or member anchor the tenant does not know is
//!   the retriable error `ReferenceNotFound` (send the object first, then retry); membership is not
//!   held pending on the tenant side.
//! - A user principal name already held by another anchor is the permanent error
//!   `DuplicateUserPrincipalName`.
//! - **Ownership.** An object belongs to the configuration whose batch created it, and only that
//!   configuration's batches can update, delete, set the password hash of, or change memberships of
//!   it: anchors are looked up within the calling configuration. An operation naming an anchor that
//!   only another configuration holds (live), a create whose anchor another configuration's object
//!   holds (live or deleted: a deleted object keeps its anchor, so it can come back under it), and a
//!   create whose user principal name another configuration's live object holds, is the permanent
//!   error `OwnedByAnotherConfiguration`; nothing is merged. A membership operation needs both the group and the member in the caller's
//!   configuration.
//! - **Reserved names.** Attributes named like a property the tenant derives (`id`, the
//!   `onPremises*` identity properties it fills from the anchor and `onPremises`, and OData
//!   annotations such as `@odata.type`) are refused with the permanent error `InvalidAttribute`.
//! - **Version bound.** Versions are the agent's journal sequence numbers, so a configuration's
//!   versions grow by at most the number of events its agent journaled in between. The tenant keeps
//!   each configuration's highest applied version (its high-water mark) and refuses, with the
//!   permanent error `VersionOutOfRange`, an upsert, delete or password hash whose version exceeds
//!   [`MAX_VERSION`] or the high-water mark plus [`MAX_VERSION_STEP`]; nothing of it is applied,
//!   so one bad version cannot make every later write of the configuration stale.
//! - The write budget is per tenant, one token per operation. When only part of a batch fits, the
//!   operations that fit are applied in order and every later one is answered with the retriable
//!   error `Throttled` carrying `retryAfterSeconds` (nothing of it applied); a batch of which nothing
//!   fits is refused whole with 429 and `Retry-After`. The stored results of a partially throttled
//!   batch are what a replay of its id returns, so the throttled operations must be resent under a
//!   NEW batch id, not before `retryAfterSeconds` (counted from when the answer arrived).
//! - **Image complete** (takeover by a new lease holder, [`Operation::ImageComplete`]): after a new
//!   holder has re-sent its whole view under its epoch — every object it holds in the cloud as an
//!   upsert, every membership link as `addMember`, every held password hash — it sends
//!   `imageComplete`. The tenant then deletes the configuration's live objects written under an
//!   older epoch (except the `keep` anchors: objects the holder keeps in the cloud but could not
//!   re-send, e.g. held back by a mapping error) and removes the membership links last asserted
//!   under an older epoch. Those are writes of a previous holder that the new one's view no longer
//!   contains (e.g. an object created and deleted in AD while the holders changed). The deletes go
//!   through the delete threshold like any other. Only valid in a batch with an epoch, alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The largest version the tenant accepts: 2^53 - 1, the largest integer every JSON reader holds
/// exactly.
pub const MAX_VERSION: u64 = (1 << 53) - 1;

/// How far past its configuration's high-water mark (the highest version the tenant applied for
/// the configuration) a version may be: 2^32, far more journal events than any agent writes between
/// two pushes, far less than the 10^12 that would make the configuration's later writes stale.
pub const MAX_VERSION_STEP: u64 = 1 << 32;

/// The kind of a directory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// A user (Graph `/users`).
    User,
    /// A group (Graph `/groups`).
    Group,
    /// A contact (Graph `/contacts`, orgContact).
    Contact,
}

impl ObjectKind {
    /// The lower-case name used in logs and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
            ObjectKind::Contact => "contact",
        }
    }
}

/// The on-premises identity of a synced object (Graph's `onPremises*` properties).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnPremisesIdentity {
    /// `sAMAccountName`.
    #[serde(default)]
    pub sam_account_name: Option<String>,
    /// The object's distinguished name.
    #[serde(default)]
    pub distinguished_name: Option<String>,
    /// The objectSid in SDDL form (`S-1-5-21-…`).
    #[serde(default)]
    pub security_identifier: Option<String>,
    /// The domain's DNS name.
    #[serde(default)]
    pub domain_name: Option<String>,
}

/// A mapped attribute's Graph name: borrowed for the built-in names, owned otherwise.
pub type AttrName = std::borrow::Cow<'static, str>;

/// Create or fully replace an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upsert {
    /// User, group or contact.
    pub kind: ObjectKind,
    /// The source anchor (becomes `onPremisesImmutableId`).
    pub source_anchor: String,
    /// Per-object version; older or equal versions are skipped.
    pub version: u64,
    /// On-premises identity.
    #[serde(default)]
    pub on_premises: OnPremisesIdentity,
    /// Mapped cloud attributes by Graph property name (`displayName`, `userPrincipalName`,
    /// `accountEnabled`, `givenName`, `surname`, `mail`, `mailNickname`, …). Users need
    /// `userPrincipalName`; every kind needs `displayName`. Names are [`AttrName`]s so the agent can use
    /// its static default names without allocating; on the wire they are plain strings. The full set:
    /// a property left out (or `null` / `[]`) is cleared in the cloud.
    pub attributes: BTreeMap<AttrName, serde_json::Value>,
}

/// One operation in a batch, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Operation {
    /// Create or replace an object.
    Upsert(Upsert),
    /// Delete an object.
    #[serde(rename_all = "camelCase")]
    Delete {
        /// The object's kind.
        kind: ObjectKind,
        /// Its source anchor.
        source_anchor: String,
        /// Per-object version of the delete.
        version: u64,
    },
    /// Add a member (user, group or contact) to a group.
    #[serde(rename_all = "camelCase")]
    AddMember {
        /// The group's source anchor.
        group_anchor: String,
        /// The member's source anchor.
        member_anchor: String,
    },
    /// Remove a member from a group.
    #[serde(rename_all = "camelCase")]
    RemoveMember {
        /// The group's source anchor.
        group_anchor: String,
        /// The member's source anchor.
        member_anchor: String,
    },
    /// Set a user's synced password hash.
    #[serde(rename_all = "camelCase")]
    SetPasswordHash {
        /// The user's source anchor.
        source_anchor: String,
        /// Per-object version (the same sequence as upserts).
        version: u64,
        /// `v1;PPH1_MD4,<salt hex>,<iterations>,<hash hex>;`
        credential: String,
    },
    /// The sender's full image under its epoch is complete: older-epoch objects and links of the
    /// configuration are removed (see the module doc, Image complete).
    #[serde(rename_all = "camelCase")]
    ImageComplete {
        /// The version of the deletes it causes (the same sequence as upserts).
        version: u64,
        /// Anchors of objects the sender keeps in the cloud without having re-sent them; at most
        /// [`MAX_IMAGE_KEEP`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keep: Vec<String>,
    },
}

/// The most `keep` anchors an [`Operation::ImageComplete`] may carry.
pub const MAX_IMAGE_KEEP: usize = 10_000;

impl Operation {
    /// The action name used in provisioning logs.
    pub fn action(&self) -> &'static str {
        match self {
            Operation::Upsert(_) => "upsert",
            Operation::Delete { .. } => "delete",
            Operation::AddMember { .. } => "addMember",
            Operation::RemoveMember { .. } => "removeMember",
            Operation::SetPasswordHash { .. } => "setPasswordHash",
            Operation::ImageComplete { .. } => "imageComplete",
        }
    }

    /// The per-object version the operation carries (membership operations carry none).
    pub fn version(&self) -> Option<u64> {
        match self {
            Operation::Upsert(u) => Some(u.version),
            Operation::Delete { version, .. }
            | Operation::SetPasswordHash { version, .. }
            | Operation::ImageComplete { version, .. } => Some(*version),
            Operation::AddMember { .. } | Operation::RemoveMember { .. } => None,
        }
    }

    /// The source anchor the operation is about (the group's, for membership operations; empty for
    /// [`Operation::ImageComplete`], which is about the whole configuration).
    pub fn source_anchor(&self) -> &str {
        match self {
            Operation::Upsert(u) => &u.source_anchor,
            Operation::Delete { source_anchor, .. } => source_anchor,
            Operation::AddMember { group_anchor, .. } => group_anchor,
            Operation::RemoveMember { group_anchor, .. } => group_anchor,
            Operation::SetPasswordHash { source_anchor, .. } => source_anchor,
            Operation::ImageComplete { .. } => "",
        }
    }
}

/// A batch of operations for one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationBatch {
    /// Idempotency key: a batch id seen before returns its stored results.
    pub batch_id: Uuid,
    /// At most [`super::MAX_BATCH_OPERATIONS`] operations, applied in order.
    pub operations: Vec<Operation>,
    /// Why operations were sent, by their index in `operations`, when the agent knows a reason beyond
    /// "the object changed in AD" (e.g. `ConfigurationChanged: scope, revision 7`); the tenant's
    /// provisioning log shows it. At most [`super::MAX_REASON_CHARS`] characters each.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub reasons: std::collections::BTreeMap<usize, String>,
    /// The sender's lease epoch for the configuration ([`crate::lease`]); every operation's version
    /// compares as (epoch, version). Absent: accepted only while the configuration never had a
    /// lease (epoch 0) or from its current holder (its epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// The outcome of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OpStatus {
    /// Applied.
    Success,
    /// Nothing to do: an older or equal version, or a membership already in the wanted state.
    Skipped,
    /// Not applied; see the error.
    Error,
}

/// Error codes of a failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpErrorCode {
    /// Another source anchor already holds this user principal name. Permanent.
    DuplicateUserPrincipalName,
    /// A required attribute is missing or has the wrong type, or an attribute has a name the tenant
    /// reserves (`id`, the derived `onPremises*` properties, OData annotations). Permanent.
    InvalidAttribute,
    /// The anchor belongs to an object of another kind. Permanent.
    KindMismatch,
    /// A referenced group, member or user anchor is unknown to the tenant. Retriable after sending it.
    ReferenceNotFound,
    /// The password hash string is not `v1;PPH1_MD4,…`. Permanent.
    InvalidPasswordHash,
    /// The configuration does not have password hash sync switched on. Permanent until it is.
    PasswordHashSyncDisabled,
    /// The delete threshold was reached; retriable after an admin restart with `ForceDeletes`.
    DeleteThresholdExceeded,
    /// The configuration is quarantined; retriable after an admin restart with `Quarantine`.
    Quarantined,
    /// The tenant's write budget ran out inside the batch; nothing of this operation was applied.
    /// Retriable after `retryAfterSeconds`, in a new batch.
    Throttled,
    /// The anchor (or, for a create, the user principal name) belongs to an object owned by another
    /// configuration; a configuration acts only on the objects it created. Permanent.
    OwnedByAnotherConfiguration,
    /// The version is above [`MAX_VERSION`] or more than [`MAX_VERSION_STEP`] past the highest
    /// version the tenant applied for the configuration. Permanent.
    VersionOutOfRange,
}

impl OpErrorCode {
    /// Whether sending the same operation again later can succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            OpErrorCode::ReferenceNotFound
                | OpErrorCode::DeleteThresholdExceeded
                | OpErrorCode::Quarantined
                | OpErrorCode::Throttled
        )
    }
}

/// An operation's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpError {
    /// The code.
    pub code: OpErrorCode,
    /// A human-readable message.
    pub message: String,
    /// Same as `code.is_retriable()`, spelled out for clients that do not know every code.
    pub retriable: bool,
    /// Seconds to wait before sending the operation again (`Throttled`); absent when the server
    /// has no opinion, and then the client's own backoff applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl OpError {
    /// Builds an error; `retriable` follows the code, no retry-after.
    pub fn new(code: OpErrorCode, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
            retriable: code.is_retriable(),
            retry_after_seconds: None,
        }
    }

    /// The retriable `Throttled` error, to be retried not before `retry_after_seconds`.
    pub fn throttled(retry_after_seconds: u64) -> Self {
        OpError {
            retry_after_seconds: Some(retry_after_seconds),
            ..OpError::new(
                OpErrorCode::Throttled,
                format!(
                    "The write budget is spent; not applied. Retry in a new batch after {retry_after_seconds} s."
                ),
            )
        }
    }
}

/// The result of one operation, in the order the operations were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpResult {
    /// Index of the operation in the batch.
    pub index: usize,
    /// Success, skipped or error.
    pub status: OpStatus,
    /// The cloud object id, when the object exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<Uuid>,
    /// The error, when `status` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OpError>,
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The batch id.
    pub batch_id: Uuid,
    /// True when the batch id had been seen before and these are the stored results.
    pub replayed: bool,
    /// One result per operation.
    pub results: Vec<OpResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_optional_on_the_wire() {
        // A client or stored result from before the field existed still reads.
        let old: OpError =
            serde_json::from_str(r#"{"code":"ReferenceNotFound","message":"m","retriable":true}"#)
                .unwrap();
        assert_eq!(old.retry_after_seconds, None);
        let text = serde_json::to_value(&old).unwrap();
        assert!(text.get("retryAfterSeconds").is_none(), "{text}");
        let throttled = serde_json::to_value(OpError::throttled(7)).unwrap();
        assert_eq!(throttled["code"], "Throttled");
        assert_eq!(throttled["retriable"], true);
        assert_eq!(throttled["retryAfterSeconds"], 7);
    }
}
