//! Password reset and account unlock in AD over LDAP, as the service account.
//!
//! Enters: a [`DcConn`] bound as the service account (`conn::connect(&DomainConfig)`), the
//! [`Domain`] it is bound to, and a [`ResetRequest`] or a [`UserRef`] to unlock. Leaves: one LDAP
//! modify on the user (or none), and [`Done`] or a [`WritebackError`] carrying the product's code.
//!
//! The steps, in this order (each refusal is final and writes nothing):
//! 1. reset only: the connection must be TLS ([`crate::source::ldap::DomainConfig::uses_tls`]) —
//!    else 33009; AD itself refuses a password over plain LDAP (rc 53, `0000001F … must be over an
//!    encrypted connection`), this check just says so before the password is sent anywhere;
//! 2. find exactly one user ([`super::lookup`]): none 33002, several 33003;
//! 3. `adminCount=1` → 33004 (protected account: Samba has no AdminSDHolder, so without this
//!    check the service account's inherited Reset Password would reach Administrator — measured);
//! 4. disabled (`userAccountControl` & 2) → 33005;
//! 5. reset only: locked out and the request may not unlock → 33006;
//! 6. one modify. A **reset** replaces `unicodePwd` with the quoted UTF-16LE password: an
//!    administrative reset, which needs Reset Password and no old password; AD applies its length
//!    and complexity rules (on Samba and on Windows history and minimum age only apply to a reset
//!    that sends the policy-hints control, see [`ResetRequest::apply_history`]). "Must change at
//!    next sign-in" adds `pwdLastSet: 0` **to the same modify** (AD accepts only 0 or -1; Samba 4.22
//!    measured: `00000057: setup_last_set_field: pwdLastSet must be 0 or -1 only!` for any other
//!    value), and an allowed unlock adds `lockoutTime: 0`, so the password, the flag and the
//!    unlock land together or not at all. An **unlock** writes only `lockoutTime: 0`; a user who
//!    is not locked out is a success that says so, and nothing is written.
//! 7. AD's refusal is read by [`super::ad_answer::Refusal::classify`].
//!
//! The password: taken as a [`Secret`], encoded into a [`Zeroizing`] buffer sized exactly (no
//! reallocation leaves a copy) and wiped on return. ldap3 copies it into its BER request and the
//! TLS layer's buffers, which are not wiped: the same limit as the bind password. Nothing here
//! logs or formats a password.

use std::collections::HashSet;

use ldap3::Mod;
use ldap3::controls::RawControl;
use zeroize::Zeroizing;

use super::ad_answer::Refusal;
use super::error::WritebackError;
use super::lookup::{self, FoundUser, UserRef};
use crate::secret::Secret;
use crate::source::ldap::DomainConfig;
use crate::source::ldap::conn::DcConn;

/// LDAP_SERVER_POLICY_HINTS_OID (MS-ADTS 3.1.1.3.4.1.34): "apply history and minimum age to this
/// reset". Value: `SEQUENCE { Flags INTEGER 1 }`.
pub const POLICY_HINTS_OID: &str = "1.2.840.113556.1.4.2239";
const POLICY_HINTS_VALUE: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x01];

/// The domain a connection is bound to, as far as writeback needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Its DNS name (messages, the permissions fix).
    pub dns_name: String,
    /// The configured URL (messages).
    pub url: String,
    /// The naming context searched for users.
    pub base_dn: String,
    /// `ldaps://` or StartTLS.
    pub tls: bool,
}

impl Domain {
    /// From the domain's configuration (the one the connection was made with).
    pub fn of(cfg: &DomainConfig) -> Domain {
        Domain {
            dns_name: cfg.dns_name.clone(),
            url: cfg.url.clone(),
            base_dn: cfg.base(),
            tls: cfg.uses_tls(),
        }
    }
}

/// A password reset.
#[derive(Debug, Clone)]
pub struct ResetRequest {
    /// Whose.
    pub user: UserRef,
    /// The new password (never printed).
    pub password: Secret,
    /// Set "must change password at next sign-in" (`pwdLastSet: 0`).
    pub force_change: bool,
    /// May a locked-out user be unlocked by this reset (the configuration's "allow users to
    /// unlock accounts")? When false a locked-out user is refused with 33006.
    pub unlock: bool,
    /// Send the policy-hints control (non-critical) so that Windows DCs also apply password
    /// history and minimum age, as for a user's own change (self-service). Samba 4.22 does not
    /// implement it (measured: rc 12 when critical) and ignores it when non-critical.
    pub apply_history: bool,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The user's DN.
    pub dn: String,
    /// What was written, in words (for the answer's message).
    pub note: String,
}

/// Resets the user's password; see the module docs for the steps.
#[tracing::instrument(skip_all, err(level = "info"), fields(domain = %domain.dns_name, user = %request.user.upn))]
pub async fn reset(
    conn: &mut DcConn,
    domain: &Domain,
    request: &ResetRequest,
) -> Result<Done, WritebackError> {
    if !domain.tls {
        return Err(WritebackError::NeedsTls {
            dns_name: domain.dns_name.clone(),
            url: domain.url.clone(),
        });
    }
    let user = &request.user;
    let found = lookup::find(conn, &domain.dns_name, &domain.base_dn, user).await?;
    refuse_common(user, &found)?;
    if found.locked_out && !request.unlock {
        return Err(WritebackError::LockedOut {
            user: user.upn.clone(),
            dn: found.dn,
        });
    }
    let value = unicode_pwd(&request.password);
    let mut mods: Vec<Mod<&[u8]>> = vec![Mod::Replace(
        b"unicodePwd",
        HashSet::from([value.as_slice()]),
    )];
    let mut note = String::from("password reset");
    if request.force_change {
        mods.push(Mod::Replace(b"pwdLastSet", HashSet::from([&b"0"[..]])));
        note.push_str("; must change it at next sign-in");
    }
    if request.unlock && found.lockout_time != 0 {
        mods.push(Mod::Replace(b"lockoutTime", HashSet::from([&b"0"[..]])));
        note.push_str(if found.locked_out {
            "; account unlocked"
        } else {
            "; expired lockout cleared"
        });
    }
    let ldap = conn.op();
    if request.apply_history {
        ldap.with_controls(RawControl {
            ctype: POLICY_HINTS_OID.to_owned(),
            crit: false,
            val: Some(POLICY_HINTS_VALUE.to_vec()),
        });
    }
    let res = ldap.modify(&found.dn, mods).await;
    drop(value);
    finish(res, user, found, domain, "the password", true, note)
}

/// Unlocks the user (`lockoutTime: 0`) without touching the password; see the module docs.
#[tracing::instrument(skip_all, err(level = "info"), fields(domain = %domain.dns_name, user = %user.upn))]
pub async fn unlock(
    conn: &mut DcConn,
    domain: &Domain,
    user: &UserRef,
) -> Result<Done, WritebackError> {
    let found = lookup::find(conn, &domain.dns_name, &domain.base_dn, user).await?;
    refuse_common(user, &found)?;
    if found.lockout_time == 0 {
        return Ok(Done {
            dn: found.dn,
            note: "the account was not locked out; nothing was changed".into(),
        });
    }
    let note = if found.locked_out {
        "account unlocked; the password is unchanged"
    } else {
        "the lockout had already expired; lockoutTime cleared, the password is unchanged"
    };
    let mods: Vec<Mod<&[u8]>> = vec![Mod::Replace(b"lockoutTime", HashSet::from([&b"0"[..]]))];
    let res = conn.op().modify(&found.dn, mods).await;
    finish(res, user, found, domain, "lockoutTime", false, note.into())
}

/// Steps 3 and 4: protected and disabled accounts.
fn refuse_common(user: &UserRef, found: &FoundUser) -> Result<(), WritebackError> {
    if found.is_protected() {
        return Err(WritebackError::Protected {
            user: user.upn.clone(),
            dn: found.dn.clone(),
        });
    }
    if found.is_disabled() {
        return Err(WritebackError::Disabled {
            user: user.upn.clone(),
            dn: found.dn.clone(),
        });
    }
    Ok(())
}

/// Maps the modify's outcome.
fn finish(
    res: ldap3::result::Result<ldap3::LdapResult>,
    user: &UserRef,
    found: FoundUser,
    domain: &Domain,
    what: &'static str,
    wrote_password: bool,
    note: String,
) -> Result<Done, WritebackError> {
    let res = res.map_err(|e| WritebackError::Ldap {
        user: user.upn.clone(),
        source: e.into(),
    })?;
    if res.rc == 0 {
        return Ok(Done { dn: found.dn, note });
    }
    let upn = user.upn.clone();
    let dn = found.dn;
    let text = one_line(&res.text);
    Err(match Refusal::classify(res.rc, &text, wrote_password) {
        Refusal::Denied => WritebackError::Denied {
            user: upn,
            dn,
            dns_name: domain.dns_name.clone(),
            what,
            text,
        },
        Refusal::Policy(reason) => WritebackError::Policy {
            user: upn,
            reason,
            text,
        },
        Refusal::WrongCurrentPassword => WritebackError::WrongCurrentPassword { user: upn, text },
        Refusal::NeedsTls => WritebackError::ServerNeedsTls {
            dns_name: domain.dns_name.clone(),
            text,
        },
        Refusal::Gone => WritebackError::Gone { user: upn, dn },
        Refusal::LockedOut => WritebackError::LockedOut { user: upn, dn },
        Refusal::Disabled => WritebackError::Disabled { user: upn, dn },
        Refusal::Other => WritebackError::Refused {
            user: upn,
            dn,
            rc: res.rc,
            text,
        },
    })
}

/// AD's diagnostic text on one line (Samba and Windows put a newline before the detail), at most
/// 500 characters: it is network input and ends up in a JSON answer and the journal.
pub fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(500)
        .collect()
}

/// `"password"` as UTF-16LE, the form `unicodePwd` takes, in a buffer wiped on drop and allocated
/// once at its final size.
pub fn unicode_pwd(password: &Secret) -> Zeroizing<Vec<u8>> {
    let units = password.expose().encode_utf16().count() + 2;
    let mut buf = Zeroizing::new(Vec::with_capacity(units * 2));
    let quote = u16::from(b'"');
    for unit in std::iter::once(quote)
        .chain(password.expose().encode_utf16())
        .chain(std::iter::once(quote))
    {
        buf.extend_from_slice(&unit.to_le_bytes());
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        let v = unicode_pwd(&Secret::new("Aé1".into()));
        assert_eq!(
            v.as_slice(),
            &[0x22, 0, 0x41, 0, 0xE9, 0, 0x31, 0, 0x22, 0][..]
        );
        assert_eq!(v.capacity(), v.len());
        let v = unicode_pwd(&Secret::new("😀".into()));
        assert_eq!(v.len(), 8, "a surrogate pair is two units");
    }

    #[test]
    fn ad_text_is_one_line() {
        assert_eq!(
            one_line(
                "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0\nPassword modification over LDAP must be over an encrypted connection\n"
            ),
            "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0 Password modification over LDAP must be over an encrypted connection"
        );
        assert_eq!(one_line(&"x".repeat(900)).len(), 500);
    }

    #[test]
    fn policy_hints_value_is_a_sequence_of_integer_one() {
        assert_eq!(POLICY_HINTS_VALUE, [0x30, 0x03, 0x02, 0x01, 0x01]);
    }
}
