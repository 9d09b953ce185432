//! Checks of this host: the state's file modes and the disk space under the journal. Enters: the
//! configuration. Leaves: [`Check`]s.

use std::path::Path;

use super::Check;
use crate::config::Config;
use crate::control::state_check::state_paths;
use cloudsync_private_fs::check_private;

const MIB: u64 = 1024 * 1024;
/// Below this the disk check fails.
pub const FAIL_BELOW: u64 = 100 * MIB;
/// Below this (or 10 % free) the disk check warns.
pub const WARN_BELOW: u64 = 1024 * MIB;

/// Every state path that exists: private (owner only), or the `chmod` that makes it so.
pub fn state(config: &Config) -> Vec<Check> {
    state_paths(config)
        .iter()
        .filter(|p| p.exists())
        .map(|p| {
            let what = format!("state {}", p.display());
            match check_private(p) {
                Ok(()) => Check::ok(what, "private to the agent's user"),
                Err(e) => Check::fail(
                    what,
                    e.to_string(),
                    format!("chmod go= {} (state holds secrets)", p.display()),
                ),
            }
        })
        .collect()
}

/// Free space on the file system of the journal directory (or its nearest existing parent).
pub fn disk(journal_dir: &Path) -> Check {
    let what = format!("disk space under {}", journal_dir.display());
    let Some(existing) = journal_dir.ancestors().find(|p| p.exists()) else {
        return Check::fail(
            what,
            "no existing parent directory",
            "create the journal directory",
        );
    };
    match rustix::fs::statvfs(existing) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            classify(what, free, total)
        }
        Err(e) => Check::fail(
            what,
            format!("statvfs failed: {e}"),
            "check that the journal directory is readable by the agent's user",
        ),
    }
}

/// The disk rule: FAIL under 100 MiB free, warn under 1 GiB or 10 %.
pub fn classify(what: String, free: u64, total: u64) -> Check {
    let detail = format!("{} MiB free of {} MiB", free / MIB, total / MIB);
    let fix = "free space on that file system or move journal_dir to a larger one";
    if free < FAIL_BELOW {
        Check::fail(what, detail, fix)
    } else if free < WARN_BELOW || free.saturating_mul(10) < total {
        Check::warn(what, detail, fix)
    } else {
        Check::ok(what, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::doctor::Status;

    #[test]
    fn disk_thresholds() {
        let c = |free: u64, total: u64| classify("d".into(), free, total).status;
        assert_eq!(c(99 * MIB, 1000 * MIB), Status::Fail);
        assert_eq!(c(500 * MIB, 1000 * MIB), Status::Warn);
        assert_eq!(c(2048 * MIB, 100_000 * MIB), Status::Warn);
        assert_eq!(c(20_000 * MIB, 100_000 * MIB), Status::Ok);
    }

    #[test]
    fn disk_of_a_real_directory_reports_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let check = disk(&dir.path().join("not/yet/journal"));
        assert!(check.detail.contains("MiB free of"), "{check}");
    }
}
