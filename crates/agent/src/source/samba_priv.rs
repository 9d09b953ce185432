//! Samba-specific local source for password hash sync: the privileged LDAP socket.
//!
//! A Samba AD DC serves `<private dir>/ldap_priv/ldapi` (directory mode 0750, root only) with a
//! **system session even for anonymous binds**: `unicodePwd` comes back as the plain 16-byte NT hash.
//! An agent running as root on the DC itself can therefore read hashes without MS-DRSR. This is not
//! an Active Directory feature: Windows DCs have no such socket, and on Samba it needs root.
//!
//! Enters: the socket path, the domain's base DN and the highest `uSNChanged` already processed.
//! Leaves: NT hashes (zeroizing) per objectGUID and the new highest `uSNChanged` (the cookie,
//! stored by the caller as the `SambaPriv` checkpoint). A password change bumps `uSNChanged`, so
//! `(uSNChanged>=N+1)` finds every account changed since the last run.

use std::collections::HashMap;
use std::path::Path;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, Scope, SearchEntry};
use zeroize::Zeroize;

use super::drsr::ndr::Guid;
use crate::nt_hash::NtHash;

/// userAccountControl ACCOUNTDISABLE.
const UF_ACCOUNTDISABLE: u32 = 0x2;

/// What went wrong reading the privileged socket.
#[derive(Debug, thiserror::Error)]
pub enum SambaPrivError {
    /// The socket is missing or not accessible (not root, or not a Samba DC).
    #[error(
        "cannot use Samba's privileged socket {path}: {source} (it exists only on a Samba AD DC and \
         needs root)"
    )]
    Socket {
        /// The socket path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The LDAP operation failed.
    #[error("LDAP over the privileged socket failed: {0}")]
    Ldap(#[from] ldap3::LdapError),
    /// An entry could not be decoded.
    #[error("malformed entry from the privileged socket: {0}")]
    Malformed(String),
}

impl SambaPrivError {
    /// Whether a later cycle may succeed without a change of configuration.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SambaPrivError::Ldap(_))
    }
}

/// One account's hash read from the socket.
#[derive(Debug)]
pub struct PrivHash {
    /// objectGUID (wire order).
    pub guid: Guid,
    /// The DN.
    pub dn: String,
    /// The NT hash (zeroized on drop).
    pub nt_hash: NtHash,
    /// Whether userAccountControl says disabled.
    pub disabled: Option<bool>,
}

/// The result of one read.
#[derive(Debug)]
pub struct PrivRun {
    /// Accounts with a hash changed since the cookie.
    pub hashes: Vec<PrivHash>,
    /// The highest `uSNChanged` seen (the next cookie); the old one when nothing changed.
    pub highest_usn: u64,
}

fn first_bytes(entry: &SearchEntry, attr: &str) -> Option<Vec<u8>> {
    entry
        .bin_attrs
        .get(attr)
        .and_then(|v| v.first().cloned())
        .or_else(|| {
            entry
                .attrs
                .get(attr)
                .and_then(|v| v.first())
                .map(|s| s.as_bytes().to_vec())
        })
}

fn first_text(entry: &SearchEntry, attr: &str) -> Option<String> {
    entry.attrs.get(attr).and_then(|v| v.first()).cloned()
}

/// Reads every account whose `uSNChanged` is above `since_usn` (0: all) and returns its NT hash.
pub async fn read_hashes(
    socket: &Path,
    base_dn: &str,
    since_usn: u64,
) -> Result<PrivRun, SambaPrivError> {
    std::fs::metadata(socket).map_err(|source| SambaPrivError::Socket {
        path: socket.display().to_string(),
        source,
    })?;
    let url = format!(
        "ldapi://{}",
        socket.display().to_string().replace('/', "%2F")
    );
    let (conn, mut ldap) = LdapConnAsync::new(&url).await?;
    ldap3::drive!(conn);
    let filter = format!(
        "(&(objectClass=user)(uSNChanged>={}))",
        since_usn.saturating_add(1)
    );
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let mut search = ldap
        .streaming_search_with(
            adapters,
            base_dn,
            Scope::Subtree,
            &filter,
            vec![
                "objectGUID",
                "unicodePwd",
                "userAccountControl",
                "uSNChanged",
            ],
        )
        .await?;
    let mut run = PrivRun {
        hashes: Vec::new(),
        highest_usn: since_usn,
    };
    let mut seen: HashMap<Guid, ()> = HashMap::new();
    while let Some(raw) = search.next().await? {
        // ldap3's SearchEntry::construct panics on malformed BER; keep that from reaching the agent.
        let entry =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(raw)))
                .map_err(|_| SambaPrivError::Malformed("undecodable search entry".into()))?;
        let guid: Guid = first_bytes(&entry, "objectGUID")
            .and_then(|g| g.try_into().ok())
            .ok_or_else(|| SambaPrivError::Malformed(format!("{}: no objectGUID", entry.dn)))?;
        let usn: u64 = first_text(&entry, "uSNChanged")
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        run.highest_usn = run.highest_usn.max(usn);
        let Some(mut pwd) = first_bytes(&entry, "unicodePwd") else {
            continue;
        };
        let hash: Result<[u8; 16], _> = pwd.as_slice().try_into();
        pwd.zeroize();
        let Ok(mut hash) = hash else {
            tracing::warn!(dn = %entry.dn, "A unicodePwd value of unexpected length was skipped.");
            continue;
        };
        let uac = first_text(&entry, "userAccountControl")
            .and_then(|u| u.parse::<i64>().ok())
            .map(|uac| uac as u32);
        let rid = first_bytes(&entry, "objectSid")
            .and_then(|sid| super::drsr::replentinf::rid_of(&sid))
            .unwrap_or(0);
        if !super::drsr::client::is_syncable(rid, uac) {
            hash.zeroize();
            continue;
        }
        let disabled = uac.map(|uac| uac & UF_ACCOUNTDISABLE != 0);
        if seen.insert(guid, ()).is_none() {
            run.hashes.push(PrivHash {
                guid,
                dn: entry.dn.clone(),
                nt_hash: NtHash::from_bytes(hash),
                disabled,
            });
        }
        hash.zeroize();
    }
    search.finish().await.success()?;
    let _ = ldap.unbind().await;
    Ok(run)
}
