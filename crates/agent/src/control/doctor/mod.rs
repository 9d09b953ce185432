//! `cloudsync agent doctor`: checks an installed agent end to end. Enters: the loaded
//! configuration and `now` (the caller's clock, so clock skew is testable). Leaves: a [`Report`],
//! one [`Check`] per thing looked at — `ok`, `warn` or `FAIL`, what, and for each failure a
//! one-line fix an AD administrator can act on — and the exit code it implies.
//!
//! - [`local`] — state directories and credentials file modes, disk space under the journal.
//! - [`cert`] — the DC certificate's expiry (ldaps:// and StartTLS; warn under 30 days).
//! - [`domain`] — per domain: DNS, TCP, TLS (CA, host name), bind, a read of the domain root, the
//!   rights ([`rights`]), and the clock against the DC's rootDSE `currentTime`.
//! - [`rights`] — a real DirSync request (Replicating Directory Changes, or `object_security`), and
//!   with `[phs] enabled` a real MS-DRSR GetNCChanges (Replicating Directory Changes All).
//! - [`tenant`] — reachability and TLS, the credentials file, the agent's token, a heartbeat round
//!   trip, and the clock against the tenant's HTTP `Date`.
//! - [`skew`] — the clock-skew rule (FAIL above 5 minutes, Kerberos' default; warn above 1).
//!
//! The checks only read: nothing is written to AD, the tenant or the state (a heartbeat is the
//! one call with an effect, the same one the daemon makes).

pub mod cert;
pub mod domain;
pub mod local;
pub mod rights;
pub mod skew;
pub mod tenant;

use std::time::SystemTime;

use crate::config::Config;

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but needs attention soon (exit code stays 0).
    Warn,
    /// Broken (exit code 1).
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// The outcome.
    pub status: Status,
    /// What was checked (`corp: TCP 10.0.0.1:636`).
    pub what: String,
    /// What was found.
    pub detail: String,
    /// For a warning or failure: what to do about it.
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            what: what.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failed check and its fix.
    pub fn fail(
        what: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            what: what.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A warning and its fix.
    pub fn warn(
        what: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            what: what.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<4} {}: {}", self.status, self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every check's outcome, in the order they ran.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// 0 when nothing failed (warnings allowed), 1 when a check failed. (2, the configuration
    /// cannot be loaded, is the caller's: there is no report then.)
    pub fn exit_code(&self) -> u8 {
        u8::from(self.checks.iter().any(|c| c.status == Status::Fail))
    }
}

/// Runs every check against `config`, taking `now` as the local clock.
pub async fn run(config: &Config, now: SystemTime) -> Report {
    let mut checks = local::state(config);
    for (label, domain) in &config.domains {
        checks.extend(domain::check(label, domain, Some(&config.phs), now).await);
    }
    if let Some(t) = &config.tenant {
        checks.extend(tenant::check(t, now).await);
    }
    checks.push(local::disk(&config.agent.journal_dir));
    Report { checks }
}
