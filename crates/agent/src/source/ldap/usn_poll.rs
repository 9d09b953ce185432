//! The fallback for accounts without the DirSync right: a paged search on `uSNChanged`.
//!
//! Each pass reads the rootDSE's `highestCommittedUSN` H first, then every synced object with
//! `uSNChanged > last` (all of them on the first pass), as full images; the checkpoint becomes H, taken
//! *before* the search so that nothing changed during the search is skipped (it is read again next time,
//! harmlessly). **Limitation:** a plain search does not return tombstones, so this mode cannot see
//! deletes unless the account may use Show Deleted on the Deleted Objects container; nor can it tell
//! which attributes changed, and it sees no password-change signal.

use std::time::Instant;

use ldap3::Scope;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};

use super::checkpoint::UsnCheckpoint;
use super::conn::DcConn;
use super::dirsync::{PassOptions, PassReport, SYNC_FILTER, append};
use super::entry::{RawEntry, parse_entry};
use super::error::LdapSourceError;
use super::page;
use super::range::{self, read_base};
use crate::event::{Event, ResyncReason, SourceKind};
use crate::source::ldap::DomainConfig;
use crate::source::{EventSink, SourceCheckpoint};

/// Reads the rootDSE's `highestCommittedUSN`.
pub async fn highest_committed_usn(conn: &mut DcConn) -> Result<u64, LdapSourceError> {
    let root = read_base(conn, "", &["highestCommittedUSN"])
        .await?
        .ok_or_else(|| LdapSourceError::Protocol("no rootDSE".into()))?;
    root.integer("highestCommittedUSN")
        .and_then(|u| u64::try_from(u).ok())
        .ok_or_else(|| LdapSourceError::Protocol("rootDSE lacks highestCommittedUSN".into()))
}

/// Runs one uSNChanged pass.
pub async fn run_pass<S: EventSink>(
    conn: &mut DcConn,
    cfg: &DomainConfig,
    sink: &S,
    opts: &PassOptions<'_>,
) -> Result<PassReport, LdapSourceError> {
    let started = Instant::now();
    let domain = cfg.dns_name.clone();
    let base = cfg.base();
    // A requested resync ignores the stored checkpoint; the full read's append replaces it.
    let previous = match (
        &opts.resync,
        sink.checkpoint(&domain, SourceKind::LdapUsnPoll)?,
    ) {
        (None, Some(data)) => Some(UsnCheckpoint::decode(&data)?),
        _ => None,
    };
    let full_read = previous.is_none_or(|p| p.full_read_in_progress);
    let reason = opts.resync.clone().unwrap_or(ResyncReason::Initial);
    let mut report = PassReport {
        domain: domain.clone(),
        resync: full_read.then(|| reason.clone()),
        ..PassReport::default()
    };
    let highest = highest_committed_usn(conn).await?;
    let filter = match previous {
        Some(p) if !full_read => format!(
            "(&{SYNC_FILTER}(uSNChanged>={}))",
            p.highest_usn.saturating_add(1)
        ),
        _ => SYNC_FILTER.to_string(),
    };
    let mut pending = Vec::new();
    if full_read {
        pending.push(Event::ResyncStarted {
            domain: domain.clone(),
            source: SourceKind::LdapUsnPoll,
            reason,
        });
    }
    let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(
            i32::try_from(cfg.page_size).unwrap_or(500),
        )),
    ];
    let mut work = conn.clone();
    let mut stream = conn
        .op()
        .with_search_options(range::unlimited())
        .streaming_search_with(adapters, &base, Scope::Subtree, &filter, vec!["*"])
        .await?;
    let mut buffer: Vec<RawEntry> = Vec::new();
    let mut buffered = 0usize;
    while let Some(re) = stream.next().await? {
        let entry = parse_entry(re.0)?;
        report.entries += 1;
        buffered += entry.approx_size();
        buffer.push(entry);
        if let Some(progress) = opts
            .progress
            .filter(|_| report.entries.is_multiple_of(1000))
        {
            progress(report.entries);
        }
        if buffered >= opts.memory_budget {
            let chunk = std::mem::take(&mut buffer);
            pending.extend(page::to_events(&mut work, &base, &domain, true, chunk).await?);
            buffered = 0;
            append(sink, &mut report, std::mem::take(&mut pending), None).await?;
        }
    }
    let res = stream.finish().await;
    if res.rc != 0 {
        return Err(LdapSourceError::from_result(res));
    }
    report.pages = 1;
    pending.extend(page::to_events(&mut work, &base, &domain, true, buffer).await?);
    if full_read {
        pending.push(Event::ResyncCompleted {
            domain: domain.clone(),
            source: SourceKind::LdapUsnPoll,
        });
    }
    let unchanged = previous.is_some_and(|p| p.highest_usn == highest && !full_read);
    if !pending.is_empty() || !unchanged {
        let cp = SourceCheckpoint {
            domain,
            source: SourceKind::LdapUsnPoll,
            data: UsnCheckpoint {
                highest_usn: highest,
                full_read_in_progress: false,
            }
            .encode(),
        };
        append(sink, &mut report, pending, Some(cp)).await?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
