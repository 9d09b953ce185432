//! Turning one decoded DirSync (or paged) entry into journal events — pure functions, no I/O.
//!
//! Rules, from the measured Samba behaviour (notes §5) and MS-ADTS:
//! - `isDeleted: TRUE` → [`Event::ObjectDeleted`] keyed by objectGUID, with the mangled tombstone DN and
//!   `lastKnownParent` (extended-DN prefixes `<GUID=…>;` stripped).
//! - A full read, or a delta entry that carries `objectClass` (a newly created object), →
//!   [`Event::ObjectUpserted`] with `full_image: true`.
//! - Otherwise the entry is a delta: `name`/`parentGUID` → [`Event::ObjectMoved`] (old DN unknown to
//!   the source: `old_dn: None`; projection knows it from its state) and `name`, the RDN's new value,
//!   also in the delta upsert (mappings fall back to it; Samba's DirSync never sends `cn`); `member;range=1-1` / `;range=0-0`
//!   → [`Event::MembersChanged`]; secret attributes present (always without values over the network)
//!   → [`Event::PasswordChanged`] carrying the new `pwdLastSet`; the remaining changed attributes
//!   (minus `objectGUID`, `instanceType`, `uSNChanged`) → [`Event::ObjectUpserted`] with
//!   `full_image: false`. An attribute removed in AD comes back in a delta *present with no values*
//!   (measured on Samba 4.17: `ldapmodify … delete: title`, docs/ldap.md § Cleared attributes); it is
//!   journaled as an [`Attribute`] with zero values, which means "now absent". A full image lists only
//!   attributes that have values.
//! - Values of secret attributes are never copied into an event, whatever the server sends.
//! - Objects whose class is not synced (computers, containers, …) produce no event.

use std::collections::{BTreeMap, HashMap};

use super::entry::{RawAttr, RawEntry};
use super::range::Incremental;
use crate::event::{Attribute, Event, Guid, ObjectClass};

/// Attributes whose values must never reach the journal (DESIGN invariant 4).
pub const SECRET_ATTRIBUTES: &[&str] = &[
    "unicodePwd",
    "dBCSPwd",
    "ntPwdHistory",
    "lmPwdHistory",
    "supplementalCredentials",
    "userPassword",
    "msDS-ManagedPassword",
    "currentValue",
    "priorValue",
    "trustAuthIncoming",
    "trustAuthOutgoing",
    "initialAuthIncoming",
    "initialAuthOutgoing",
];

/// The secret attributes whose presence in a delta signals a password change.
const PASSWORD_SIGNALS: &[&str] = &[
    "unicodePwd",
    "dBCSPwd",
    "ntPwdHistory",
    "supplementalCredentials",
];

/// Bookkeeping attributes every DirSync delta entry carries whether or not they changed.
const DELTA_NOISE: &[&str] = &["objectGUID", "instanceType", "uSNChanged"];

/// What the source learned about an object from a follow-up read (delta entries lack `objectClass`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's kind.
    pub class: ObjectClass,
    /// Its current `uSNChanged`.
    pub usn: u64,
}

/// The inputs classification needs besides the entry.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The domain's DNS name, stamped on every event.
    pub domain: &'a str,
    /// True during an initial or resync read: entries are complete objects.
    pub full_read: bool,
    /// Class and USN of delta objects, by GUID.
    pub lookup: &'a HashMap<Guid, ObjectInfo>,
}

/// Why an entry produced no events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// The entry has no usable objectGUID, so it cannot be keyed; it is quarantined (logged, skipped).
    #[error("entry {dn} has no valid objectGUID")]
    MissingGuid {
        /// The entry's DN.
        dn: String,
    },
}

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Strips extended-DN prefixes: `<GUID=…>;<SID=…>;CN=x,DC=y` → `CN=x,DC=y`.
pub fn strip_extended_dn(value: &str) -> &str {
    let mut rest = value;
    while rest.starts_with('<') {
        match rest.find(">;") {
            Some(end) => rest = &rest[end + 2..],
            None => break,
        }
    }
    rest
}

fn clean_value(value: Vec<u8>) -> Vec<u8> {
    if value.first() == Some(&b'<')
        && let Ok(text) = std::str::from_utf8(&value)
    {
        let stripped = strip_extended_dn(text);
        if stripped.len() != text.len() {
            return stripped.as_bytes().to_vec();
        }
    }
    value
}

/// Merges attributes by name (ranged chunks of one attribute become one), drops secret values.
/// With `keep_cleared` (a delta) an attribute present with no values is kept with zero values: it was
/// removed in AD. Without it (a full image) such an attribute is left out.
fn merged_attributes(attrs: Vec<RawAttr>, keep_cleared: bool) -> Vec<Attribute> {
    let mut merged: BTreeMap<String, Attribute> = BTreeMap::new();
    let mut order = Vec::new();
    for attr in attrs {
        if is_one_of(&attr.name, SECRET_ATTRIBUTES) {
            continue;
        }
        if attr.range.and_then(|r| r.incremental()) == Some(Incremental::Removed) {
            continue;
        }
        if attr.values.is_empty() && !keep_cleared {
            // "Present with no values" means absent; a full image lists only what is there.
            continue;
        }
        let key = attr.name.to_ascii_lowercase();
        let slot = merged.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Attribute {
                name: attr.name.clone(),
                values: Vec::new(),
            }
        });
        slot.values.extend(attr.values.into_iter().map(clean_value));
    }
    order
        .into_iter()
        .filter_map(|k| merged.remove(&k))
        .collect()
}

fn pwd_last_set(entry: &RawEntry) -> Option<i64> {
    entry.integer("pwdLastSet")
}

/// Orders one page's events for projection: deletes; membership removals; moves and renames; creates
/// and attribute changes; membership changes (removals once more, then additions). The order within
/// each part is kept.
///
/// A page is the directory as it is now, but its entries come in whatever order the server chose — on
/// Samba its index order, not USN order — and projection applies events one by one. Measured on Samba
/// 4.17 (docs/ldap.md § Order within a page):
/// - An object deleted and re-created with the same name (a new objectGUID, the same UPN) can come before
///   the old one's tombstone, and the cloud refuses the create (`DuplicateUserPrincipalName`: the old
///   object still holds the UPN). A tombstone is final, so deletes go first.
/// - An added member (`member;range=1-1`, a new group's `member`) is named by its DN *now*: it must be
///   read after the page's moves and renames.
/// - A removed member (`member;range=0-0`) is named by its DN *when it was removed*, which is its DN
///   now if it moved before the removal, and its old DN if it moved after. The removal is therefore
///   applied before the moves (an old DN resolves) and again after them (a current DN resolves);
///   removing a non-member is a no-op in projection.
pub fn page_order(events: Vec<Event>) -> Vec<Event> {
    let rank = |e: &Event| match e {
        Event::ObjectDeleted { .. } => 0,
        Event::ObjectMoved { .. } => 2,
        Event::MembersChanged { .. } => 4,
        _ => 3,
    };
    let mut out: Vec<(u8, Event)> = Vec::with_capacity(events.len());
    for e in events {
        if let Event::MembersChanged {
            domain,
            guid,
            usn,
            attribute,
            removed,
            ..
        } = &e
            && !removed.is_empty()
        {
            out.push((
                1,
                Event::MembersChanged {
                    domain: domain.clone(),
                    guid: *guid,
                    usn: *usn,
                    attribute: attribute.clone(),
                    added: Vec::new(),
                    removed: removed.clone(),
                },
            ));
        }
        out.push((rank(&e), e));
    }
    out.sort_by_key(|(r, _)| *r);
    out.into_iter().map(|(_, e)| e).collect()
}

/// Classifies one entry. An empty result means the object is not of a synced kind.
pub fn classify(entry: RawEntry, ctx: &Context<'_>) -> Result<Vec<Event>, ClassifyError> {
    let Some(guid) = entry.guid() else {
        return Err(ClassifyError::MissingGuid { dn: entry.dn });
    };
    let domain = ctx.domain.to_string();
    let info = ctx.lookup.get(&guid);
    let usn = entry
        .integer("uSNChanged")
        .and_then(|u| u64::try_from(u).ok())
        .or(info.map(|i| i.usn))
        .unwrap_or(0);

    if entry.is_deleted() {
        let last_known_parent = entry
            .text("lastKnownParent")
            .map(|p| strip_extended_dn(p).to_string());
        return Ok(vec![Event::ObjectDeleted {
            domain,
            guid,
            usn,
            tombstone_dn: entry.dn,
            last_known_parent,
        }]);
    }

    let own_class = entry
        .get("objectClass")
        .filter(|a| !a.values.is_empty())
        .map(|_| ObjectClass::from_values(&entry.texts("objectClass")));
    let class = match (own_class.clone(), info) {
        (Some(c), _) => c,
        (None, Some(i)) => i.class.clone(),
        (None, None) => return Ok(Vec::new()),
    };
    if matches!(class, ObjectClass::Other(_)) {
        return Ok(Vec::new());
    }

    let password_signal = !ctx.full_read
        && entry
            .attrs
            .iter()
            .any(|a| is_one_of(&a.name, PASSWORD_SIGNALS));

    if ctx.full_read || own_class.is_some() {
        let pwd = pwd_last_set(&entry);
        // A new account created without a password also shows the secret attributes; only a
        // non-zero pwdLastSet says a password was actually set.
        let password_signal = password_signal && pwd.is_some_and(|p| p != 0);
        let dn = entry.dn;
        let mut events = vec![Event::ObjectUpserted {
            domain: domain.clone(),
            guid,
            usn,
            dn,
            class,
            attributes: merged_attributes(entry.attrs, false),
            full_image: true,
        }];
        if password_signal {
            events.push(Event::PasswordChanged {
                domain,
                guid,
                usn,
                pwd_last_set: pwd,
            });
        }
        return Ok(events);
    }

    classify_delta(entry, domain, guid, usn, class, password_signal)
}

fn classify_delta(
    entry: RawEntry,
    domain: String,
    guid: Guid,
    usn: u64,
    class: ObjectClass,
    password_signal: bool,
) -> Result<Vec<Event>, ClassifyError> {
    let moved = entry.has("name") || entry.has("parentGUID");
    let pwd = pwd_last_set(&entry);
    let mut members: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut changed = Vec::new();
    for attr in entry.attrs {
        if let Some(kind) = attr.range.and_then(|r| r.incremental()) {
            let slot = members.entry(attr.name.clone()).or_default();
            let dns = attr.values.into_iter().filter_map(|v| {
                String::from_utf8(v)
                    .ok()
                    .map(|s| strip_extended_dn(&s).to_string())
            });
            match kind {
                Incremental::Added => slot.0.extend(dns),
                Incremental::Removed => slot.1.extend(dns),
            }
            continue;
        }
        let noise = is_one_of(&attr.name, DELTA_NOISE)
            || is_one_of(&attr.name, SECRET_ATTRIBUTES)
            // `name` stays: it is the new RDN value, which mappings read (Samba sends no `cn`).
            || (moved && attr.name.eq_ignore_ascii_case("parentGUID"))
            || (password_signal && attr.name.eq_ignore_ascii_case("pwdLastSet"));
        if !noise {
            changed.push(attr);
        }
    }

    let mut events = Vec::new();
    if moved {
        events.push(Event::ObjectMoved {
            domain: domain.clone(),
            guid,
            usn,
            old_dn: None,
            new_dn: entry.dn.clone(),
        });
    }
    if !changed.is_empty() {
        events.push(Event::ObjectUpserted {
            domain: domain.clone(),
            guid,
            usn,
            dn: entry.dn,
            class,
            attributes: merged_attributes(changed, true),
            full_image: false,
        });
    }
    for (attribute, (added, removed)) in members {
        events.push(Event::MembersChanged {
            domain: domain.clone(),
            guid,
            usn,
            attribute,
            added,
            removed,
        });
    }
    if password_signal {
        events.push(Event::PasswordChanged {
            domain,
            guid,
            usn,
            pwd_last_set: pwd,
        });
    }
    Ok(events)
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
