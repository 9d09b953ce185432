//! The journal's event types: everything a source reads from Active Directory, as it will be stored.
//!
//! Enters: nothing (pure data). Leaves: [`Event`], written by the sources (`source::ldap`, `source::drsr`
//! through `phs`) and read by projection and the `cloudsync journal` tooling.
//!
//! These types are encoded with bincode's `standard()` configuration, which is **not self-describing**:
//! adding, removing or reordering a field or variant changes the on-disk format. Any such change needs a
//! new journal format version and a step in the `migrations/` crate with the old types frozen there.
//! For the same reason no serde attribute that changes the shape (`flatten`, `untagged`,
//! `skip_serializing_if`, internally tagged enums) may be used here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An Active Directory `objectGUID`: 16 bytes in the order AD stores them (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Builds a GUID from the 16 raw bytes of an `objectGUID` value; `None` unless exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Guid> {
        <[u8; 16]>::try_from(bytes).ok().map(Guid)
    }

    /// Parses the textual form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (braces allowed), as AD prints it.
    pub fn parse(text: &str) -> Option<Guid> {
        let text = text.trim().trim_start_matches('{').trim_end_matches('}');
        let hexdigits: String = text.chars().filter(|c| *c != '-').collect();
        if hexdigits.len() != 32 || text.len() != 36 {
            return None;
        }
        let mut be = [0u8; 16];
        hex::decode_to_slice(&hexdigits, &mut be).ok()?;
        let mut le = be;
        le[0..4].reverse();
        le[4..6].reverse();
        le[6..8].reverse();
        Some(Guid(le))
    }
}

impl fmt::Display for Guid {
    /// The textual form AD uses: the first three fields are stored little-endian.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// The kind of directory object an event is about, from its `objectClass` values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectClass {
    /// `user` (not a computer).
    User,
    /// `inetOrgPerson` (handled as a user downstream).
    InetOrgPerson,
    /// `group`.
    Group,
    /// `contact`.
    Contact,
    /// `organizationalUnit`, kept as far as scoping needs it.
    OrganizationalUnit,
    /// Anything else, by its most specific `objectClass` value.
    Other(String),
}

impl ObjectClass {
    /// Classifies an object from its `objectClass` values (any order, any case).
    pub fn from_values<S: AsRef<str>>(values: &[S]) -> ObjectClass {
        let has = |name: &str| values.iter().any(|v| v.as_ref().eq_ignore_ascii_case(name));
        if has("inetOrgPerson") {
            ObjectClass::InetOrgPerson
        } else if has("computer") {
            ObjectClass::Other("computer".into())
        } else if has("user") {
            ObjectClass::User
        } else if has("group") {
            ObjectClass::Group
        } else if has("contact") {
            ObjectClass::Contact
        } else if has("organizationalUnit") {
            ObjectClass::OrganizationalUnit
        } else {
            ObjectClass::Other(
                values
                    .last()
                    .map(|v| v.as_ref().to_string())
                    .unwrap_or_default(),
            )
        }
    }

    /// A short lowercase name for logs and the `journal` tooling.
    pub fn as_str(&self) -> &str {
        match self {
            ObjectClass::User => "user",
            ObjectClass::InetOrgPerson => "inetOrgPerson",
            ObjectClass::Group => "group",
            ObjectClass::Contact => "contact",
            ObjectClass::OrganizationalUnit => "organizationalUnit",
            ObjectClass::Other(s) => s,
        }
    }
}

/// One attribute as read from AD, binary-safe.
///
/// An empty `values` means the attribute is now absent (AD's "present with no values" in DirSync).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// The LDAP attribute name as the server spelled it (without `;range=` options).
    pub name: String,
    /// The raw values; text attributes are UTF-8, binary ones (objectGUID, objectSid, …) raw bytes.
    pub values: Vec<Vec<u8>>,
}

impl Attribute {
    /// An attribute with text values.
    pub fn text<S: AsRef<str>>(name: &str, values: &[S]) -> Attribute {
        Attribute {
            name: name.to_string(),
            values: values
                .iter()
                .map(|v| v.as_ref().as_bytes().to_vec())
                .collect(),
        }
    }
}

/// Which reader produced an event or owns a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    /// The LDAP DirSync change feed (`source::ldap`).
    LdapDirSync,
    /// The paged uSNChanged fallback for accounts without the DirSync right.
    LdapUsnPoll,
    /// MS-DRSR replication for password hash sync (`source::drsr`).
    Drsr,
    /// Samba's privileged local socket (`ldap_priv`) for password hash sync on the DC itself.
    SambaPriv,
}

impl SourceKind {
    /// A stable lowercase name (used in checkpoint keys and the tooling).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::LdapDirSync => "ldap-dirsync",
            SourceKind::LdapUsnPoll => "ldap-usn",
            SourceKind::Drsr => "drsr",
            SourceKind::SambaPriv => "samba-priv",
        }
    }
}

/// Why a resync (a fresh full read of a domain) started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResyncReason {
    /// No checkpoint existed: the first read of this domain.
    Initial,
    /// The server refused the stored cookie (invalid or expired); the message is the server's.
    CookieRejected(String),
    /// An administrator asked for it (a restart with scope Full, or the CLI).
    Requested,
}

/// What the journal records. Every variant names its domain (the DNS name, e.g. `corp.example.test`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An object was created or changed. With `full_image` the attributes are the complete object (initial
    /// or resync read); otherwise exactly the attributes that changed.
    ObjectUpserted {
        /// The domain the object lives in.
        domain: String,
        /// The object's `objectGUID`, the key that survives renames and moves.
        guid: Guid,
        /// The object's `uSNChanged` as read (0 when the server did not send it).
        usn: u64,
        /// The object's distinguished name at the time of the read.
        dn: String,
        /// The object's kind.
        class: ObjectClass,
        /// The changed (or, for a full image, all) attributes, binary-safe.
        attributes: Vec<Attribute>,
        /// True when `attributes` is the whole object rather than a delta.
        full_image: bool,
    },
    /// Linked values of a multi-valued DN attribute changed (normally `member`).
    MembersChanged {
        /// The domain of the group.
        domain: String,
        /// The group's `objectGUID`.
        guid: Guid,
        /// The group's `uSNChanged` as read (0 when unknown).
        usn: u64,
        /// The linked attribute, normally `member`.
        attribute: String,
        /// DNs added (DirSync `member;range=1-1`).
        added: Vec<String>,
        /// DNs removed (DirSync `member;range=0-0`).
        removed: Vec<String>,
    },
    /// The object was deleted; AD keeps a tombstone.
    ObjectDeleted {
        /// The domain the object lived in.
        domain: String,
        /// The deleted object's `objectGUID`.
        guid: Guid,
        /// The tombstone's `uSNChanged` (0 when unknown).
        usn: u64,
        /// The tombstone's DN (`CN=name\0ADEL:guid,CN=Deleted Objects,…`).
        tombstone_dn: String,
        /// `lastKnownParent`, when the server sent it.
        last_known_parent: Option<String>,
    },
    /// The object was renamed or moved to another parent.
    ObjectMoved {
        /// The domain the object lives in.
        domain: String,
        /// The object's `objectGUID`.
        guid: Guid,
        /// The object's `uSNChanged` (0 when unknown).
        usn: u64,
        /// The DN before, when the source knows it.
        old_dn: Option<String>,
        /// The DN now.
        new_dn: String,
    },
    /// The account's password changed in AD (DirSync shows `unicodePwd` present without values).
    PasswordChanged {
        /// The domain of the account.
        domain: String,
        /// The account's `objectGUID`.
        guid: Guid,
        /// The account's `uSNChanged` (0 when unknown).
        usn: u64,
        /// The new `pwdLastSet` (FILETIME), when sent.
        pwd_last_set: Option<i64>,
    },
    /// A new salted password hash is ready for the cloud. Carries only the OrgId string
    /// `v1;PPH1_MD4,<salt>,<iterations>,<hash>;` — never an NT hash (DESIGN invariant 4).
    PasswordHashChanged {
        /// The domain of the account.
        domain: String,
        /// The account's `objectGUID`.
        guid: Guid,
        /// The salted PBKDF2-HMAC-SHA256 value in the OrgId format.
        org_id_hash: String,
    },
    /// A full read of the domain starts here: objects not seen again before the next `ResyncCompleted`
    /// are gone.
    ResyncStarted {
        /// The domain being re-read.
        domain: String,
        /// The source doing the read.
        source: SourceKind,
        /// Why.
        reason: ResyncReason,
    },
    /// The full read that the last `ResyncStarted` of this domain and source announced is complete.
    ResyncCompleted {
        /// The domain that was re-read.
        domain: String,
        /// The source that did the read.
        source: SourceKind,
    },
    /// A password writeback request from the cloud and the agent's answer (an audit record; never the
    /// password). Appended after the answer is known, before it is sent; projection ignores it.
    WritebackAnswered {
        /// The domain of the user.
        domain: String,
        /// The tenant's request id (its idempotency key).
        request_id: String,
        /// `reset` or `unlock`, with `+must-change` when the user must change it at next sign-in.
        kind: String,
        /// The user's source anchor, as the request named it.
        anchor: String,
        /// The user's UPN, as the request named it.
        user_principal_name: String,
        /// Who asked: `admin:<upn>` or `self-service:<upn>`.
        requested_by: String,
        /// 0, or the real product's 33001–33009.
        code: u32,
        /// The answer's text.
        message: String,
    },
}

/// The kinds of [`Event`], for filtering and counting (`cloudsync journal replay --kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// [`Event::ObjectUpserted`].
    ObjectUpserted,
    /// [`Event::MembersChanged`].
    MembersChanged,
    /// [`Event::ObjectDeleted`].
    ObjectDeleted,
    /// [`Event::ObjectMoved`].
    ObjectMoved,
    /// [`Event::PasswordChanged`].
    PasswordChanged,
    /// [`Event::PasswordHashChanged`].
    PasswordHashChanged,
    /// [`Event::ResyncStarted`].
    ResyncStarted,
    /// [`Event::ResyncCompleted`].
    ResyncCompleted,
    /// [`Event::WritebackAnswered`].
    WritebackAnswered,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 9] = [
        EventKind::ObjectUpserted,
        EventKind::MembersChanged,
        EventKind::ObjectDeleted,
        EventKind::ObjectMoved,
        EventKind::PasswordChanged,
        EventKind::PasswordHashChanged,
        EventKind::ResyncStarted,
        EventKind::ResyncCompleted,
        EventKind::WritebackAnswered,
    ];

    /// The kebab-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ObjectUpserted => "object-upserted",
            EventKind::MembersChanged => "members-changed",
            EventKind::ObjectDeleted => "object-deleted",
            EventKind::ObjectMoved => "object-moved",
            EventKind::PasswordChanged => "password-changed",
            EventKind::PasswordHashChanged => "password-hash-changed",
            EventKind::ResyncStarted => "resync-started",
            EventKind::ResyncCompleted => "resync-completed",
            EventKind::WritebackAnswered => "writeback-answered",
        }
    }

    /// Parses [`EventKind::as_str`] (case-insensitive; `_` accepted for `-`).
    pub fn parse(text: &str) -> Option<EventKind> {
        let norm = text.trim().to_ascii_lowercase().replace('_', "-");
        EventKind::ALL.into_iter().find(|k| k.as_str() == norm)
    }
}

impl Event {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ObjectUpserted { .. } => EventKind::ObjectUpserted,
            Event::MembersChanged { .. } => EventKind::MembersChanged,
            Event::ObjectDeleted { .. } => EventKind::ObjectDeleted,
            Event::ObjectMoved { .. } => EventKind::ObjectMoved,
            Event::PasswordChanged { .. } => EventKind::PasswordChanged,
            Event::PasswordHashChanged { .. } => EventKind::PasswordHashChanged,
            Event::ResyncStarted { .. } => EventKind::ResyncStarted,
            Event::ResyncCompleted { .. } => EventKind::ResyncCompleted,
            Event::WritebackAnswered { .. } => EventKind::WritebackAnswered,
        }
    }

    /// The domain the event belongs to.
    pub fn domain(&self) -> &str {
        match self {
            Event::ObjectUpserted { domain, .. }
            | Event::MembersChanged { domain, .. }
            | Event::ObjectDeleted { domain, .. }
            | Event::ObjectMoved { domain, .. }
            | Event::PasswordChanged { domain, .. }
            | Event::PasswordHashChanged { domain, .. }
            | Event::ResyncStarted { domain, .. }
            | Event::ResyncCompleted { domain, .. }
            | Event::WritebackAnswered { domain, .. } => domain,
        }
    }

    /// The object the event is about, if it is about one object.
    pub fn guid(&self) -> Option<Guid> {
        match self {
            Event::ObjectUpserted { guid, .. }
            | Event::MembersChanged { guid, .. }
            | Event::ObjectDeleted { guid, .. }
            | Event::ObjectMoved { guid, .. }
            | Event::PasswordChanged { guid, .. }
            | Event::PasswordHashChanged { guid, .. } => Some(*guid),
            Event::ResyncStarted { .. }
            | Event::ResyncCompleted { .. }
            | Event::WritebackAnswered { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trip_uses_ad_byte_order() {
        // objectGUID bytes as AD stores them; the textual form swaps the first three fields.
        let raw = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let g = Guid(raw);
        assert_eq!(g.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(
            Guid::parse("{00112233-4455-6677-8899-AABBCCDDEEFF}"),
            Some(g)
        );
        assert_eq!(Guid::parse("00112233445566778899aabbccddeeff"), None);
        assert_eq!(Guid::from_slice(&raw[..15]), None);
    }

    #[test]
    fn object_class_prefers_the_most_specific_value() {
        assert_eq!(
            ObjectClass::from_values(&[
                "top",
                "person",
                "organizationalPerson",
                "user",
                "inetOrgPerson"
            ]),
            ObjectClass::InetOrgPerson
        );
        assert_eq!(
            ObjectClass::from_values(&[
                "top",
                "person",
                "organizationalPerson",
                "user",
                "computer"
            ]),
            ObjectClass::Other("computer".into())
        );
        assert_eq!(
            ObjectClass::from_values(&["top", "GROUP"]),
            ObjectClass::Group
        );
        assert_eq!(
            ObjectClass::from_values(&["top", "contact"]),
            ObjectClass::Contact
        );
    }

    #[test]
    fn kind_names_parse_back() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(
            EventKind::parse("OBJECT_DELETED"),
            Some(EventKind::ObjectDeleted)
        );
        assert_eq!(EventKind::parse("nope"), None);
    }
}
