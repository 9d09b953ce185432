//! Why a writeback request was not carried out, one variant per case an admin or a user can act on,
//! each with its product result code ([`WritebackError::code`]).

use super::ad_answer::PolicyReason;
use super::codes::{Answer, WritebackCode};
use crate::account::permissions::PermissionType;
use crate::source::ldap::LdapSourceError;

/// A refused or failed writeback. The texts never hold a password; they name the user (UPN as the
/// request gave it), the DN found, AD's own diagnostic text and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    /// The agent's connection to the DC is plain `ldap://`: no password is sent over it.
    #[error(
        "the connection to {url} ({dns_name}) is not TLS-protected, and a password is written only over \
         LDAPS or StartTLS: set url = \"ldaps://…\" or starttls = true for this domain"
    )]
    NeedsTls {
        /// The domain.
        dns_name: String,
        /// The configured URL.
        url: String,
    },
    /// The DC itself refused the password for want of an encrypted connection.
    #[error(
        "{dns_name} refused to take a password over this connection (AD: {text}): use ldaps:// or \
         starttls = true"
    )]
    ServerNeedsTls {
        /// The domain.
        dns_name: String,
        /// AD's text.
        text: String,
    },
    /// The configured naming context does not exist on the DC.
    #[error(
        "the search base {base_dn} does not exist in {dns_name}: check base_dn for this domain"
    )]
    NoSuchBase {
        /// The domain.
        dns_name: String,
        /// The base searched.
        base_dn: String,
    },
    /// The anchor is not a base64 objectGUID (16 bytes).
    #[error("{user}: the source anchor {anchor:?} is not the base64 of a 16-byte objectGUID")]
    BadAnchor {
        /// The UPN the request named.
        user: String,
        /// The anchor as given.
        anchor: String,
    },
    /// No user object matched.
    #[error("{user}: no user with {key} under {base_dn} (deleted, or outside the domain)")]
    NotFound {
        /// The UPN the request named.
        user: String,
        /// What was searched for (`objectGUID …` or `userPrincipalName …`).
        key: String,
        /// Where.
        base_dn: String,
    },
    /// Several objects matched.
    #[error("{user}: more than one object matches {key}: {}", .dns.join("; "))]
    Several {
        /// The UPN the request named.
        user: String,
        /// What was searched for.
        key: String,
        /// The DNs found (the first eight).
        dns: Vec<String>,
    },
    /// `adminCount=1`: a protected account (a member of an administrative group, now or before).
    #[error(
        "{user} ({dn}) is a protected account (adminCount=1, a member of an administrative group now \
         or before): its password is not written back; change it in Active Directory"
    )]
    Protected {
        /// The UPN the request named.
        user: String,
        /// The DN found.
        dn: String,
    },
    /// The account is disabled (`userAccountControl` ACCOUNTDISABLE).
    #[error("{user} ({dn}) is disabled: enable it in Active Directory first")]
    Disabled {
        /// The UPN the request named.
        user: String,
        /// The DN found.
        dn: String,
    },
    /// The account is locked out and this reset may not unlock it.
    #[error(
        "{user} ({dn}) is locked out and this request may not unlock it (\"allow users to unlock \
         accounts\" is off): unlock it in Active Directory, or wait for the lockout to end"
    )]
    LockedOut {
        /// The UPN the request named.
        user: String,
        /// The DN found.
        dn: String,
    },
    /// AD refused the service account the right to write.
    #[error(
        "{user} ({dn}): the service account may not change {what} (AD: {text}); grant the writeback \
         rights with: cloudsync agent permissions set --type {} --domain {dns_name} --config FILE \
         --domain-admin <admin UPN> --domain-admin-password-file -",
        PermissionType::PasswordWriteback.name()
    )]
    Denied {
        /// The UPN the request named.
        user: String,
        /// The DN found.
        dn: String,
        /// The domain.
        dns_name: String,
        /// What was being written (`the password`, `lockoutTime`).
        what: &'static str,
        /// AD's text.
        text: String,
    },
    /// AD's password policy refused the new password.
    #[error("{user}: {reason} (AD: {text})")]
    Policy {
        /// The UPN the request named.
        user: String,
        /// The rule, as far as AD said.
        reason: PolicyReason,
        /// AD's text.
        text: String,
    },
    /// A change named the wrong current password.
    #[error("{user}: AD says the current password is not the user's (AD: {text})")]
    WrongCurrentPassword {
        /// The UPN the request named.
        user: String,
        /// AD's text.
        text: String,
    },
    /// The object disappeared between the search and the write.
    #[error("{user} ({dn}) was moved or deleted while the request was carried out")]
    Gone {
        /// The UPN the request named.
        user: String,
        /// The DN found.
        dn: String,
    },
    /// AD refused with a result this module does not map.
    #[error("{user} ({dn}): AD refused the change with LDAP result {rc}: {text}")]
    Refused {
        /// The UPN the request named.
        user: String,
        /// The DN found.
        dn: String,
        /// The LDAP result code.
        rc: u32,
        /// AD's text.
        text: String,
    },
    /// The DC could not be reached or answered something unreadable.
    #[error("{user}: talking to the domain controller failed: {source}")]
    Ldap {
        /// The UPN the request named.
        user: String,
        /// What went wrong.
        #[source]
        source: LdapSourceError,
    },
}

impl WritebackError {
    /// The product's result code.
    pub fn code(&self) -> WritebackCode {
        match self {
            WritebackError::NeedsTls { .. }
            | WritebackError::ServerNeedsTls { .. }
            | WritebackError::NoSuchBase { .. } => WritebackCode::DirectoryConfiguration,
            WritebackError::BadAnchor { .. }
            | WritebackError::NotFound { .. }
            | WritebackError::Gone { .. } => WritebackCode::UserNotFound,
            WritebackError::Several { .. } => WritebackCode::MultipleMatches,
            WritebackError::Protected { .. } | WritebackError::Denied { .. } => {
                WritebackCode::Permissions
            }
            WritebackError::Disabled { .. } => WritebackCode::Disabled,
            WritebackError::LockedOut { .. } => WritebackCode::LockedOut,
            WritebackError::Policy { .. } => WritebackCode::PasswordPolicy,
            WritebackError::WrongCurrentPassword { .. } => WritebackCode::WrongCurrentPassword,
            WritebackError::Refused { .. } | WritebackError::Ldap { .. } => WritebackCode::Other,
        }
    }

    /// True when trying again later (a new connection) may succeed: the DC was unreachable or busy.
    /// A caller may retry these before answering; every other refusal is final.
    pub fn is_retriable(&self) -> bool {
        match self {
            WritebackError::Ldap { source, .. } => source.is_retriable(),
            _ => false,
        }
    }

    /// The answer for the requester: the code and this error's text.
    pub fn answer(&self) -> Answer {
        self.code().answer(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_names_the_permissions_fix() {
        let e = WritebackError::Denied {
            user: "u@corp.example.test".into(),
            dn: "CN=u,DC=corp".into(),
            dns_name: "corp.example.test".into(),
            what: "the password",
            text: "insufficient access".into(),
        };
        assert_eq!(e.code().code(), 33004);
        let a = e.answer();
        assert!(
            a.message.contains(
                "cloudsync agent permissions set --type password-writeback --domain corp.example.test"
            ),
            "{}",
            a.message
        );
    }

    #[test]
    fn codes_follow_the_contract() {
        let user = || "u@corp".to_string();
        let dn = || "CN=u".to_string();
        let cases = [
            (
                WritebackError::NeedsTls {
                    dns_name: "corp".into(),
                    url: "ldap://dc".into(),
                },
                33009,
            ),
            (
                WritebackError::Protected {
                    user: user(),
                    dn: dn(),
                },
                33004,
            ),
            (
                WritebackError::Disabled {
                    user: user(),
                    dn: dn(),
                },
                33005,
            ),
            (
                WritebackError::LockedOut {
                    user: user(),
                    dn: dn(),
                },
                33006,
            ),
            (
                WritebackError::Several {
                    user: user(),
                    key: "k".into(),
                    dns: vec![dn(), dn()],
                },
                33003,
            ),
            (
                WritebackError::Refused {
                    user: user(),
                    dn: dn(),
                    rc: 80,
                    text: "x".into(),
                },
                33001,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code().code(), code, "{e}");
            assert!(!e.is_retriable());
        }
    }
}
