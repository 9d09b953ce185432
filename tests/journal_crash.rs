//! Crash test: a child process (`cloudsync journal crash-writer`) appends batches with checkpoints from two
//! threads and prints an `ack FIRST LAST BATCH` line after each acknowledged append; it is SIGKILLed at a
//! random moment, several times over the same journal. After every kill the journal must reopen and hold
//! every acknowledged batch, whole and unaltered; everything else present must be whole batches (atomicity),
//! the checkpoint must name a batch that is fully present, and `verify` must find nothing wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cloudsync_agent::event::{Event, SourceKind};
use cloudsync_agent::journal::crash_event;
use cloudsync_agent::journal::{Journal, JournalOptions};
use rand::Rng;

const DOMAIN: &str = "crash.example.test";

/// (batch, index) of an event the crash writer made, read back from its GUID.
fn origin(event: &Event) -> (u64, u64) {
    let guid = event.guid().unwrap().0;
    (
        u64::from_be_bytes(guid[..8].try_into().unwrap()),
        u64::from_be_bytes(guid[8..].try_into().unwrap()),
    )
}

#[test]
fn every_acknowledged_batch_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let mut rng = rand::rng();
    let mut batch_sizes: BTreeMap<u64, u64> = BTreeMap::new(); // run -> batch size
    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    let runs = 10u64;
    for run in 0..runs {
        let batch_size = rng.random_range(1..=300u64);
        batch_sizes.insert(run, batch_size);
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloudsync"))
            .args(["--log", "warn", "journal", "crash-writer"])
            .arg(&path)
            .args([
                "--batch-size",
                &batch_size.to_string(),
                "--threads",
                "2",
                "--run",
                &run.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, acking) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| {
                    let mut parts = line.split_whitespace();
                    (parts.next() == Some("ack")).then(|| {
                        let _ = first_ack.send(());
                        let mut n = parts.map(|p| p.parse::<u64>().unwrap());
                        (n.next().unwrap(), n.next().unwrap(), n.next().unwrap())
                    })
                })
                .collect::<Vec<_>>()
        });
        // Even runs: anywhere from "still opening" to "deep into appending", counted from the
        // start. Odd runs: counted from the first acknowledgement, so that a loaded machine (where
        // starting the binary and opening sled can take longer than 250 ms) still kills mid-append.
        if run % 2 == 1 {
            let _ = acking.recv_timeout(Duration::from_secs(60));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(5..=250)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        acked.extend(acks);
        let t = std::time::Instant::now();
        let n = check(&path, &acked, &batch_sizes);
        eprintln!(
            "run {run}: batch size {batch_size}, {} acks so far, {n} records, check {:?}",
            acked.len(),
            t.elapsed()
        );
    }
    assert!(
        acked.len() >= runs as usize,
        "only {} acknowledged batches over {runs} runs: the test exercised too little",
        acked.len()
    );
}

fn check(
    path: &std::path::Path,
    acked: &[(u64, u64, u64)],
    batch_sizes: &BTreeMap<u64, u64>,
) -> usize {
    let journal = Journal::open(path, JournalOptions::default()).unwrap();
    let report = journal.verify().unwrap();
    assert!(report.is_ok(), "verify after a kill: {:?}", report.problems);
    let records: Vec<_> = journal.read(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(records.first().map(|r| r.seq), records.first().map(|_| 1));
    let by_seq: BTreeMap<u64, &Event> = records.iter().map(|r| (r.seq, &r.event)).collect();

    for &(first, last, batch) in acked {
        let size = batch_sizes[&(batch / 1_000_000)];
        assert_eq!(
            last - first + 1,
            size,
            "ack of batch {batch} has the wrong length"
        );
        for (i, seq) in (first..=last).enumerate() {
            let event = by_seq
                .get(&seq)
                .unwrap_or_else(|| panic!("acknowledged seq {seq} (batch {batch}) lost"));
            assert_eq!(**event, crash_event(batch, i as u64), "seq {seq} altered");
        }
    }

    // Atomicity: whatever is present consists of whole batches, each contiguous.
    let mut batches: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for record in &records {
        let (batch, index) = origin(&record.event);
        batches.entry(batch).or_default().push((record.seq, index));
    }
    for (batch, items) in &batches {
        let size = batch_sizes[&(batch / 1_000_000)];
        assert_eq!(items.len() as u64, size, "batch {batch} is partly present");
        for (k, &(seq, index)) in items.iter().enumerate() {
            assert_eq!(
                (seq - items[0].0, index),
                (k as u64, k as u64),
                "batch {batch} is not contiguous"
            );
        }
    }

    // The checkpoint was written with its batch, so that batch must be wholly present.
    if let Some(data) = journal.checkpoint(DOMAIN, SourceKind::LdapDirSync).unwrap() {
        let batch = u64::from_be_bytes(data.as_slice().try_into().unwrap());
        assert!(
            batches.contains_key(&batch),
            "the checkpoint names batch {batch}, whose events are missing"
        );
    }
    records.len()
}
