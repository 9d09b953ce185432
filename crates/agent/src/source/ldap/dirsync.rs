//! One DirSync pass over a domain: initial/resync or delta, page by page, into the sink.
//!
//! See the [module doc](super) for the steps and the chunking rule.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ldap3::Scope;

use super::checkpoint::DirSyncCheckpoint;
use super::conn::DcConn;
use super::control::{
    DIRSYNC_OID, DirSyncRequest, DirSyncResponse, FLAG_ANCESTORS_FIRST_ORDER,
    FLAG_INCREMENTAL_VALUES, FLAG_OBJECT_SECURITY,
};
use super::entry::{RawEntry, parse_entry};
use super::error::LdapSourceError;
use super::page;
use super::range;
use crate::event::{Event, ResyncReason, SourceKind};
use crate::source::ldap::DomainConfig;
use crate::source::{EventSink, SourceCheckpoint};

/// The objects the feed asks for: users (incl. inetOrgPersons), groups, contacts and OUs, not
/// computers. Tombstones keep their `objectClass`, so deletes match too (measured on Samba 4.17).
pub const SYNC_FILTER: &str = "(&(|(objectClass=user)(objectClass=group)(objectClass=contact)(objectClass=organizationalUnit))(!(objectClass=computer)))";

/// The reply size hint sent to the server (Samba ignores it; AD pages by it).
const MAX_BYTES: i32 = 1 << 20;

/// Knobs of a pass that do not come from the domain's configuration.
pub struct PassOptions<'a> {
    /// Above this many buffered bytes, events are appended without the cookie (see module doc).
    pub memory_budget: usize,
    /// Called with the running entry count during full reads (progress bar or log).
    pub progress: Option<&'a (dyn Fn(u64) + Send + Sync)>,
    /// Start a full read whatever the checkpoint says, announced with this reason (an admin's
    /// `Watermark`/`Full` restart). The stored checkpoint is replaced by the full read's first append.
    pub resync: Option<ResyncReason>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The domain's DNS name.
    pub domain: String,
    /// Why a full read happened, if one did.
    pub resync: Option<ResyncReason>,
    /// DirSync pages read.
    pub pages: u32,
    /// Entries received.
    pub entries: u64,
    /// Events appended (including resync markers).
    pub events: u64,
    /// Events appended, by kind (`object-upserted`, …).
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Append calls made.
    pub appends: u32,
    /// The journal sequence number of the last event appended.
    pub last_seq: Option<u64>,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

enum Start {
    FromCheckpoint,
    Resync(ResyncReason),
}

/// Runs one pass; a rejected cookie turns into a full resync with a `CookieRejected` marker.
pub async fn run_pass<S: EventSink>(
    conn: &mut DcConn,
    cfg: &DomainConfig,
    sink: &S,
    opts: &PassOptions<'_>,
) -> Result<PassReport, LdapSourceError> {
    let start = match &opts.resync {
        Some(reason) => Start::Resync(reason.clone()),
        None => Start::FromCheckpoint,
    };
    match pass(conn, cfg, sink, opts, start).await {
        Err(LdapSourceError::CookieRejected(msg)) => {
            tracing::warn!(domain = %cfg.dns_name, reason = %msg, "The server rejected the DirSync cookie; starting a full resync.");
            pass(
                conn,
                cfg,
                sink,
                opts,
                Start::Resync(ResyncReason::CookieRejected(msg)),
            )
            .await
        }
        other => other,
    }
}

async fn pass<S: EventSink>(
    conn: &mut DcConn,
    cfg: &DomainConfig,
    sink: &S,
    opts: &PassOptions<'_>,
    start: Start,
) -> Result<PassReport, LdapSourceError> {
    let started = Instant::now();
    let domain = cfg.dns_name.clone();
    let base = cfg.base();
    let (mut cookie, mut full_read, mut marker) = match start {
        Start::Resync(reason) => (Vec::new(), true, Some(reason)),
        Start::FromCheckpoint => match sink.checkpoint(&domain, SourceKind::LdapDirSync)? {
            None => (Vec::new(), true, Some(ResyncReason::Initial)),
            Some(data) => match DirSyncCheckpoint::decode(&data) {
                Ok(cp) => (cp.cookie, cp.full_read_in_progress, None),
                Err(err) => {
                    return Err(LdapSourceError::CookieRejected(format!(
                        "stored checkpoint unreadable: {err}"
                    )));
                }
            },
        },
    };
    let mut report = PassReport {
        domain: domain.clone(),
        resync: marker.clone(),
        ..PassReport::default()
    };
    let mut flags = FLAG_ANCESTORS_FIRST_ORDER | FLAG_INCREMENTAL_VALUES;
    if cfg.object_security {
        flags |= FLAG_OBJECT_SECURITY;
    }
    loop {
        let mut pending: Vec<Event> = Vec::new();
        if let Some(reason) = marker.take() {
            pending.push(Event::ResyncStarted {
                domain: domain.clone(),
                source: SourceKind::LdapDirSync,
                reason,
            });
        }
        let request = DirSyncRequest {
            flags,
            max_bytes: MAX_BYTES,
            cookie: cookie.clone(),
        };
        let mut stream = conn
            .op()
            .with_controls(vec![request.to_control()])
            .with_search_options(range::unlimited())
            .streaming_search(&base, Scope::Subtree, SYNC_FILTER, vec!["*"])
            .await?;
        let mut buffer: Vec<RawEntry> = Vec::new();
        let mut buffered = 0usize;
        let mut work = conn.clone();
        while let Some(re) = stream.next().await? {
            // Continuation references (e.g. to the Configuration NC) and intermediates are not ours.
            if re.is_ref() || re.is_intermediate() {
                continue;
            }
            let entry = parse_entry(re.0)?;
            report.entries += 1;
            buffered += entry.approx_size();
            buffer.push(entry);
            if let Some(progress) = opts
                .progress
                .filter(|_| full_read && report.entries.is_multiple_of(1000))
            {
                progress(report.entries);
            }
            if buffered >= opts.memory_budget {
                let events = page::to_events(
                    &mut work,
                    &base,
                    &domain,
                    full_read,
                    std::mem::take(&mut buffer),
                )
                .await?;
                pending.extend(events);
                buffered = 0;
                // No cookie with a partial page: a crash re-reads the page, which is harmless.
                append(sink, &mut report, std::mem::take(&mut pending), None).await?;
            }
        }
        let res = stream.finish().await;
        if res.rc != 0 {
            return Err(classify_failure(res, !cookie.is_empty()));
        }
        let response = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == DIRSYNC_OID)
            .and_then(|c| c.1.val.as_deref())
            .ok_or_else(|| {
                LdapSourceError::Protocol("the search result carries no DirSync control".into())
            })
            .and_then(|v| Ok(DirSyncResponse::decode(v)?))?;
        report.pages += 1;
        let events = page::to_events(&mut work, &base, &domain, full_read, buffer).await?;
        pending.extend(events);
        let finished_full_read = full_read && !response.more_results;
        if finished_full_read {
            pending.push(Event::ResyncCompleted {
                domain: domain.clone(),
                source: SourceKind::LdapDirSync,
            });
        }
        let checkpoint = DirSyncCheckpoint {
            cookie: response.cookie.clone(),
            full_read_in_progress: full_read && response.more_results,
        };
        if !pending.is_empty() || response.cookie != cookie {
            let cp = SourceCheckpoint {
                domain: domain.clone(),
                source: SourceKind::LdapDirSync,
                data: checkpoint.encode(),
            };
            append(sink, &mut report, pending, Some(cp)).await?;
        }
        if let Some(progress) = opts.progress.filter(|_| full_read) {
            progress(report.entries);
        }
        cookie = response.cookie;
        if finished_full_read {
            full_read = false;
        }
        if !response.more_results {
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Appends one batch and accounts for it in the report.
pub(crate) async fn append<S: EventSink>(
    sink: &S,
    report: &mut PassReport,
    events: Vec<Event>,
    checkpoint: Option<SourceCheckpoint>,
) -> Result<(), LdapSourceError> {
    let n = events.len() as u64;
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    for e in &events {
        *kinds.entry(e.kind().as_str()).or_default() += 1;
    }
    let seq = sink.append(events, checkpoint).await?;
    report.events += n;
    report.appends += 1;
    for (k, v) in kinds {
        *report.by_kind.entry(k).or_default() += v;
    }
    if seq.is_some() {
        report.last_seq = seq;
    }
    Ok(())
}

/// Maps a failed DirSync search. With a cookie, Samba answers a cookie it cannot parse with 12
/// (`0000202C: Unable to unmarshall cookie …`); AD uses protocolError or unwillingToPerform.
fn classify_failure(res: ldap3::LdapResult, had_cookie: bool) -> LdapSourceError {
    let text = res.text.to_ascii_lowercase();
    match res.rc {
        50 => LdapSourceError::DirSyncDenied(res.text),
        2 | 12 | 53 if had_cookie => LdapSourceError::CookieRejected(res.text),
        _ if had_cookie && text.contains("cookie") => LdapSourceError::CookieRejected(res.text),
        _ => LdapSourceError::from_result(res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> ldap3::LdapResult {
        ldap3::LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn samba_cookie_refusal_means_resync_only_when_a_cookie_was_sent() {
        // Measured on Samba 4.17 with a garbage and with a truncated cookie.
        let text = "0000202C: Unable to unmarshall cookie as a ldapControlDirSyncCookie structure at ../../source4/dsdb/samdb/ldb_modules/dirsync.c:1259";
        assert!(matches!(
            classify_failure(result(12, text), true),
            LdapSourceError::CookieRejected(_)
        ));
        assert!(matches!(
            classify_failure(result(12, text), false),
            LdapSourceError::Server { rc: 12, .. }
        ));
        assert!(matches!(
            classify_failure(result(50, "insufficient access rights"), true),
            LdapSourceError::DirSyncDenied(_)
        ));
    }
}
