//! Renderings of records for the `cloudsync journal` tooling: one human-readable line, or a JSON object.
//!
//! JSON shape (one object per record; `event` holds the variant's fields):
//! `{"seq":7,"appended_at":"2026-11-25T10:00:00.000Z","kind":"object-upserted","domain":"corp.example.test",
//!   "guid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","event":{…}}`.
//! GUIDs are text in AD's form; an attribute whose values are all UTF-8 (and that is not a known binary
//! attribute) lists `values` as strings, otherwise `base64` lists them in standard base64. The OrgId
//! password hash is redacted unless the caller asks for it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::Record;
use crate::event::{Attribute, Event, ResyncReason};

/// Attributes that are binary even when their bytes happen to be valid UTF-8.
const BINARY_ATTRIBUTES: &[&str] = &[
    "objectguid",
    "objectsid",
    "sidhistory",
    "msds-consistencyguid",
    "thumbnailphoto",
    "jpegphoto",
    "usercertificate",
    "ntsecuritydescriptor",
];

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_time(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("@{unix_ms}ms"))
}

fn redacted(hash: &str, reveal: bool) -> String {
    if reveal {
        hash.to_string()
    } else {
        format!("<redacted: {} chars>", hash.len())
    }
}

fn attribute_json(attr: &Attribute) -> Value {
    let binary = BINARY_ATTRIBUTES.contains(&attr.name.to_ascii_lowercase().as_str());
    let texts: Option<Vec<&str>> = if binary {
        None
    } else {
        attr.values
            .iter()
            .map(|v| std::str::from_utf8(v).ok())
            .collect()
    };
    match texts {
        Some(values) => json!({ "name": attr.name, "values": values }),
        None => {
            let encoded: Vec<String> = attr.values.iter().map(|v| BASE64.encode(v)).collect();
            json!({ "name": attr.name, "base64": encoded })
        }
    }
}

fn reason_json(reason: &ResyncReason) -> Value {
    match reason {
        ResyncReason::Initial => json!({ "initial": null }),
        ResyncReason::CookieRejected(msg) => json!({ "cookie_rejected": msg }),
        ResyncReason::Requested => json!({ "requested": null }),
    }
}

fn event_json(event: &Event, reveal_secrets: bool) -> Value {
    match event {
        Event::ObjectUpserted {
            usn,
            dn,
            class,
            attributes,
            full_image,
            ..
        } => json!({
            "usn": usn, "dn": dn, "class": class.as_str(), "full_image": full_image,
            "attributes": attributes.iter().map(attribute_json).collect::<Vec<_>>(),
        }),
        Event::MembersChanged {
            usn,
            attribute,
            added,
            removed,
            ..
        } => {
            json!({ "usn": usn, "attribute": attribute, "added": added, "removed": removed })
        }
        Event::ObjectDeleted {
            usn,
            tombstone_dn,
            last_known_parent,
            ..
        } => json!({
            "usn": usn, "tombstone_dn": tombstone_dn, "last_known_parent": last_known_parent,
        }),
        Event::ObjectMoved {
            usn,
            old_dn,
            new_dn,
            ..
        } => {
            json!({ "usn": usn, "old_dn": old_dn, "new_dn": new_dn })
        }
        Event::PasswordChanged {
            usn, pwd_last_set, ..
        } => {
            json!({ "usn": usn, "pwd_last_set": pwd_last_set })
        }
        Event::PasswordHashChanged { org_id_hash, .. } => {
            json!({ "org_id_hash": redacted(org_id_hash, reveal_secrets) })
        }
        Event::ResyncStarted { source, reason, .. } => {
            json!({ "source": source.as_str(), "reason": reason_json(reason) })
        }
        Event::ResyncCompleted { source, .. } => json!({ "source": source.as_str() }),
        Event::WritebackAnswered {
            request_id,
            kind,
            anchor,
            user_principal_name,
            requested_by,
            code,
            message,
            ..
        } => json!({
            "request_id": request_id,
            "kind": kind,
            "anchor": anchor,
            "user_principal_name": user_principal_name,
            "requested_by": requested_by,
            "code": code,
            "message": message,
        }),
    }
}

/// The JSON object of a record (see the module doc).
pub fn record_json(record: &Record, reveal_secrets: bool) -> Value {
    json!({
        "seq": record.seq,
        "appended_at": format_time(record.appended_at_unix_ms),
        "appended_at_unix_ms": record.appended_at_unix_ms,
        "kind": record.event.kind().as_str(),
        "domain": record.event.domain(),
        "guid": record.event.guid().map(|g| g.to_string()),
        "event": event_json(&record.event, reveal_secrets),
    })
}

/// A short description of what the event says (DN, membership delta, …) for the timeline.
pub fn summary(event: &Event) -> String {
    match event {
        Event::ObjectUpserted {
            dn,
            class,
            attributes,
            full_image,
            ..
        } => format!(
            "{dn} ({}, {} of {} attributes)",
            class.as_str(),
            if *full_image { "full image" } else { "delta" },
            attributes.len()
        ),
        Event::MembersChanged {
            attribute,
            added,
            removed,
            ..
        } => {
            format!("{attribute}: +{} -{}", added.len(), removed.len())
        }
        Event::ObjectDeleted { tombstone_dn, .. } => tombstone_dn.clone(),
        Event::ObjectMoved { old_dn, new_dn, .. } => {
            format!("{} -> {new_dn}", old_dn.as_deref().unwrap_or("?"))
        }
        Event::PasswordChanged { pwd_last_set, .. } => match pwd_last_set {
            Some(v) => format!("pwdLastSet={v}"),
            None => "pwdLastSet unknown".into(),
        },
        Event::PasswordHashChanged { .. } => "salted OrgId hash updated (value redacted)".into(),
        Event::ResyncStarted { source, reason, .. } => {
            let why = match reason {
                ResyncReason::Initial => "initial read".to_string(),
                ResyncReason::CookieRejected(msg) => format!("cookie rejected: {msg}"),
                ResyncReason::Requested => "requested".to_string(),
            };
            format!("{} ({why})", source.as_str())
        }
        Event::ResyncCompleted { source, .. } => source.as_str().to_string(),
        Event::WritebackAnswered {
            kind,
            user_principal_name,
            requested_by,
            code,
            ..
        } => format!("{kind} of {user_principal_name} by {requested_by}: {code}"),
    }
}

/// One timeline line: seq, time, domain, kind, guid (or `-`), summary.
pub fn timeline_line(record: &Record) -> String {
    let guid = record
        .event
        .guid()
        .map_or_else(|| "-".to_string(), |g| g.to_string());
    format!(
        "{:>10}  {}  {}  {:<21}  {:<36}  {}",
        record.seq,
        format_time(record.appended_at_unix_ms),
        record.event.domain(),
        record.event.kind().as_str(),
        guid,
        summary(&record.event)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Guid, ObjectClass};

    #[test]
    fn time_is_rfc3339_utc() {
        // 2025-11-25T10:00:00Z is 1_764_064_800 s after the epoch (date -u -d @1764064800).
        assert_eq!(format_time(1_764_064_800_123), "2025-11-25T10:00:00.123Z");
    }

    #[test]
    fn binary_values_are_base64_and_text_stays_text() {
        let record = Record {
            seq: 3,
            appended_at_unix_ms: 0,
            event: Event::ObjectUpserted {
                domain: "d.test".into(),
                guid: Guid([0xab; 16]),
                usn: 1,
                dn: "CN=x".into(),
                class: ObjectClass::User,
                attributes: vec![
                    Attribute::text("cn", &["x"]),
                    Attribute {
                        name: "objectGUID".into(),
                        values: vec![b"AAAA".to_vec()],
                    },
                    Attribute {
                        name: "photo".into(),
                        values: vec![vec![0xff, 0x00]],
                    },
                ],
                full_image: true,
            },
        };
        let v = record_json(&record, false);
        assert_eq!(v["guid"], "abababab-abab-abab-abab-abababababab");
        assert_eq!(v["kind"], "object-upserted");
        let attrs = &v["event"]["attributes"];
        assert_eq!(attrs[0]["values"][0], "x");
        assert_eq!(attrs[1]["base64"][0], "QUFBQQ==");
        assert_eq!(attrs[2]["base64"][0], "/wA=");
    }

    #[test]
    fn the_password_hash_is_redacted_unless_revealed() {
        let record = Record {
            seq: 1,
            appended_at_unix_ms: 0,
            event: Event::PasswordHashChanged {
                domain: "d".into(),
                guid: Guid([1; 16]),
                org_id_hash: "v1;PPH1_MD4,aa,1000,bb;".into(),
            },
        };
        let hidden = record_json(&record, false).to_string();
        assert!(!hidden.contains("PPH1"), "{hidden}");
        assert!(!timeline_line(&record).contains("PPH1"));
        assert!(
            record_json(&record, true)
                .to_string()
                .contains("PPH1_MD4,aa")
        );
    }
}
