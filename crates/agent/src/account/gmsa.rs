//! A group managed service account's password, read from the DC and kept until it changes. Enters: the
//! domain's connection settings, the agent host's computer account (its bind name and password, from
//! the 0600 credentials) and the gMSA's DN. Leaves: the gMSA's NT hashes ([`ManagedPassword`]) and
//! which of them to present when ([`Held`]), or a [`GmsaError`] naming what the admin must fix.
//!
//! The DC serves `msDS-ManagedPassword` only over an encrypted connection and only to a principal in
//! the gMSA's `msDS-GroupMSAMembership`; to anyone else the entry simply comes back without the
//! attribute (no error), so "absent" is read as "this host is not allowed" and said so.
//!
//! When to read again, and which hash to present (measured on Samba 4.22, docs/lab.md § gMSA): during
//! the last [`ROLLOVER_WINDOW`] before a change the blob already lists the *next* password as current
//! while the DC still accepts only the old one (listed as previous), so inside that window the previous
//! hash is tried first; the blob is read again once the change is due ([`Held::refresh_due`]). The
//! DC-supplied interval is bounded by [`MAX_INTERVAL`] so no arithmetic on it can overflow.

use std::time::{Duration, Instant};

use ldap3::{Scope, SearchEntry};

use super::gmsa_blob::{BlobError, ManagedPassword};
use crate::nt_hash::NtHash;
use crate::secret::Secret;
use crate::source::ldap::{BindCredential, DomainConfig, LdapSourceError, conn};

/// The attribute the DC computes.
pub const ATTRIBUTE: &str = "msDS-ManagedPassword";

/// Before a change, the DC serves the next password as current this long ahead of accepting it.
pub const ROLLOVER_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The longest interval taken from the DC (a year); longer values are treated as a year.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why the gMSA's password could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GmsaError {
    /// The connection is not encrypted: the DC would not serve the password.
    #[error(
        "{url}: the DC serves {ATTRIBUTE} only over an encrypted connection; use ldaps:// or starttls = true"
    )]
    NeedsTls {
        /// The URL.
        url: String,
    },
    /// Connecting or binding as the computer account failed.
    #[error("reading the gMSA password as {computer}: {source}")]
    Ldap {
        /// The computer account.
        computer: String,
        /// What failed.
        #[source]
        source: LdapSourceError,
    },
    /// The gMSA does not exist (or the computer account cannot see it).
    #[error("the gMSA {gmsa} does not exist, or {computer} cannot see it")]
    NoSuchAccount {
        /// The gMSA's DN.
        gmsa: String,
        /// The computer account.
        computer: String,
    },
    /// The attribute is absent: the host is not among the allowed principals.
    #[error(
        "{computer} may not retrieve the password of {gmsa}: add it to the gMSA's allowed principals (msDS-GroupMSAMembership; on Samba: samba-tool service-account group-msa-membership add --name=<gMSA> --principal=<host>$)"
    )]
    NotAllowed {
        /// The gMSA's DN.
        gmsa: String,
        /// The computer account.
        computer: String,
    },
    /// The domain is not configured for a gMSA (`gmsa_dn` and `host_dn` are needed).
    #[error("the domain has no gMSA configured (account = \"gmsa\" needs gmsa_dn and host_dn)")]
    NotConfigured,
    /// The host computer account's password file cannot be read.
    #[error("cannot read the host computer account's password from {}: {source}", file.display())]
    HostPassword {
        /// `host_password_file`.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The value is not a valid blob.
    #[error("the {ATTRIBUTE} of {gmsa} cannot be decoded: {source}")]
    Blob {
        /// The gMSA's DN.
        gmsa: String,
        /// Why.
        #[source]
        source: BlobError,
    },
}

/// Reads and decodes the gMSA's password as the computer account (`computer_bind`: its DN or UPN) with
/// a simple bind over the domain's encrypted connection.
pub async fn read(
    domain: &DomainConfig,
    computer_bind: &str,
    computer_password: &Secret,
    gmsa_dn: &str,
) -> Result<ManagedPassword, GmsaError> {
    if !domain.uses_tls() {
        return Err(GmsaError::NeedsTls {
            url: domain.url.clone(),
        });
    }
    let ldap_error = |source| GmsaError::Ldap {
        computer: computer_bind.to_string(),
        source,
    };
    let as_computer = domain.as_account(computer_bind, computer_password.clone());
    let credential = BindCredential::Password(computer_password.clone());
    let mut c = conn::connect_with(&as_computer, &credential)
        .await
        .map_err(ldap_error)?;
    let found = c
        .op()
        .search(gmsa_dn, Scope::Base, "(objectClass=*)", vec![ATTRIBUTE])
        .await
        .map_err(|e| ldap_error(e.into()))?
        .success();
    c.close().await;
    let entries = match found {
        Ok((entries, _)) => entries,
        // 32 noSuchObject: the DN is wrong or hidden from the computer account.
        Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => {
            return Err(GmsaError::NoSuchAccount {
                gmsa: gmsa_dn.to_string(),
                computer: computer_bind.to_string(),
            });
        }
        Err(e) => return Err(ldap_error(e.into())),
    };
    let Some(entry) = entries.into_iter().next() else {
        return Err(GmsaError::NoSuchAccount {
            gmsa: gmsa_dn.to_string(),
            computer: computer_bind.to_string(),
        });
    };
    let entry = SearchEntry::construct(entry);
    let Some(blob) = super::binary_value(&entry, ATTRIBUTE) else {
        return Err(GmsaError::NotAllowed {
            gmsa: gmsa_dn.to_string(),
            computer: computer_bind.to_string(),
        });
    };
    let blob = zeroize::Zeroizing::new(blob);
    ManagedPassword::decode(&blob).map_err(|source| GmsaError::Blob {
        gmsa: gmsa_dn.to_string(),
        source,
    })
}

/// The key a domain's held password is kept under: one DC URL, one gMSA, one host account.
type HeldKey = (String, String, String);

/// Every gMSA password this process holds, so each connection of a domain (feed, notifications,
/// doctor, password hash sync) shares one read and one schedule.
static HELD: std::sync::LazyLock<tokio::sync::Mutex<std::collections::HashMap<HeldKey, Held>>> =
    std::sync::LazyLock::new(Default::default);

/// The hashes to present for `domain` (its `account = "gmsa"` settings) now, in order: from the held
/// read while it is fresh, else read again as the host account first. `force` reads again whatever
/// the schedule says (after the DC refused every held hash).
pub async fn hashes(domain: &DomainConfig, force: bool) -> Result<Vec<NtHash>, GmsaError> {
    let (gmsa_dn, host_dn) = match (&domain.gmsa_dn, &domain.host_dn) {
        (Some(g), Some(h)) => (g.clone(), h.clone()),
        _ => return Err(GmsaError::NotConfigured),
    };
    let key = (
        domain.url.to_ascii_lowercase(),
        gmsa_dn.clone(),
        host_dn.clone(),
    );
    let mut held = HELD.lock().await;
    let now = Instant::now();
    let fresh = held
        .get(&key)
        .is_some_and(|h| !force && !h.refresh_due(now));
    if !fresh {
        let password = domain
            .host_password()
            .map_err(|source| GmsaError::HostPassword {
                file: domain.host_password_file.clone().unwrap_or_default(),
                source,
            })?;
        let read = read(domain, &host_dn, &password, &gmsa_dn).await?;
        let entry = Held::new(read, Instant::now());
        tracing::info!(
            gmsa = %gmsa_dn,
            host = %host_dn,
            next_read_in_secs = entry.refresh_at().saturating_duration_since(Instant::now()).as_secs(),
            "read the gMSA password"
        );
        held.insert(key.clone(), entry);
    }
    let entry = held.get(&key).ok_or(GmsaError::NotConfigured)?;
    Ok(entry.hashes(Instant::now()).into_iter().cloned().collect())
}

/// A password read at some instant: which hashes to present, and when to read again.
///
/// What Samba 4.22 serves and accepts around a change (measured with libfaketime, `tests/gmsa_rotation.rs`):
///
/// | read at | blob's current | blob's previous | the DC accepts |
/// |---|---|---|---|
/// | more than 5 min before the change | P0 | — | P0 |
/// | in the last 5 min ([`ROLLOVER_WINDOW`]) | P1 | P0 | P0 only |
/// | after the change | P1 | — | P1 only |
///
/// So a blob read inside the window is presented previous-first until its change and current-first
/// after; a blob read outside it is read again when the window opens ([`Held::refresh_due`]), before
/// the DC stops accepting its password — the agent never needs a refused bind to notice a change.
#[derive(Debug, Clone)]
pub struct Held {
    password: ManagedPassword,
    /// When the DC's current password becomes the one it accepts (read time + bounded interval).
    change_at: Instant,
    /// Whether the blob was read inside the window (its current password is the next one).
    read_in_window: bool,
}

/// After a change announced by a blob read inside the window, how long to wait before reading again
/// (the DC's clock may be a little behind ours; until then the current hash is presented first).
pub const SETTLE: Duration = Duration::from_secs(30);

impl Held {
    /// A password read at `read_at`.
    pub fn new(password: ManagedPassword, read_at: Instant) -> Held {
        let interval = password.next_change_in.min(MAX_INTERVAL);
        Held {
            change_at: read_at + interval,
            read_in_window: password.previous.is_some() && interval <= ROLLOVER_WINDOW,
            password,
        }
    }

    /// The hashes to present at `now`, in order (module doc's table): the previous one first while a
    /// blob read in the window has not reached its change, else the current one first. The other
    /// follows as a fallback for a clock that disagrees with the DC's by a little.
    pub fn hashes(&self, now: Instant) -> Vec<&NtHash> {
        let previous_first = self.read_in_window && now < self.change_at;
        let mut out = Vec::with_capacity(2);
        match &self.password.previous {
            Some(previous) if previous_first => {
                out.push(previous);
                out.push(&self.password.current);
            }
            Some(previous) => {
                out.push(&self.password.current);
                out.push(previous);
            }
            None => out.push(&self.password.current),
        }
        out
    }

    /// When to read the blob again: as the window opens for a blob read before it (the next password
    /// is then served while the current one is still accepted), [`SETTLE`] after the change for one
    /// read inside it.
    pub fn refresh_at(&self) -> Instant {
        if self.read_in_window {
            self.change_at + SETTLE
        } else {
            self.change_at
                .checked_sub(ROLLOVER_WINDOW)
                .unwrap_or(self.change_at)
        }
    }

    /// Whether to read the blob again at `now` ([`Held::refresh_at`]).
    pub fn refresh_due(&self, now: Instant) -> bool {
        now >= self.refresh_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(next_change_in: Duration, previous: bool) -> ManagedPassword {
        ManagedPassword {
            current: NtHash::from_utf16le(&[0x41; 256]),
            previous: previous.then(|| NtHash::from_utf16le(&[0x42; 256])),
            next_change_in,
            unchanged_for: Duration::ZERO,
        }
    }

    #[test]
    fn a_blob_read_before_the_window_presents_its_current_hash_and_is_read_again_as_it_opens() {
        let t0 = Instant::now();
        // Read an hour before the change, with a previous password listed (Windows lists one).
        let p = password(Duration::from_secs(3600), true);
        let current = p.current.clone();
        let previous = p.previous.clone().unwrap();
        let held = Held::new(p, t0);
        assert_eq!(held.hashes(t0), vec![&current, &previous]);
        // Inside the window the DC still accepts this blob's current password (P0): still first.
        let late = t0 + Duration::from_secs(3600) - ROLLOVER_WINDOW;
        assert_eq!(held.hashes(late), vec![&current, &previous]);
        // … and that is when it is read again, before the DC stops accepting it.
        assert!(!held.refresh_due(late - Duration::from_secs(1)));
        assert!(held.refresh_due(late));
        // Without a previous password there is only one to try.
        let single = Held::new(password(Duration::from_secs(600), false), t0);
        assert_eq!(single.hashes(t0), vec![&current]);
        assert!(single.refresh_due(t0 + Duration::from_secs(300)));
    }

    #[test]
    fn a_blob_read_inside_the_window_presents_the_previous_hash_until_the_change() {
        let t0 = Instant::now();
        // Two minutes before the change: current = the next password, previous = the accepted one.
        let p = password(Duration::from_secs(120), true);
        let next = p.current.clone();
        let accepted = p.previous.clone().unwrap();
        let held = Held::new(p, t0);
        assert_eq!(held.hashes(t0), vec![&accepted, &next]);
        let change = t0 + Duration::from_secs(120);
        assert_eq!(held.hashes(change), vec![&next, &accepted]);
        assert!(!held.refresh_due(change));
        assert!(held.refresh_due(change + SETTLE));
    }

    #[test]
    fn a_dc_supplied_interval_is_bounded() {
        let t0 = Instant::now();
        // u64::MAX ticks ("never") must not overflow the instant arithmetic.
        let held = Held::new(password(Duration::MAX, false), t0);
        assert!(!held.refresh_due(t0 + Duration::from_secs(365 * 24 * 3600)));
        assert!(held.refresh_due(t0 + MAX_INTERVAL));
        // A DC announcing no wait at all: read again at once, never an underflow.
        let now_due = Held::new(password(Duration::ZERO, false), t0);
        assert!(now_due.refresh_due(t0));
    }
}
