//! Finding the user a writeback request is about, and reading the state that decides whether to
//! write at all.
//!
//! Enters: a bound [`DcConn`], the domain's naming context and a [`UserRef`] (the source anchor —
//! base64 of the 16 bytes of `objectGUID`, or of `ms-DS-ConsistencyGuid` when the anchor came from
//! it — or, without an anchor, the UPN). Leaves: a [`FoundUser`] (DN, `userAccountControl`,
//! `adminCount`, `lockoutTime`, locked or not), or the 33002/33003 refusals.
//!
//! One subtree search of the domain returns the DN and the state, `msDS-User-Account-Control-Computed`
//! included (a constructed attribute, which AD and Samba compute in subtree searches too; it is the
//! only lockout bit that accounts for an expired lockout). A first version read the state with a
//! second, base-scope read: one round trip more per request for nothing. Entries are decoded with
//! the non-panicking [`crate::source::ldap::entry`] parser; referrals (`CN=Configuration`
//! continuation references) are skipped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ldap3::Scope;

use super::error::WritebackError;
use crate::source::ldap::LdapSourceError;
use crate::source::ldap::conn::DcConn;
use crate::source::ldap::entry::{RawEntry, parse_entry};

/// `userAccountControl` ACCOUNTDISABLE.
pub const UF_ACCOUNTDISABLE: i64 = 0x2;
/// `msDS-User-Account-Control-Computed` UF_LOCKOUT.
pub const UF_LOCKOUT: i64 = 0x10;

/// The attributes the search asks for.
const STATE_ATTRS: [&str; 4] = [
    "userAccountControl",
    "adminCount",
    "lockoutTime",
    "msDS-User-Account-Control-Computed",
];

/// Whom a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    /// The source anchor as the agent pushed it (base64 of 16 bytes); the key when present.
    pub anchor: Option<String>,
    /// The UPN: named in every message, and the key when there is no anchor.
    pub upn: String,
}

impl UserRef {
    /// Located by its anchor; `upn` only names it in messages.
    pub fn by_anchor(anchor: impl Into<String>, upn: impl Into<String>) -> UserRef {
        UserRef {
            anchor: Some(anchor.into()),
            upn: upn.into(),
        }
    }

    /// Located by its `userPrincipalName`.
    pub fn by_upn(upn: impl Into<String>) -> UserRef {
        UserRef {
            anchor: None,
            upn: upn.into(),
        }
    }

    /// The search filter, and the key in words for messages.
    pub fn filter(&self) -> Result<(String, String), WritebackError> {
        let person = "(objectCategory=person)(objectClass=user)";
        match &self.anchor {
            Some(anchor) => {
                let bytes = STANDARD
                    .decode(anchor.trim())
                    .ok()
                    .filter(|b| b.len() == 16)
                    .ok_or_else(|| WritebackError::BadAnchor {
                        user: self.upn.clone(),
                        anchor: anchor.chars().take(64).collect(),
                    })?;
                let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
                Ok((
                    format!(
                        "(&{person}(|(objectGUID={escaped})(mS-DS-ConsistencyGuid={escaped})))"
                    ),
                    format!("source anchor {anchor}"),
                ))
            }
            None => Ok((
                format!(
                    "(&{person}(userPrincipalName={}))",
                    ldap3::ldap_escape(self.upn.as_str())
                ),
                format!("userPrincipalName {}", self.upn),
            )),
        }
    }
}

/// The user found, and what decides whether to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUser {
    /// Its DN.
    pub dn: String,
    /// `userAccountControl` (0 when unreadable).
    pub user_account_control: i64,
    /// `adminCount` (0 when absent).
    pub admin_count: i64,
    /// `lockoutTime` (0 when absent): non-zero also after a lockout has expired.
    pub lockout_time: i64,
    /// Locked out now: `msDS-User-Account-Control-Computed` UF_LOCKOUT, or, when the DC did not
    /// return that attribute, `lockoutTime` ≠ 0.
    pub locked_out: bool,
}

impl FoundUser {
    /// ACCOUNTDISABLE is set.
    pub fn is_disabled(&self) -> bool {
        self.user_account_control & UF_ACCOUNTDISABLE != 0
    }

    /// `adminCount=1`: refused by writeback.
    pub fn is_protected(&self) -> bool {
        self.admin_count != 0
    }
}

/// Finds exactly one user for `user` under `base_dn` and reads its state.
pub async fn find(
    conn: &mut DcConn,
    dns_name: &str,
    base_dn: &str,
    user: &UserRef,
) -> Result<FoundUser, WritebackError> {
    let (filter, key) = user.filter()?;
    let ldap_err = |source: LdapSourceError| WritebackError::Ldap {
        user: user.upn.clone(),
        source,
    };
    let mut found = search(conn, base_dn, &filter).await.map_err(|e| match e {
        LdapSourceError::Server { rc: 32, .. } => WritebackError::NoSuchBase {
            dns_name: dns_name.to_owned(),
            base_dn: base_dn.to_owned(),
        },
        e => ldap_err(e),
    })?;
    let entry = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(WritebackError::NotFound {
                user: user.upn.clone(),
                key,
                base_dn: base_dn.to_owned(),
            });
        }
        _ => {
            return Err(WritebackError::Several {
                user: user.upn.clone(),
                key,
                dns: found.into_iter().map(|e| e.dn).collect(),
            });
        }
    };
    let lockout_time = entry.integer("lockoutTime").unwrap_or(0);
    let locked_out = match entry.integer("msDS-User-Account-Control-Computed") {
        Some(computed) => computed & UF_LOCKOUT != 0,
        None => lockout_time != 0,
    };
    Ok(FoundUser {
        user_account_control: entry.integer("userAccountControl").unwrap_or(0),
        admin_count: entry.integer("adminCount").unwrap_or(0),
        lockout_time,
        locked_out,
        dn: entry.dn,
    })
}

/// The entries matching `filter` in the subtree of `base_dn`, with [`STATE_ATTRS`] (at most eight
/// kept: more are only counted as "several").
async fn search(
    conn: &mut DcConn,
    base_dn: &str,
    filter: &str,
) -> Result<Vec<RawEntry>, LdapSourceError> {
    let mut stream = conn
        .op()
        .streaming_search(base_dn, Scope::Subtree, filter, STATE_ATTRS.to_vec())
        .await?;
    let mut found = Vec::new();
    while let Some(re) = stream.next().await? {
        if re.is_ref() || re.is_intermediate() {
            continue;
        }
        let entry = parse_entry(re.0)?;
        if found.len() < 8 {
            found.push(entry);
        }
    }
    let res = stream.finish().await;
    match res.rc {
        0 => Ok(found),
        _ => Err(LdapSourceError::from_result(res)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_filter_escapes_every_byte() {
        let user = UserRef::by_anchor("ofQZdkTZC0CvOrd2u4+AdQ==", "user00003@corp.example.test");
        let (filter, key) = user.filter().unwrap();
        let g = r"\a1\f4\19\76\44\d9\0b\40\af\3a\b7\76\bb\8f\80\75";
        assert_eq!(
            filter,
            format!(
                "(&(objectCategory=person)(objectClass=user)(|(objectGUID={g})(mS-DS-ConsistencyGuid={g})))"
            )
        );
        assert_eq!(key, "source anchor ofQZdkTZC0CvOrd2u4+AdQ==");
    }

    #[test]
    fn a_bad_anchor_is_33002() {
        for bad in ["not base64!", "AAAA", ""] {
            let e = UserRef::by_anchor(bad, "u@corp").filter().unwrap_err();
            assert_eq!(e.code().code(), 33002, "{bad:?}");
        }
    }

    #[test]
    fn upn_filter_is_escaped() {
        let (filter, _) = UserRef::by_upn("a*)(b@corp").filter().unwrap();
        assert_eq!(
            filter,
            r"(&(objectCategory=person)(objectClass=user)(userPrincipalName=a\2a\29\28b@corp))"
        );
    }
}
