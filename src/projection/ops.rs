//! The cloud operations projection emits.
//!
//! These mirror `api::ops` (the agent↔tenant contract on the `tenant` branch) field for field, so that
//! once `api` is on `main` this module becomes `pub use crate::api::ops::{…}` and nothing else changes.
//! Upserts carry the full mapped attribute set and `version` = the journal sequence number of the event
//! that produced them (monotonic per object).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kind of a cloud directory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// A user (also AD's inetOrgPerson).
    User,
    /// A group.
    Group,
    /// A contact.
    Contact,
}

impl ObjectKind {
    /// The lower-case name used in logs and configuration keys.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
            ObjectKind::Contact => "contact",
        }
    }
}

/// Graph's `onPremises*` identity of a synced object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnPremisesIdentity {
    /// `sAMAccountName`.
    #[serde(default)]
    pub sam_account_name: Option<String>,
    /// The object's distinguished name.
    #[serde(default)]
    pub distinguished_name: Option<String>,
    /// The objectSid as `S-1-5-21-…`.
    #[serde(default)]
    pub security_identifier: Option<String>,
    /// The domain's DNS name.
    #[serde(default)]
    pub domain_name: Option<String>,
}

/// Create or fully replace an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upsert {
    /// User, group or contact.
    pub kind: ObjectKind,
    /// The source anchor (`onPremisesImmutableId`).
    pub source_anchor: String,
    /// The journal sequence number of the event that produced this upsert.
    pub version: u64,
    /// On-premises identity.
    #[serde(default)]
    pub on_premises: OnPremisesIdentity,
    /// Mapped attributes by Graph property name.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// One cloud operation.
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
        /// The journal sequence number of the event that caused the delete.
        version: u64,
    },
    /// Add a member to a group.
    #[serde(rename_all = "camelCase")]
    AddMember {
        /// The group's anchor.
        group_anchor: String,
        /// The member's anchor.
        member_anchor: String,
    },
    /// Remove a member from a group.
    #[serde(rename_all = "camelCase")]
    RemoveMember {
        /// The group's anchor.
        group_anchor: String,
        /// The member's anchor.
        member_anchor: String,
    },
    /// Set a user's synced password hash.
    #[serde(rename_all = "camelCase")]
    SetPasswordHash {
        /// The user's anchor.
        source_anchor: String,
        /// The journal sequence number of the hash event.
        version: u64,
        /// `v1;PPH1_MD4,<salt>,<iterations>,<hash>;`
        credential: String,
    },
}

impl Operation {
    /// The action name used in provisioning logs.
    pub fn action(&self) -> &'static str {
        match self {
            Operation::Upsert(_) => "upsert",
            Operation::Delete { .. } => "delete",
            Operation::AddMember { .. } => "addMember",
            Operation::RemoveMember { .. } => "removeMember",
            Operation::SetPasswordHash { .. } => "setPasswordHash",
        }
    }

    /// The anchor the operation is about (the group's, for membership operations).
    pub fn source_anchor(&self) -> &str {
        match self {
            Operation::Upsert(u) => &u.source_anchor,
            Operation::Delete { source_anchor, .. }
            | Operation::SetPasswordHash { source_anchor, .. } => source_anchor,
            Operation::AddMember { group_anchor, .. }
            | Operation::RemoveMember { group_anchor, .. } => group_anchor,
        }
    }
}
