//! The fixed events of the journal crash test: `cloudsync journal crash-writer` appends them until it is
//! SIGKILLed, and tests/journal_crash.rs checks every surviving event against this function.

use crate::event::{Attribute, Event, Guid, ObjectClass};

/// The event the crash writer appends as item `index` of batch `batch` (the crash test rebuilds it).
pub fn crash_event(batch: u64, index: u64) -> Event {
    let mut guid = [0u8; 16];
    guid[..8].copy_from_slice(&batch.to_be_bytes());
    guid[8..].copy_from_slice(&index.to_be_bytes());
    Event::ObjectUpserted {
        domain: "crash.example.test".into(),
        guid: Guid(guid),
        usn: batch * 1_000_000 + index,
        dn: format!("CN=obj-{batch}-{index},OU=Crash,DC=crash,DC=example,DC=test"),
        class: ObjectClass::User,
        attributes: vec![Attribute::text("description", &["x".repeat(200)])],
        full_image: true,
    }
}
