//! Helpers shared by the `ldap_*` integration tests: an agent configuration for a lab DC, journal
//! reads, and small LDIF builders. Expected values in the tests never come from these helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use cloudsync_agent::config::Config;
use cloudsync_agent::event::{Event, Guid};
use cloudsync_agent::journal::Journal;

use crate::common::lab::LabDc;

/// The agent configuration for `dc` (LDAPS, CA-verified, as the sync service account) as TOML.
pub fn config_toml(dc: &LabDc, journal_dir: &Path, extra_domain_keys: &str) -> String {
    format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n[agent]\njournal_dir = {journal:?}\n\n[domains.lab]\ndns_name = {dns:?}\nurl = {url:?}\n\
         ca_file = {ca:?}\nbind_dn = {bind:?}\npassword = {pw:?}\n{extra_domain_keys}\n",
        journal = journal_dir.display().to_string(),
        dns = dc.dns_domain,
        url = dc.ldaps_url,
        ca = dc.ca_file.display().to_string(),
        bind = dc.svc_upn,
        pw = dc.svc_password,
    )
}

/// [`config_toml`], parsed and validated.
pub fn config(dc: &LabDc, journal_dir: &Path, extra_domain_keys: &str) -> Config {
    Config::from_toml_str(&config_toml(dc, journal_dir, extra_domain_keys)).unwrap()
}

/// Every event with a sequence number `>= from`.
pub fn events_from(journal: &Journal, from: u64) -> Vec<(u64, Event)> {
    journal
        .read(from)
        .map(|r| {
            let r = r.unwrap();
            (r.seq, r.event)
        })
        .collect()
}

/// The events only.
pub fn bare(events: &[(u64, Event)]) -> Vec<Event> {
    events.iter().map(|(_, e)| e.clone()).collect()
}

/// DN (lowercased) → GUID, from the full images in `events`.
pub fn guids_by_dn(events: &[(u64, Event)]) -> HashMap<String, Guid> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ObjectUpserted { dn, guid, .. } => Some((dn.to_ascii_lowercase(), *guid)),
            _ => None,
        })
        .collect()
}

/// A current-thread runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Applies `ldif` (records separated by blank lines) as Administrator in runs of 400 records.
///
/// `LabDc::ldif_admin` writes all of stdin before it reads ldapmodify's output, so one call with
/// more than ~900 adds deadlocks once ldapmodify's 64 KiB stdout pipe is full (measured: stuck at
/// the 954th contact with both processes idle). 400 records print well under 64 KiB.
pub fn ldif_admin_bulk(dc: &LabDc, ldif: &str) {
    let records: Vec<&str> = ldif
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .collect();
    for run in records.chunks(400) {
        dc.ldif_admin(&(run.join("\n\n") + "\n\n"));
    }
}
