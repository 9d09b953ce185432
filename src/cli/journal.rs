//! `cloudsync journal …`: diagnostics over an event journal directory.
//!
//! Every subcommand opens the journal with [`Journal::open_existing`], which never creates, migrates or
//! repairs: a missing directory, a directory that is not a journal, or one of another format version is a
//! clear error. Exit codes: 0 success, 1 error (cannot open, bad arguments), 2 `verify` found problems,
//! 3 sled's own files are damaged (every command; the message says where and to run `journal rebuild`).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use cloudsync_agent::event::{EventKind, Guid, SourceKind};
use cloudsync_agent::journal::{
    Checkpoint, FORMAT_VERSION, Journal, JournalOptions, crash_event, view,
};

/// Journal subcommands.
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Sequence range, counts per kind and domain, cursors, checkpoints, size on disk.
    Inspect {
        /// The journal directory.
        dir: PathBuf,
    },
    /// Print the events as a timeline (one line each) or as JSON lines.
    Replay {
        /// The journal directory.
        dir: PathBuf,
        /// First sequence number to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last sequence number to show.
        #[arg(long)]
        to: Option<u64>,
        /// Only events about this object (objectGUID in text form).
        #[arg(long, value_name = "GUID")]
        object: Option<String>,
        /// Only events of this kind (e.g. `object-upserted`, `members-changed`).
        #[arg(long)]
        kind: Option<String>,
        /// Print JSON lines instead of the timeline.
        #[arg(long)]
        json: bool,
        /// With `--object`: projection's store directory; the object's provisioning-log entries
        /// (Import → Scope → Match → Action) are shown under the events that caused them.
        #[arg(long, value_name = "DIR", requires = "object")]
        projection: Option<PathBuf>,
    },
    /// Check every record's CRC and payload and the sequence continuity; exit 2 on any problem.
    Verify {
        /// The journal directory.
        dir: PathBuf,
    },
    /// Write every record as JSON lines to stdout (the OrgId hash redacted unless asked for).
    Export {
        /// The journal directory.
        dir: PathBuf,
        /// Include salted password hashes verbatim.
        #[arg(long)]
        include_password_hashes: bool,
    },
    /// Rebuild a damaged journal from AD (stop the agent first): move the journal aside as
    /// `<journal>.damaged-<UTC time>` (kept, 0700), create an empty one whose sequence continues
    /// above the old one's, and move projection's snapshot there; the next `agent sync-once` or
    /// `agent run` re-reads every domain in full and converges the tenant (docs/journal.md).
    Rebuild {
        /// The agent configuration (names the journal, projection and outbox directories).
        #[command(flatten)]
        config: super::config_args::ConfigArgs,
    },
    /// Test helper for the crash test: appends batches forever, printing `ack FIRST LAST BATCH` after each.
    #[command(hide = true)]
    CrashWriter {
        /// The journal directory (created if missing).
        dir: PathBuf,
        /// Events per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: u64,
        /// Concurrent writer threads (exercises group commit).
        #[arg(long, default_value_t = 2)]
        threads: u64,
        /// Run number: batch numbers start at `run * 1_000_000`, so runs on one journal stay distinct.
        #[arg(long, default_value_t = 0)]
        run: u64,
    },
}

/// Runs a journal subcommand.
pub fn run(cmd: JournalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JournalCommand::Inspect { dir } => inspect(&dir),
        JournalCommand::Replay {
            dir,
            from,
            to,
            object,
            kind,
            json,
            projection,
        } => {
            let object = object
                .map(|text| {
                    Guid::parse(&text).with_context(|| format!("--object {text:?} is not a GUID"))
                })
                .transpose()?;
            let kind = kind
                .map(|text| {
                    EventKind::parse(&text).with_context(|| {
                        let names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        format!("--kind {text:?} is not one of {}", names.join(", "))
                    })
                })
                .transpose()?;
            let provlog = match (projection, object) {
                (Some(p), Some(g)) => provisioning_log(&p, g)?,
                _ => Default::default(),
            };
            replay(
                &dir,
                from,
                to.unwrap_or(u64::MAX),
                object,
                kind,
                json,
                &provlog,
            )
        }
        JournalCommand::Verify { dir } => verify(&dir),
        JournalCommand::Rebuild { config } => rebuild(&config),
        JournalCommand::Export {
            dir,
            include_password_hashes,
        } => export(&dir, include_password_hashes),
        JournalCommand::CrashWriter {
            dir,
            batch_size,
            threads,
            run,
        } => crash_writer(&dir, batch_size, threads, run),
    }
}

fn open(dir: &Path) -> anyhow::Result<Journal> {
    Journal::open_existing(dir)
        .with_context(|| format!("cannot open the journal at {}", dir.display()))
}

fn inspect(dir: &Path) -> anyhow::Result<ExitCode> {
    let journal = open(dir)?;
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut domains: BTreeMap<String, u64> = BTreeMap::new();
    let (mut first, mut last, mut count) = (None, None, 0u64);
    for record in journal.read(0) {
        let record =
            record.context("while reading the records (run `cloudsync journal verify`)")?;
        first.get_or_insert(record.seq);
        last = Some(record.seq);
        count += 1;
        *kinds.entry(record.event.kind().as_str()).or_default() += 1;
        *domains
            .entry(record.event.domain().to_string())
            .or_default() += 1;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "journal:        {}", dir.display())?;
    writeln!(out, "format version: v{FORMAT_VERSION}")?;
    writeln!(out, "size on disk:   {} bytes", journal.size_on_disk()?)?;
    match (first, last) {
        (Some(f), Some(l)) => writeln!(out, "records:        {count} (seq {f}..={l})")?,
        _ => writeln!(out, "records:        0")?,
    }
    writeln!(out, "by kind:")?;
    for (kind, n) in &kinds {
        writeln!(out, "  {kind:<24} {n}")?;
    }
    writeln!(out, "by domain:")?;
    for (domain, n) in &domains {
        writeln!(out, "  {domain:<24} {n}")?;
    }
    writeln!(out, "cursors:")?;
    for (name, seq) in journal.cursors()? {
        writeln!(out, "  {name:<24} seq {seq}")?;
    }
    writeln!(out, "checkpoints:")?;
    for cp in journal.checkpoints()? {
        writeln!(
            out,
            "  {:<24} {:<13} {} bytes  {}",
            cp.domain,
            cp.source.as_str(),
            cp.data.len(),
            hex_preview(&cp.data)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn hex_preview(data: &[u8]) -> String {
    const MAX: usize = 32;
    let shown = hex::encode(&data[..data.len().min(MAX)]);
    if data.len() > MAX {
        format!("{shown}…")
    } else {
        shown
    }
}

/// The provisioning log of one object from projection's store, by journal sequence.
fn provisioning_log(
    dir: &Path,
    guid: Guid,
) -> anyhow::Result<
    std::collections::BTreeMap<u64, Vec<cloudsync_agent::projection::provlog::LogEntry>>,
> {
    let store =
        cloudsync_agent::projection::store::ProjectionStore::open(dir).with_context(|| {
            format!(
                "cannot open projection's store at {} (is the agent running?)",
                dir.display()
            )
        })?;
    let mut by_seq = std::collections::BTreeMap::<u64, Vec<_>>::new();
    for entry in store
        .provlog()
        .for_object(guid)
        .context("while reading the provisioning log")?
    {
        by_seq.entry(entry.seq).or_default().push(entry);
    }
    Ok(by_seq)
}

fn replay(
    dir: &Path,
    from: u64,
    to: u64,
    object: Option<Guid>,
    kind: Option<EventKind>,
    json: bool,
    provlog: &std::collections::BTreeMap<u64, Vec<cloudsync_agent::projection::provlog::LogEntry>>,
) -> anyhow::Result<ExitCode> {
    let journal = open(dir)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for record in journal.read(from) {
        let record = record.context("while replaying")?;
        if record.seq > to {
            break;
        }
        if object.is_some_and(|g| record.event.guid() != Some(g))
            || kind.is_some_and(|k| record.event.kind() != k)
        {
            continue;
        }
        if json {
            writeln!(out, "{}", view::record_json(&record, false))?;
        } else {
            writeln!(out, "{}", view::timeline_line(&record))?;
        }
        for entry in provlog.get(&record.seq).into_iter().flatten() {
            if json {
                writeln!(out, "{}", serde_json::to_string(entry)?)?;
            } else {
                writeln!(
                    out,
                    "    -> {:?} {}: {}",
                    entry.step, entry.outcome, entry.detail
                )?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn verify(dir: &Path) -> anyhow::Result<ExitCode> {
    let journal = open(dir)?;
    let report = journal.verify()?;
    let range = match (report.first_seq, report.last_seq) {
        (Some(f), Some(l)) => format!("seq {f}..={l}"),
        _ => "no records".to_string(),
    };
    if report.is_ok() {
        println!(
            "ok: {} records ({range}), high-water mark {}, {} checkpoints, {} cursors; every CRC and the sequence are sound",
            report.records, report.high_water, report.checkpoints, report.cursors
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &report.problems {
            eprintln!("problem: {problem}");
        }
        eprintln!(
            "verify failed: {} problem(s) in {} records ({range})",
            report.problems.len(),
            report.records
        );
        Ok(ExitCode::from(2))
    }
}

fn rebuild(args: &super::config_args::ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load()?;
    cloudsync_agent::control::state_check::check_state(&config)?;
    let now = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .context("while formatting the time")?;
    let done =
        cloudsync_agent::runtime::rebuild::rebuild(&config, &now).context("while rebuilding")?;
    println!(
        "moved the damaged journal to {} (kept; delete it once the resync is done)",
        done.moved_to.display()
    );
    println!(
        "new journal at {} continues after seq {} (projection cursor {}, snapshot seq {}, old high-water {})",
        config.agent.journal_dir.display(),
        done.base,
        done.producer_cursor,
        done.snapshot_seq,
        done.old_high_water
            .map_or("unreadable".to_owned(), |s| s.to_string())
    );
    if !done.snapshot_found && done.producer_cursor > 0 {
        println!(
            "warning: projection had no usable snapshot, so the re-read starts from an empty state: objects deleted in AD before the rebuild stay in the cloud until you remove them there"
        );
    }
    println!(
        "next: run `cloudsync agent sync-once` (or start the agent): every domain is re-read in full"
    );
    Ok(ExitCode::SUCCESS)
}

fn export(dir: &Path, reveal: bool) -> anyhow::Result<ExitCode> {
    let journal = open(dir)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for record in journal.read(0) {
        let record = record.context("while exporting")?;
        writeln!(out, "{}", view::record_json(&record, reveal))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn crash_writer(dir: &Path, batch_size: u64, threads: u64, run: u64) -> anyhow::Result<ExitCode> {
    let journal =
        Journal::open(dir, JournalOptions::default()).context("while opening the journal")?;
    // Batch numbers are unique across threads: thread t writes base + t, base + t + threads, …
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let journal = journal.clone();
                let stdout = &stdout;
                s.spawn(move || -> anyhow::Result<()> {
                    let mut batch = run * 1_000_000 + t;
                    loop {
                        let events = (0..batch_size).map(|i| crash_event(batch, i)).collect();
                        let checkpoint = Checkpoint {
                            domain: "crash.example.test".into(),
                            source: SourceKind::LdapDirSync,
                            data: batch.to_be_bytes().to_vec(),
                        };
                        let ack = journal.append(events, Some(checkpoint))?;
                        let mut out = stdout
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        writeln!(
                            out,
                            "ack {} {} {batch}",
                            ack.first_seq.unwrap_or(0),
                            ack.last_seq.unwrap_or(0)
                        )?;
                        out.flush()?;
                        batch += threads.max(1);
                    }
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => bail!("a crash-writer thread panicked"),
            }
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
