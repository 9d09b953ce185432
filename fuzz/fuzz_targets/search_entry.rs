//! Fuzzes the SearchResultEntry path as it runs on server input: BER tree → entry → classification
//! (as a full read and as a delta). Nothing may panic.
#![no_main]

use std::collections::HashMap;

use cloudsync_agent::source::ldap::ber::parse_structure;
use cloudsync_agent::source::ldap::classify::{Context, classify};
use cloudsync_agent::source::ldap::entry::parse_entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tag) = parse_structure(data) else {
        return;
    };
    let Ok(entry) = parse_entry(tag) else { return };
    let lookup = HashMap::new();
    for full_read in [true, false] {
        let ctx = Context {
            domain: "fuzz.test",
            full_read,
            lookup: &lookup,
        };
        let _ = classify(entry.clone(), &ctx);
    }
});
