//! What the harness and the benches read about a process and its files: peak resident memory
//! (`VmHWM` in `/proc/<pid>/status`, resettable per stage through `/proc/self/clear_refs`) and the
//! bytes a store takes on disk.

use std::path::Path;

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This process's peak resident set size (`VmHWM`) in bytes, since start or the last
/// [`reset_peak_rss`]; 0 where `/proc` does not say.
pub fn peak_rss_bytes() -> u64 {
    status_kib("self", "VmHWM:").map_or(0, |k| k * 1024)
}

/// This process's resident set size now (`VmRSS`) in bytes; 0 where `/proc` does not say.
pub fn rss_bytes() -> u64 {
    status_kib("self", "VmRSS:").map_or(0, |k| k * 1024)
}

/// Another process's peak resident set size in bytes (0 when it is gone).
pub fn peak_rss_of(pid: u32) -> u64 {
    status_kib(&pid.to_string(), "VmHWM:").map_or(0, |k| k * 1024)
}

/// Sets this process's peak RSS back to its current RSS (Linux ≥ 4.0: `5` into `clear_refs`), so
/// the next [`peak_rss_bytes`] is one stage's peak, and returns that current RSS. A kernel that
/// refuses leaves the peak since start.
pub fn reset_peak_rss() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    rss_bytes()
}

/// Bytes of every file under `dir`, recursively (0 for a missing directory).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_and_reset() {
        assert!(peak_rss_bytes() > 0, "VmHWM is readable on Linux");
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        assert!(
            peak_rss_bytes() >= 64 << 20,
            "the touched block is resident"
        );
        drop(block);
        let now = reset_peak_rss();
        assert!(now > 0 && peak_rss_bytes() > 0);
    }

    #[test]
    fn dir_bytes_sums_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()), 15);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }
}
