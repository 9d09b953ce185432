//! What the fault campaign reads and reports (`tests/fault_campaign.rs`): the tenant's JSON log
//! (batch applies, 429s, replays, injected faults), the tenant's fault settings, and each fault's
//! row of `fault-campaign.json`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::tenant_fixture::{self, GA, TenantFixture};

/// One line of the tenant's JSON log (`CLOUDSYNC_LOG_JSON`).
#[derive(Debug, Clone)]
pub struct TenantLine {
    /// Unix seconds.
    pub at: f64,
    /// The message.
    pub message: String,
    /// Its fields.
    pub fields: Value,
    /// The batch id of the span it was logged in, if any.
    pub batch_id: Option<String>,
}

/// What a batch request ended as, from the tenant's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Applied in full.
    Applied,
    /// Applied in part; the rest got per-item `Throttled`.
    Partial,
    /// 429, nothing applied.
    Refused429,
    /// A known batch id: the stored results returned.
    Replayed,
    /// Refused by the lease fence.
    LeaseLost,
}

impl TenantLine {
    /// The batch outcome this line records, if it records one.
    pub fn batch_outcome(&self) -> Option<BatchOutcome> {
        match self.message.as_str() {
            "Batch applied." => Some(BatchOutcome::Applied),
            "Batch applied in part; the rest is throttled." => Some(BatchOutcome::Partial),
            "Batch refused: the write budget is spent (429)." => Some(BatchOutcome::Refused429),
            "Batch replayed; returning stored results." => Some(BatchOutcome::Replayed),
            "Batch refused: LeaseLost." => Some(BatchOutcome::LeaseLost),
            _ => None,
        }
    }

    /// The `retry_after` field (seconds), on 429s and partial applies.
    pub fn retry_after(&self) -> Option<u64> {
        self.fields["retry_after"].as_u64()
    }
}

/// The tenant's log lines from byte offset `from` (lines that are not JSON are skipped).
pub fn tenant_lines(t: &TenantFixture, from: usize) -> Vec<TenantLine> {
    let log = t.log();
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            let at = v["timestamp"]
                .as_str()
                .and_then(|ts| {
                    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map_or(0.0, |t| t.unix_timestamp_nanos() as f64 / 1e9);
            let batch_id = v["span"]["batch_id"]
                .as_str()
                .or_else(|| {
                    v["spans"]
                        .as_array()?
                        .iter()
                        .find_map(|s| s["batch_id"].as_str())
                })
                .map(str::to_owned);
            TenantLine {
                at,
                message: v["fields"]["message"].as_str().unwrap_or("").to_owned(),
                fields: v["fields"].clone(),
                batch_id,
            }
        })
        .collect()
}

/// The tenant log's length now (an offset for [`tenant_lines`]).
pub fn tenant_offset(t: &TenantFixture) -> usize {
    t.log().len()
}

/// Batch ids the tenant applied (in full or in part) more than once, over its whole log.
pub fn applied_twice(t: &TenantFixture) -> Vec<String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for l in tenant_lines(t, 0) {
        if matches!(
            l.batch_outcome(),
            Some(BatchOutcome::Applied | BatchOutcome::Partial)
        ) && let Some(id) = l.batch_id
        {
            *count.entry(id).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, n)| format!("batch {id} applied {n} times"))
        .collect()
}

/// Counts of each batch outcome in `lines`, by name, plus `injected503` and `dropped`.
pub fn outcome_counts(lines: &[TenantLine]) -> BTreeMap<&'static str, u64> {
    let mut m: BTreeMap<&'static str, u64> = BTreeMap::new();
    for l in lines {
        let key = match (l.batch_outcome(), l.message.as_str()) {
            (Some(BatchOutcome::Applied), _) => "applied",
            (Some(BatchOutcome::Partial), _) => "appliedInPart",
            (Some(BatchOutcome::Refused429), _) => "refused429",
            (Some(BatchOutcome::Replayed), _) => "replayed",
            (Some(BatchOutcome::LeaseLost), _) => "leaseLost",
            (None, "Answering 503 (injected fault).") => "injected503",
            (None, "Dropping the connection (injected fault).") => "dropped",
            _ => continue,
        };
        *m.entry(key).or_default() += 1;
    }
    m
}

/// `PUT /admin/faults` as the Global Administrator (must answer 200).
pub async fn set_faults(t: &TenantFixture, settings: &Value) {
    let token = t.user_token(GA).await;
    let r = t
        .send(
            &tenant_fixture::Req::put("/admin/faults")
                .auth(&token)
                .json(settings),
        )
        .await;
    assert_eq!(r.status(), 200, "PUT /admin/faults {settings}");
}

/// What one fault did and how the agent came out of it: a row of `fault-campaign.json`.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// A short name (`tenant-429-storm`, …).
    pub name: &'static str,
    /// What was injected, in words.
    pub injected: String,
    /// AD changes made while (or around) the fault.
    pub changes: usize,
    /// Seconds from clearing the fault to the tenant equal to AD (None: did not converge).
    pub seconds_to_converge: Option<f64>,
    /// Figures particular to the fault.
    pub details: Value,
    /// Every check that failed.
    pub failures: Vec<String>,
    /// Set when the fault could not be injected here (and why).
    pub skipped: Option<String>,
}

impl FaultReport {
    /// An empty report for `name`.
    pub fn new(name: &'static str, injected: impl Into<String>) -> FaultReport {
        FaultReport {
            name,
            injected: injected.into(),
            changes: 0,
            seconds_to_converge: None,
            details: json!({}),
            failures: Vec::new(),
            skipped: None,
        }
    }

    /// Records a check: `Err` adds a failure.
    pub fn check(&mut self, what: &str, result: Result<(), String>) {
        if let Err(e) = result {
            self.failures.push(format!("{what}: {e}"));
        }
    }

    /// Sets a detail.
    pub fn detail(&mut self, key: &str, value: impl Into<Value>) {
        self.details[key] = value.into();
    }

    /// Whether it passed (a skipped fault passes, and says so).
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line for the test's output.
    pub fn summary_line(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("fault {:<22} SKIPPED: {why}", self.name);
        }
        format!(
            "fault {:<22} {} changes={:<3} converged={} in {} {}",
            self.name,
            if self.passed() { "PASS" } else { "FAIL" },
            self.changes,
            self.seconds_to_converge.is_some(),
            self.seconds_to_converge
                .map_or("-".to_owned(), |s| format!("{s:.1}s")),
            self.details
        )
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "fault": self.name,
            "injected": self.injected,
            "skipped": self.skipped,
            "changes": self.changes,
            "converged": self.seconds_to_converge.is_some(),
            "secondsToConverge": self.seconds_to_converge.map(|s| (s * 10.0).round() / 10.0),
            "passed": self.passed(),
            "failures": self.failures,
            "details": self.details,
        })
    }
}

/// Where the summary goes: `$CLOUDSYNC_ARTIFACTS/fault-campaign.json`, else `target/fault-campaign.json`.
pub fn summary_path() -> PathBuf {
    match std::env::var_os("CLOUDSYNC_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir).join("fault-campaign.json"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("fault-campaign.json"),
    }
}
