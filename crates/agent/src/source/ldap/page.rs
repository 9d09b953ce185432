//! Turning a buffered chunk of entries into events: complete ranged attributes, look up the class of
//! delta objects, classify. Shared by the DirSync pass and the uSNChanged fallback.

use std::collections::HashMap;

use ldap3::Scope;

use super::classify::{self, Context, ObjectInfo};
use super::conn::DcConn;
use super::entry::{RawAttr, RawEntry, parse_entry};
use super::error::LdapSourceError;
use super::range::{self, fetch_ranged};
use crate::event::{Event, Guid, ObjectClass};

/// GUIDs per lookup search (the filter grows by ~60 bytes per GUID).
const LOOKUP_BATCH: usize = 100;

/// Completes every attribute the server returned in ranged chunks (`member;range=0-1499`).
pub async fn complete_ranges(
    conn: &mut DcConn,
    entry: &mut RawEntry,
) -> Result<(), LdapSourceError> {
    let mut extra = Vec::new();
    for attr in &entry.attrs {
        let Some(r) = attr.range else { continue };
        if r.incremental().is_some() {
            continue;
        }
        if let Some(next) = r.next_start() {
            let values = fetch_ranged(conn, &entry.dn, &attr.name, next, 0).await?;
            extra.push(RawAttr {
                name: attr.name.clone(),
                range: None,
                values,
            });
        }
    }
    entry.attrs.extend(extra);
    Ok(())
}

/// `\xx` escaping of raw bytes for an LDAP filter value.
pub fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Reads `objectClass` and `uSNChanged` of the given objects (delta entries carry neither).
pub async fn lookup(
    conn: &mut DcConn,
    base: &str,
    guids: &[Guid],
) -> Result<HashMap<Guid, ObjectInfo>, LdapSourceError> {
    let mut found = HashMap::new();
    for batch in guids.chunks(LOOKUP_BATCH) {
        let filter = format!(
            "(|{})",
            batch
                .iter()
                .map(|g| format!("(objectGUID={})", escape_bytes(&g.0)))
                .collect::<String>()
        );
        let mut stream = conn
            .op()
            .with_search_options(range::unlimited())
            .streaming_search(
                base,
                Scope::Subtree,
                &filter,
                vec!["objectGUID", "objectClass", "uSNChanged"],
            )
            .await?;
        while let Some(re) = stream.next().await? {
            if re.is_ref() || re.is_intermediate() {
                continue;
            }
            let e = parse_entry(re.0)?;
            if let Some(g) = e.guid() {
                let usn = e
                    .integer("uSNChanged")
                    .and_then(|u| u64::try_from(u).ok())
                    .unwrap_or(0);
                let class = ObjectClass::from_values(&e.texts("objectClass"));
                found.insert(g, ObjectInfo { class, usn });
            }
        }
        let res = stream.finish().await;
        if res.rc != 0 {
            return Err(LdapSourceError::from_result(res));
        }
    }
    Ok(found)
}

/// Turns a chunk of entries into events (in entry order). Unkeyable entries are logged and skipped.
pub async fn to_events(
    conn: &mut DcConn,
    base: &str,
    domain: &str,
    full_read: bool,
    mut entries: Vec<RawEntry>,
) -> Result<Vec<Event>, LdapSourceError> {
    for entry in &mut entries {
        complete_ranges(conn, entry).await?;
    }
    let need: Vec<Guid> = if full_read {
        Vec::new()
    } else {
        entries
            .iter()
            .filter(|e| !e.is_deleted() && e.get("objectClass").is_none())
            .filter_map(RawEntry::guid)
            .collect()
    };
    let info = if need.is_empty() {
        HashMap::new()
    } else {
        lookup(conn, base, &need).await?
    };
    let ctx = Context {
        domain,
        full_read,
        lookup: &info,
    };
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        match classify::classify(entry, &ctx) {
            Ok(evs) => events.extend(evs),
            Err(err) => {
                tracing::warn!(domain, error = %err, "Skipping an entry that cannot be keyed.")
            }
        }
    }
    Ok(classify::page_order(events))
}
