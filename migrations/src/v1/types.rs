//! The v1 payload types, frozen copies of `cloudsync::event` and the journal's stored records as v1 encodes
//! them. Field and variant order is the format: never edit, only add a `v2` module beside this one.

#![allow(missing_docs)] // Mirrors of documented types in the cloudsync crate; the docs live there.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guid(pub [u8; 16]);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectClass {
    User,
    InetOrgPerson,
    Group,
    Contact,
    OrganizationalUnit,
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub values: Vec<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    LdapDirSync,
    LdapUsnPoll,
    Drsr,
    SambaPriv,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResyncReason {
    Initial,
    CookieRejected(String),
    Requested,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    ObjectUpserted {
        domain: String,
        guid: Guid,
        usn: u64,
        dn: String,
        class: ObjectClass,
        attributes: Vec<Attribute>,
        full_image: bool,
    },
    MembersChanged {
        domain: String,
        guid: Guid,
        usn: u64,
        attribute: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
    ObjectDeleted {
        domain: String,
        guid: Guid,
        usn: u64,
        tombstone_dn: String,
        last_known_parent: Option<String>,
    },
    ObjectMoved {
        domain: String,
        guid: Guid,
        usn: u64,
        old_dn: Option<String>,
        new_dn: String,
    },
    PasswordChanged {
        domain: String,
        guid: Guid,
        usn: u64,
        pwd_last_set: Option<i64>,
    },
    PasswordHashChanged {
        domain: String,
        guid: Guid,
        org_id_hash: String,
    },
    ResyncStarted {
        domain: String,
        source: SourceKind,
        reason: ResyncReason,
    },
    ResyncCompleted {
        domain: String,
        source: SourceKind,
    },
}

/// Payload of an event record (record type 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub appended_at_unix_ms: i64,
    pub event: Event,
}

/// Payload of a source checkpoint (record type 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheckpoint {
    pub domain: String,
    pub source: SourceKind,
    pub data: Vec<u8>,
    pub covers_seq: u64,
}
