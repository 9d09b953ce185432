//! Fuzzes the outbox's files as it finds them on disk: the segmented log and the state log
//! (`push::outbox`, recovery in `Outbox::open`). A small outbox is made once (operations with a
//! producer cursor and a lease epoch, an acknowledgement, a quarantined object); each input copies it
//! into a fresh directory on tmpfs and overwrites bytes of one of its files, then opens it and reads
//! everything pending. Opening must succeed or fail with a typed error (a torn tail is truncated, other
//! damage is `CorruptLog`), never panic, and never allocate from a length it read (libFuzzer's RSS
//! limit catches that).
//!
//! Input: byte 0 picks the file (modulo the number of files), bytes 1–4 the offset (big-endian,
//! modulo the file's length + 1), byte 5 the mode (even: overwrite, odd: cut the file there, then
//! append), the rest the bytes written.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use cloudsync_agent::push::{Outbox, OutboxOp, QuarantinedObject};
use cloudsync_api::ops::{ObjectKind, Operation};
use libfuzzer_sys::fuzz_target;

fn op(n: u64) -> OutboxOp {
    OutboxOp {
        configuration_id: uuid::Uuid::nil(),
        operation: Operation::Delete {
            kind: ObjectKind::User,
            source_anchor: format!("a{n}"),
            version: n,
        },
        origin_seq: n * 10,
        reason: Some("fuzz".into()),
    }
}

fn scratch(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "cloudsync-fuzz-outbox-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The template outbox's files: (path relative to the outbox directory, bytes).
fn template() -> &'static Vec<(PathBuf, Vec<u8>)> {
    static T: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = scratch("template");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        {
            let outbox = Outbox::open(&dir).unwrap();
            rt.block_on(async {
                outbox
                    .enqueue((1..=4).map(op).collect(), Some(("projection", 40)))
                    .await
                    .unwrap();
                outbox
                    .enqueue_takeover((5..=6).map(op).collect(), uuid::Uuid::nil(), 3)
                    .await
                    .unwrap();
                let q = QuarantinedObject {
                    time: "2026-01-01T00:00:00Z".into(),
                    configuration_id: uuid::Uuid::nil(),
                    source_anchor: "a2".into(),
                    action: "delete".into(),
                    seq: 2,
                    batch_id: uuid::Uuid::nil(),
                    code: "Quarantined".into(),
                    message: "fuzz".into(),
                };
                outbox.acknowledge(2, &[q]).await.unwrap();
            });
        }
        let mut files = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(&dir).unwrap().to_path_buf();
                    files.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let files = template();
    let dir = scratch("case");
    for (rel, bytes) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    let (rel, original) = &files[usize::from(data[0]) % files.len()];
    let offset = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize
        % (original.len() + 1);
    let mut bytes = original.clone();
    if data[5] % 2 == 0 {
        for (i, b) in data[6..].iter().enumerate() {
            match bytes.get_mut(offset + i) {
                Some(x) => *x = *b,
                None => bytes.push(*b),
            }
        }
    } else {
        bytes.truncate(offset);
        bytes.extend_from_slice(&data[6..]);
    }
    std::fs::write(dir.join(rel), &bytes).unwrap();
    if let Ok(outbox) = Outbox::open(&dir) {
        let checkpoint = outbox.checkpoint().unwrap_or(0);
        let _ = outbox.read_after(checkpoint, 1_000);
        let _ = outbox.producer_cursor("projection");
        let _ = outbox.quarantined_objects();
        let _ = outbox.quarantine_log();
    }
    let _ = std::fs::remove_dir_all(&dir);
});
