//! Opening sled for the journal. Enters: a configured `sled::Config` and the journal directory.
//! Leaves: the database, or a [`JournalError`] that says what is wrong: the lock held by another
//! process, or damage to sled's own files ([`Damage`]), including a sled panic at open and a
//! `conf` whose checksum fails.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use cloudsync_private_fs::lock::{is_lock_conflict, open_waiting_for_lock};

use super::JournalError;
use super::error::Damage;

/// How long opening waits for sled's file lock. A handle dropped in this process releases the lock only when
/// sled's background I/O threads finish (they hold the file), typically within milliseconds.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens sled, polling for the file lock until [`LOCK_WAIT`] has passed; then [`JournalError::Locked`].
pub(super) fn open_db(config: sled::Config, dir: &Path) -> Result<sled::Db, JournalError> {
    match open_waiting_for_lock(LOCK_WAIT, || open_catching_panics(&config), is_locked) {
        Err(e) if is_locked(&e) => Err(JournalError::Locked {
            dir: dir.to_path_buf(),
        }),
        // sled reads `conf` first; when its checksum fails, that is what is damaged, whatever
        // sled then reports (often a "corruption at offset None" or "version earlier than 0.29").
        Err(JournalError::Damaged { dir: d, damage }) => {
            let damage = match conf_checksum_fails(dir) {
                true => Damage::Conf {
                    detail: "its checksum does not match".to_owned(),
                },
                false => damage,
            };
            Err(JournalError::Damaged { dir: d, damage })
        }
        other => other,
    }
}

fn is_locked(error: &JournalError) -> bool {
    matches!(error, JournalError::Storage(sled::Error::Io(e)) if is_lock_conflict(e))
}

/// True when sled's `conf` in `dir` exists and its trailing CRC32 (little-endian, over the text
/// before it; sled 0.34's layout) does not match.
fn conf_checksum_fails(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join("conf")) else {
        return false;
    };
    if bytes.len() <= 8 {
        return false;
    }
    let (text, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    crc32fast::hash(text) != stored
}

/// `config.open()`, with a panic inside sled turned into [`Damage::Panicked`]: sled 0.34 panics
/// on some damaged logs while it rebuilds its snapshot at open ("tried to serialize
/// Uninitialized", sled issues #1527/#1533), which would otherwise abort every tool with a
/// backtrace. The panic's message is captured instead of printed by [`capture_panics`], only for
/// the thread that is opening.
fn open_catching_panics(config: &sled::Config) -> Result<sled::Db, JournalError> {
    capture_panics();
    CAPTURING.with(|c| c.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    CAPTURING.with(|c| c.set(false));
    let message = CAPTURED.with(|c| c.borrow_mut().take());
    match result {
        Ok(opened) => opened.map_err(JournalError::from),
        Err(_) => Err(JournalError::Damaged {
            dir: None,
            damage: Damage::Panicked {
                message: message.unwrap_or_else(|| "a panic without a message".to_owned()),
            },
        }),
    }
}

thread_local! {
    /// Set while this thread opens sled: its panics are captured, not printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// The captured panic's message and place.
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that captures the message of a panic on a thread that
/// is opening sled and hands every other panic to the hook that was there before. (Swapping the
/// hook around each open raced: two threads opening at once could restore each other's capturing
/// hook and leave it installed, silencing every later panic of the process.)
fn capture_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                return previous(info);
            }
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            CAPTURED.with(|c| *c.borrow_mut() = Some(format!("{text}{at}")));
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// Opens on many threads at once leave panics of the process reported as before.
    #[test]
    fn concurrent_opens_keep_other_panics_reported() {
        static REPORTED: AtomicUsize = AtomicUsize::new(0);
        std::panic::set_hook(Box::new(|_| {
            REPORTED.fetch_add(1, Ordering::SeqCst);
        }));
        let dir = tempfile::tempdir().unwrap();
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let base = dir.path().join(format!("t{t}"));
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..20 {
                        let path = base.join(format!("db{i}"));
                        let db = open_catching_panics(&sled::Config::new().path(&path)).unwrap();
                        drop(db);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let before = REPORTED.load(Ordering::SeqCst);
        let _ = std::thread::spawn(|| panic!("an unrelated panic")).join();
        assert_eq!(
            REPORTED.load(Ordering::SeqCst),
            before + 1,
            "the panic was swallowed"
        );
        let _ = std::panic::take_hook();
    }
}
