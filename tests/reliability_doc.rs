//! RELIABILITY.md's figures are not older than the campaigns that produce them.
//!
//! The block between `<!-- figures:begin` and `<!-- figures:end -->` has one row per campaign: its
//! figures, the day they were taken, the campaign's sources and the SHA-256 of those sources when the
//! figures were taken. This test recomputes each hash from the sources in the tree and fails when one
//! differs (the campaign changed after its figures were taken) or when a campaign has no row.
//!
//! `CLOUDSYNC_RELIABILITY_UPDATE=1 cargo test --test reliability_doc` rewrites the block from the
//! campaigns' JSON reports (`$CLOUDSYNC_ARTIFACTS`, `target/artifacts` or `target/`, the newest
//! found), after the campaigns were run on the current sources. A campaign without a report keeps its
//! row, and still fails the check if its sources changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

const BEGIN: &str = "<!-- figures:begin";
const END: &str = "<!-- figures:end -->";

/// A campaign: its row name, its sources (a `dir/*.ext` entry is every such file in `dir`), its
/// report's file name, and how its report reads in a row.
struct Campaign {
    name: &'static str,
    sources: &'static [&'static str],
    report: &'static str,
    render: fn(&Value) -> String,
}

const CAMPAIGNS: &[Campaign] = &[
    Campaign {
        name: "crash",
        sources: &["tests/crash_campaign.rs", "tests/common/crash_*.rs"],
        report: "crash-campaign.json",
        render: render_crash,
    },
    Campaign {
        name: "fault",
        sources: &["tests/fault_campaign.rs", "tests/common/fault*.rs"],
        report: "fault-campaign.json",
        render: render_fault,
    },
    Campaign {
        name: "fuzz",
        sources: &["scripts/fuzz.sh", "fuzz/fuzz_targets/*.rs"],
        report: "fuzz-report.json",
        render: render_fuzz,
    },
    Campaign {
        name: "secrets at TRACE",
        sources: &["tests/secrets_trace.rs"],
        report: "secrets-trace.json",
        render: render_secrets,
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files `sources` names, sorted: a path, or `dir/prefix*suffix` (every file of `dir` whose name
/// starts with `prefix` and ends with `suffix`).
fn source_files(sources: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for s in sources {
        if let Some((head, suffix)) = s.split_once('*') {
            let (dir, prefix) = head.rsplit_once('/').unwrap_or((".", head));
            let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
                })
                .collect();
            found.sort();
            assert!(!found.is_empty(), "{s} names no file");
            files.extend(found);
        } else {
            files.push(root().join(s));
        }
    }
    files
}

/// SHA-256 over each source's path (relative to the repository) and bytes; the first 16 hex digits.
fn sources_hash(sources: &[&str]) -> String {
    hash_of(&root(), &source_files(sources))
}

/// SHA-256 over each file's path relative to `base`, its length and its bytes; the first 16 hex digits.
fn hash_of(base: &Path, files: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        h.update(rel.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The rows of the generated block: campaign name → (whole line, recorded hash).
fn rows(doc: &str) -> BTreeMap<String, (String, String)> {
    let start = doc
        .find(BEGIN)
        .expect("RELIABILITY.md has a figures:begin marker");
    let end = doc
        .find(END)
        .expect("RELIABILITY.md has a figures:end marker");
    doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| campaign"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.to_string();
            let hash = l.split("sha256:").nth(1)?.chars().take(16).collect();
            Some((name, (l.to_owned(), hash)))
        })
        .collect()
}

fn get<'a>(v: &'a Value, keys: &[&str]) -> &'a Value {
    keys.iter()
        .map(|k| &v[*k])
        .find(|x| !x.is_null())
        .unwrap_or(&Value::Null)
}

fn num(v: &Value, keys: &[&str]) -> String {
    match get(v, keys) {
        Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

fn counts(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn render_crash(r: &Value) -> String {
    format!(
        "{} rounds (seed {}), {} SIGKILLs ({}), **{} survived**; {} checks passed ({}); {} AD changes, {} AD password changes; cloud resets: {}; {} lease takeovers; {} batches answered from stored results, none applied twice; {} s{}",
        num(r, &["rounds_done", "roundsDone"]),
        num(r, &["seed"]),
        num(r, &["kills"]),
        counts(get(r, &["kills_by_phase", "killsByPhase"])),
        num(r, &["kills_survived", "killsSurvived"]),
        num(r, &["checks_passed", "checksPassed"]),
        counts(get(r, &["checks_by_kind", "checksByKind"])),
        num(r, &["ad_changes", "adChanges"]),
        num(r, &["ad_password_changes", "adPasswordChanges"]),
        counts(get(r, &["writeback"])),
        num(r, &["takeovers"]),
        num(r, &["batch_replays", "batchReplays"]),
        num(r, &["duration_secs", "durationSecs"]),
        if get(r, &["passed"]) == &Value::Bool(true) {
            ""
        } else {
            " — **FAILED**"
        }
    )
}

fn render_fault(r: &Value) -> String {
    let faults: Vec<Value> = match r {
        Value::Array(a) => a.clone(),
        other => get(other, &["faults"])
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    // Rows that injected something (the campaign's first row is its initial sync: "none: …").
    let injected = faults
        .iter()
        .filter(|f| f["skipped"].is_null())
        .filter(|f| !f["injected"].as_str().unwrap_or("").starts_with("none"))
        .collect::<Vec<_>>();
    let converged = injected
        .iter()
        .filter(|f| f["converged"] == Value::Bool(true))
        .count();
    let passed = injected
        .iter()
        .filter(|f| f["passed"] == Value::Bool(true))
        .count();
    let list = faults
        .iter()
        .map(|f| {
            if let Some(why) = f["skipped"].as_str() {
                format!("{} skipped ({why})", f["fault"].as_str().unwrap_or("?"))
            } else {
                format!(
                    "{} {}",
                    f["fault"].as_str().unwrap_or("?"),
                    f["secondsToConverge"]
                        .as_f64()
                        .map_or("did not converge".to_owned(), |s| format!("{s:.1} s"))
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} faults injected (seed {}, {} s), **{converged} converged**, {passed} passed every check: tenant = AD in full, no batch applied twice, the daemon still running (seconds from clearing the fault to tenant = AD: {list})",
        injected.len(),
        num(r, &["seed"]),
        num(r, &["totalSeconds"])
    )
}

fn render_fuzz(r: &Value) -> String {
    let targets = r.as_array().cloned().unwrap_or_default();
    let execs: u64 = targets
        .iter()
        .filter_map(|t| t["executions"].as_u64())
        .sum();
    let crashes: u64 = targets.iter().filter_map(|t| t["crashes"].as_u64()).sum();
    let secs: u64 = targets.iter().filter_map(|t| t["seconds"].as_u64()).sum();
    let per = targets
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["target"].as_str().unwrap_or("?"),
                t["executions"]
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} targets, {secs} s in all: **{execs} executions, {crashes} crashes** ({per})",
        targets.len()
    )
}

fn render_secrets(r: &Value) -> String {
    format!(
        "{} secret values in every form ({} stored PBKDF2 hashes among them) searched in {} log lines ({} at TRACE), every file under two agents and the tenant ({} hold secrets, each where meant and 0600) and {} HTTP bodies: **{} found**",
        num(r, &["secrets"]),
        num(r, &["storedHashes"]),
        num(r, &["logLines"]),
        num(r, &["traceLines"]),
        num(r, &["filesHoldingSecretsWhereMeant"]),
        num(r, &["httpBodies"]),
        num(r, &["problems"])
    )
}

/// The newest report named `name` among the artifact directories.
fn report(name: &str) -> Option<(Value, std::time::SystemTime)> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("CLOUDSYNC_ARTIFACTS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(root().join("target/artifacts"));
    dirs.push(root().join("target"));
    dirs.iter()
        .map(|d| d.join(name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            let v = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            Some((v, modified))
        })
        .max_by_key(|(_, t)| *t)
}

fn day(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn row(c: &Campaign, figures: &str, taken: &str) -> String {
    let files = c
        .sources
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "| {} | {figures} | {taken} | {files} sha256:{} |",
        c.name,
        sources_hash(c.sources)
    )
}

fn update(doc: &str, path: &Path) {
    let old = rows(doc);
    let mut block = String::new();
    let _ = writeln!(
        block,
        "{BEGIN} (generated by `CLOUDSYNC_RELIABILITY_UPDATE=1 cargo test --test reliability_doc` from the campaigns' reports; do not edit by hand) -->"
    );
    block.push_str(
        "| campaign | figures | taken | sources (SHA-256 when taken) |\n|---|---|---|---|\n",
    );
    for c in CAMPAIGNS {
        match report(c.report) {
            Some((v, t)) => {
                let _ = writeln!(block, "{}", row(c, &(c.render)(&v), &day(t)));
            }
            None => {
                if let Some((line, _)) = old.get(c.name) {
                    let _ = writeln!(block, "{line}");
                }
                eprintln!(
                    "reliability_doc: no {} found; the {} row is kept",
                    c.report, c.name
                );
            }
        }
    }
    let start = doc.find(BEGIN).unwrap();
    let end = doc.find(END).unwrap();
    let new = format!("{}{block}{}", &doc[..start], &doc[end..]);
    std::fs::write(path, new).unwrap();
}

#[test]
fn the_figures_are_not_older_than_the_campaigns_that_produce_them() {
    let path = root().join("RELIABILITY.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    if std::env::var_os("CLOUDSYNC_RELIABILITY_UPDATE").is_some() {
        update(&doc, &path);
    }
    let doc = std::fs::read_to_string(&path).unwrap();
    let rows = rows(&doc);
    let mut stale = Vec::new();
    for c in CAMPAIGNS {
        let now = sources_hash(c.sources);
        match rows.get(c.name) {
            None => stale.push(format!("{}: no row", c.name)),
            Some((_, recorded)) if *recorded != now => stale.push(format!(
                "{}: its figures were taken with sources hashing to {recorded}, the tree's hash to {now} ({})",
                c.name,
                c.sources.join(", ")
            )),
            Some(_) => {}
        }
    }
    assert!(
        stale.is_empty(),
        "RELIABILITY.md's figures are older than the campaigns that produce them:\n  {}\n\
         Run the campaigns (docs/lab.md § Crash campaign, § Fault campaign; scripts/fuzz.sh; \
         tests/secrets_trace.rs), then CLOUDSYNC_RELIABILITY_UPDATE=1 cargo test --test reliability_doc",
        stale.join("\n  ")
    );
}

#[test]
fn a_changed_or_renamed_source_changes_the_hash_and_rows_are_read_back() {
    let c = &CAMPAIGNS[3];
    let line = row(c, "x", "2026-01-01");
    let doc = format!("{BEGIN} -->\n| campaign | figures | taken | sources |\n{line}\n{END}\n");
    assert_eq!(rows(&doc)[c.name].1, sources_hash(c.sources));

    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.rs"), dir.path().join("b.rs"));
    std::fs::write(&a, b"fn main() {}").unwrap();
    let first = hash_of(dir.path(), std::slice::from_ref(&a));
    std::fs::write(&a, b"fn main() {} ").unwrap();
    let changed = hash_of(dir.path(), std::slice::from_ref(&a));
    assert_ne!(first, changed, "one byte more");
    std::fs::rename(&a, &b).unwrap();
    assert_ne!(
        changed,
        hash_of(dir.path(), std::slice::from_ref(&b)),
        "renamed"
    );

    let crash = source_files(CAMPAIGNS[0].sources);
    assert!(
        crash.len() > 1
            && crash
                .iter()
                .any(|p| p.ends_with("tests/common/crash_driver.rs")),
        "the campaign's helpers count as its sources: {crash:?}"
    );
    assert_eq!(day(std::time::UNIX_EPOCH), "1970-01-01");
    assert_eq!(
        day(std::time::UNIX_EPOCH + std::time::Duration::from_secs(20_794 * 86_400)),
        "2026-12-07"
    );
}
