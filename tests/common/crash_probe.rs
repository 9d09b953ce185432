//! The crash campaign's probes (`tests/crash_campaign.rs`): what a running agent is doing, read from its
//! Prometheus endpoint (docs/metrics.md), named as a pipeline phase so a SIGKILL can be aimed at one and
//! the report can say where it landed; AD's own count of password writes (`replPropertyMetaData`), the
//! oracle of "a cloud reset is written to AD at most once"; the tenant's log read for batches applied
//! twice; and `cloudsync journal verify` on a killed agent's journal.
//!
//! Use with `mod common;`, `#[path = "common/agent_run.rs"] mod agent_run;`,
//! `#[path = "common/ha.rs"] mod ha;` and `#[path = "common/crash_probe.rs"] mod crash_probe;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use prometheus_parse::{Scrape, Value};

use crate::common::lab::LabDc;
use crate::ha::strip_ansi;

/// One scrape of an agent's `/metrics`: the figures the phases are read from. Counters are the
/// process's own (they start at 0 with every start), so a sample is compared only with a sample of
/// the same process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// `cloudsync_journal_last_seq`.
    pub journal_last_seq: u64,
    /// `cloudsync_journal_consumer_lag_events{consumer="projection"}`: journaled, not yet projected.
    pub projection_lag: u64,
    /// `cloudsync_outbox_depth_operations`: projected, not yet acknowledged by the tenant.
    pub outbox_depth: u64,
    /// Whether `cloudsync_lease_epoch{state="held"}` is non-zero: this agent holds the lease.
    pub held: bool,
    /// `cloudsync_journal_events_appended_total{kind="resync-started"}` (a full read began).
    pub resync_started: u64,
    /// Same, `kind="resync-completed"` (a full read ended).
    pub resync_completed: u64,
    /// Same, `kind="password-changed"` (the feed saw a password change: PHS is signalled).
    pub password_changed: u64,
    /// Same, `kind="password-hash-changed"` (hashes appended page by page during a PHS cycle).
    pub hash_events: u64,
    /// `cloudsync_phs_cycles_total`: PHS cycles completed.
    pub phs_cycles: u64,
}

/// Sums the samples of `name` whose labels include every `(key, value)` of `labels`.
fn series(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    scrape
        .samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v.max(0.0) as u64,
            _ => 0,
        })
        .sum()
}

impl Sample {
    /// Reads a sample from the Prometheus text of `/metrics`.
    pub fn parse(text: &str) -> Sample {
        let text = &Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let appended = |kind| {
            series(
                text,
                "cloudsync_journal_events_appended_total",
                &[("kind", kind)],
            )
        };
        Sample {
            journal_last_seq: series(text, "cloudsync_journal_last_seq", &[]),
            projection_lag: series(
                text,
                "cloudsync_journal_consumer_lag_events",
                &[("consumer", "projection")],
            ),
            outbox_depth: series(text, "cloudsync_outbox_depth_operations", &[]),
            held: series(text, "cloudsync_lease_epoch", &[("state", "held")]) > 0,
            resync_started: appended("resync-started"),
            resync_completed: appended("resync-completed"),
            password_changed: appended("password-changed"),
            hash_events: appended("password-hash-changed"),
            phs_cycles: series(text, "cloudsync_phs_cycles_total", &[]),
        }
    }

    /// Scrapes `url` (`http://host:port/metrics`); `None` when the agent does not answer.
    pub async fn scrape(http: &reqwest::Client, url: &str) -> Option<Sample> {
        let r = http.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        Some(Sample::parse(&r.text().await.ok()?))
    }
}

/// Where in the pipeline an agent was when it was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// A full read in progress: `resync-started` appended and `resync-completed` not yet, or, in a
    /// process that has appended nothing yet, the first pass still reading (on the lab's ~1,100
    /// entries the whole read is one append at its end: checked after the kill in the log, which has
    /// no "Pass appended events." line of it).
    InitialSync,
    /// The tenant handed a cloud password reset to this agent and its log has no answer for it.
    Writeback,
    /// The agent took the lease over from the other one and was killed before the tenant applied
    /// its takeover image (sub-state in the kill's detail).
    Handover,
    /// A password change journaled since the round began (so PHS was signalled) or hashes appended,
    /// and no PHS cycle completed since; in a fresh process, the cycle it starts with not completed
    /// (checked after the kill: no "Password hash sync cycle done." line came).
    Phs,
    /// Events journaled and not yet projected (projection's lag > 0).
    DeltaUnprojected,
    /// The holder has projected operations the tenant has not acknowledged (outbox depth > 0):
    /// lingering in the push window or in flight.
    Push,
    /// The tenant's log shows it applied a batch from the holder since the round began, seen a few
    /// ms before the kill: the answer on its way back or just recorded. Whether the agent had
    /// recorded it shows afterwards: a batch it had not is re-sent and replayed by the tenant.
    PushApplied,
    /// The round's AD changes are made and not yet in this agent's journal (its feed had not read
    /// them: the journal's last seq is where it was before the changes).
    DeltaUnread,
    /// None of the above when sampled.
    Idle,
}

impl Phase {
    /// The name the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::InitialSync => "initial-sync",
            Phase::Writeback => "writeback",
            Phase::Handover => "lease-handover",
            Phase::Phs => "phs-cycle",
            Phase::DeltaUnprojected => "delta-unprojected",
            Phase::Push => "push",
            Phase::PushApplied => "push-applied",
            Phase::DeltaUnread => "delta-unread",
            Phase::Idle => "idle",
        }
    }

    /// Every phase `now` shows against `base` (a sample of the same process taken before the round's
    /// AD changes; `changed`: the round made some; `Sample::default()` for a fresh process), most
    /// specific first.
    pub fn of(now: &Sample, base: &Sample, changed: bool) -> Vec<Phase> {
        let fresh = *base == Sample::default();
        let mut out = Vec::new();
        if now.resync_started > now.resync_completed || (fresh && now.journal_last_seq == 0) {
            out.push(Phase::InitialSync);
        }
        if now.phs_cycles == base.phs_cycles
            && (fresh
                || now.password_changed > base.password_changed
                || now.hash_events > base.hash_events)
        {
            out.push(Phase::Phs);
        }
        if now.projection_lag > 0 {
            out.push(Phase::DeltaUnprojected);
        }
        if now.held && now.outbox_depth > 0 {
            out.push(Phase::Push);
        }
        if changed && now.journal_last_seq == base.journal_last_seq {
            out.push(Phase::DeltaUnread);
        }
        out
    }

    /// A line of figures for the report: what the sample showed.
    pub fn detail(self, now: &Sample, base: &Sample) -> String {
        match self {
            Phase::InitialSync => format!(
                "first full read not completed: journal at seq {}, resync-started {}, resync-completed {}",
                now.journal_last_seq, now.resync_started, now.resync_completed
            ),
            Phase::Phs if *base == Sample::default() => format!(
                "the first PHS cycle of the process not completed: hashes appended {}, journal at seq {}",
                now.hash_events, now.journal_last_seq
            ),
            Phase::Phs => format!(
                "password changes journaled since the round began: {}, hashes appended: {}, PHS cycles completed since: 0",
                now.password_changed - base.password_changed,
                now.hash_events - base.hash_events
            ),
            Phase::DeltaUnprojected => {
                format!("projection lag {} events", now.projection_lag)
            }
            Phase::Push => format!(
                "holder, outbox depth {} operations unacknowledged",
                now.outbox_depth
            ),
            Phase::DeltaUnread => format!(
                "journal still at seq {} after the round's AD changes",
                now.journal_last_seq
            ),
            _ => format!(
                "seq {}, lag {}, outbox {}, held {}",
                now.journal_last_seq, now.projection_lag, now.outbox_depth, now.held
            ),
        }
    }
}

/// How many times AD has written `unicodePwd` of `dn`: the attribute's version in the object's
/// `replPropertyMetaData` (MS-DRSR 5.166 `PROPERTY_META_DATA_EXT_VECTOR`: a 16-byte header with the
/// count at offset 8, then 48-byte entries of attid, version, time, invocation id, USNs). Every
/// write increments it, so it counts resets independently of the agent. 0 when never set.
pub fn password_writes(dc: &LabDc, dn: &str) -> u32 {
    const UNICODE_PWD: u32 = 0x0009_005A;
    let out = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", &dc.ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &dc.ldaps_url])
        .args(["-D", &dc.admin_upn, "-w", &dc.admin_password])
        .args([
            "-s",
            "base",
            "-b",
            dn,
            "(objectClass=*)",
            "replPropertyMetaData",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ldapsearch replPropertyMetaData of {dn}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let b64 = text
        .lines()
        .find_map(|l| l.strip_prefix("replPropertyMetaData:: "))
        .unwrap_or_else(|| panic!("no replPropertyMetaData on {dn}: {text}"));
    let b = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let count = u32_at(8) as usize;
    assert!(b.len() >= 16 + 48 * count, "short replPropertyMetaData");
    (0..count)
        .map(|i| 16 + 48 * i)
        .find(|&at| u32_at(at) == UNICODE_PWD)
        .map_or(0, |at| u32_at(at + 4))
}

/// The value of `key=` in a log line (up to the next space, comma or bracket).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.split(&format!("{key}=")).nth(1)?;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ',' || c == '}' || c == ']')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Batch ids the tenant's log says it applied ("Batch applied." lines carry the span's `batch_id`),
/// each with how many times.
pub fn applied_batches(tenant_log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in strip_ansi(tenant_log).lines() {
        if line.contains("Batch applied") {
            let id = field(line, "batch_id").unwrap_or("?").to_owned();
            *out.entry(id).or_insert(0) += 1;
        }
    }
    out
}

/// The batch ids the tenant's log says it applied from `agent`, in log order.
pub fn applied_from(tenant_log: &str, agent: &str) -> Vec<String> {
    strip_ansi(tenant_log)
        .lines()
        .filter(|l| l.contains("Batch applied") && l.contains(agent))
        .map(|l| field(l, "batch_id").unwrap_or("?").to_owned())
        .collect()
}

/// How many times the tenant's log says it replayed `batch` (answered from its stored results).
pub fn replays_of(tenant_log: &str, batch: &str) -> usize {
    strip_ansi(tenant_log)
        .lines()
        .filter(|l| l.contains("Batch replayed") && l.contains(batch))
        .count()
}

/// The agent the tenant handed writeback request `id` to (its "handed out" log line), if any yet.
pub fn handed_out_to(tenant_log: &str, id: &str) -> Option<String> {
    strip_ansi(tenant_log)
        .lines()
        .find(|l| l.contains("Password writeback requests handed out") && l.contains(id))
        .and_then(|l| field(l, "agent_id").map(str::to_owned))
}

/// `cloudsync journal verify DIR` (the agent must be down: sled locks its files): `Ok` on exit 0,
/// else the exit code and output.
pub fn journal_verify(dir: &Path) -> Result<(), String> {
    let o = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
        .args(["journal", "verify", dir.to_str().unwrap()])
        .env("CLOUDSYNC_LOG", "warn")
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "journal verify {} exited {:?}:\n{}{}",
            dir.display(),
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}
