//! Reading AD's refusal of a password write: the Win32 code at the head of the diagnostic text and,
//! for a password-policy refusal, the reason in words.
//!
//! Enters: an LDAP result code and AD's diagnostic text. Leaves: a [`Refusal`] (which result code it
//! stands for) and a [`PolicyReason`]. Pure functions: the texts are untrusted network input, so
//! nothing here indexes blindly or panics.
//!
//! What the DCs say, both forms lead with the Win32 error as 8 hex digits:
//! - Windows: `0000052D: SvcErr: DSID-03190F80, problem 5003 (WILL_NOT_PERFORM), data 0` (rc 53) or
//!   `0000052D: AtrErr: DSID-03191083, #1: …` (rc 19). 0x52D is ERROR_PASSWORD_RESTRICTION and names
//!   no reason: Windows does not say which rule failed.
//! - Samba 4.22 (measured on the lab DC, all rc 19 constraintViolation, as the service account
//!   resetting, or the user changing its own password):
//!   - `0000052D: Constraint violation - check_password_restrictions: the password is too short. It
//!     should be equal to or longer than 7 characters!`
//!   - `0000052D: Constraint violation - check_password_restrictions: the password does not meet the
//!     complexity criteria!`
//!   - `0000052D: Constraint violation - check_password_restrictions: the password was already used
//!     (in history)!` — only on a *change*: a reset ignores history (and minimum age) on Samba, as on
//!     Windows without the policy-hints control, which Samba 4.22 does not implement (rc 12
//!     unavailableCriticalExtension when sent critical).
//!   - `0000052D: Constraint violation - check_password_restrictions: password is too young to change!`
//!     — change only, as above.
//!   - `00000056: Constraint violation - check_password_restrictions: The old password specified
//!     doesn't match!` — a change with the wrong current password (0x56 ERROR_INVALID_PASSWORD).
//!   - rc 53 `0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0\nPassword
//!     modification over LDAP must be over an encrypted connection` — a write over plain `ldap://`.
//!   - rc 50 `error in module acl: insufficient access rights during LDB_MODIFY (50)` — `unicodePwd`
//!     without Reset Password; rc 50 `00002098: Object CN=…,DC=test has no write property access` —
//!     `lockoutTime` or `pwdLastSet` without write property.

use std::fmt;

/// ERROR_INVALID_PASSWORD: a change named the wrong current password.
pub const ERROR_INVALID_PASSWORD: u32 = 0x56;
/// ERROR_PASSWORD_RESTRICTION: the password policy refused the password.
pub const ERROR_PASSWORD_RESTRICTION: u32 = 0x52D;
/// ERROR_GEN_FAILURE: what Samba and Windows lead with when a password is written without TLS.
pub const ERROR_GEN_FAILURE: u32 = 0x1F;
/// ERROR_ACCOUNT_DISABLED.
pub const ERROR_ACCOUNT_DISABLED: u32 = 0x533;
/// ERROR_ACCOUNT_LOCKED_OUT.
pub const ERROR_ACCOUNT_LOCKED_OUT: u32 = 0x775;

/// LDAP noSuchObject.
const NO_SUCH_OBJECT: u32 = 32;
/// LDAP constraintViolation.
const CONSTRAINT_VIOLATION: u32 = 19;
/// LDAP insufficientAccessRights.
const INSUFFICIENT_ACCESS: u32 = 50;
/// LDAP unwillingToPerform.
const UNWILLING_TO_PERFORM: u32 = 53;

/// The Win32 error AD puts first in its diagnostic text (`0000052D: …`), if any.
pub fn win32_code(text: &str) -> Option<u32> {
    let head = text.trim_start().get(..9)?;
    let (hex, colon) = head.split_at(8);
    if colon != ":" || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Which password rule AD named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyReason {
    /// Shorter than the minimum length (the minimum, when AD said it).
    TooShort {
        /// `minPwdLength`, from Samba's text.
        minimum: Option<u32>,
    },
    /// The complexity rule (three of upper, lower, digit, symbol; not the account's name).
    Complexity,
    /// One of the last `pwdHistoryLength` passwords.
    History,
    /// Changed again before `minPwdAge` passed.
    MinimumAge,
    /// A reason in Samba's words that is none of the above.
    Stated(String),
    /// AD gave no reason (Windows: ERROR_PASSWORD_RESTRICTION only).
    Unstated,
}

impl PolicyReason {
    /// The reason in Samba's `check_password_restrictions:` text, or [`PolicyReason::Unstated`].
    pub fn from_diagnostic(text: &str) -> PolicyReason {
        const MARK: &str = "check_password_restrictions:";
        let Some(at) = text.find(MARK) else {
            return PolicyReason::Unstated;
        };
        let said = text
            .get(at + MARK.len()..)
            .unwrap_or_default()
            .trim()
            .trim_end_matches(['!', '\0'])
            .trim();
        let lower = said.to_ascii_lowercase();
        if lower.contains("too short") {
            let minimum = lower
                .split("longer than")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            PolicyReason::TooShort { minimum }
        } else if lower.contains("complexity") {
            PolicyReason::Complexity
        } else if lower.contains("history") {
            PolicyReason::History
        } else if lower.contains("too young") {
            PolicyReason::MinimumAge
        } else if said.is_empty() {
            PolicyReason::Unstated
        } else {
            PolicyReason::Stated(said.chars().take(200).collect())
        }
    }
}

impl fmt::Display for PolicyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyReason::TooShort { minimum: Some(n) } => {
                write!(f, "the password is too short (at least {n} characters)")
            }
            PolicyReason::TooShort { minimum: None } => f.write_str("the password is too short"),
            PolicyReason::Complexity => f.write_str(
                "the password does not meet the complexity rule (three of: upper case, lower case, \
                 digit, symbol; not containing the account name)",
            ),
            PolicyReason::History => f.write_str("the password was used recently (history)"),
            PolicyReason::MinimumAge => {
                f.write_str("the password was changed too recently (minimum password age)")
            }
            PolicyReason::Stated(said) => f.write_str(said),
            PolicyReason::Unstated => f.write_str(
                "AD did not say which rule (length, complexity, history or minimum age) failed",
            ),
        }
    }
}

/// What a refused modify stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The service account lacks a right (33004).
    Denied,
    /// The password policy (33008).
    Policy(PolicyReason),
    /// A change's current password is wrong (33007).
    WrongCurrentPassword,
    /// The password went over a connection without TLS (33009).
    NeedsTls,
    /// The object is gone (moved or deleted since it was found) (33002).
    Gone,
    /// The account is locked out (33006).
    LockedOut,
    /// The account is disabled (33005).
    Disabled,
    /// Anything else (33001).
    Other,
}

impl Refusal {
    /// Classifies AD's answer `rc`/`text` to a modify that wrote `unicodePwd` when `wrote_password`.
    pub fn classify(rc: u32, text: &str, wrote_password: bool) -> Refusal {
        let win32 = win32_code(text);
        match (rc, win32) {
            (INSUFFICIENT_ACCESS, _) => Refusal::Denied,
            (NO_SUCH_OBJECT, _) => Refusal::Gone,
            (_, Some(ERROR_ACCOUNT_LOCKED_OUT)) => Refusal::LockedOut,
            (_, Some(ERROR_ACCOUNT_DISABLED)) => Refusal::Disabled,
            (CONSTRAINT_VIOLATION | UNWILLING_TO_PERFORM, Some(ERROR_INVALID_PASSWORD)) => {
                Refusal::WrongCurrentPassword
            }
            (CONSTRAINT_VIOLATION | UNWILLING_TO_PERFORM, Some(ERROR_PASSWORD_RESTRICTION)) => {
                Refusal::Policy(PolicyReason::from_diagnostic(text))
            }
            (UNWILLING_TO_PERFORM, _) if text.contains("encrypted connection") => Refusal::NeedsTls,
            (CONSTRAINT_VIOLATION | UNWILLING_TO_PERFORM, _) if wrote_password => {
                Refusal::Policy(PolicyReason::from_diagnostic(text))
            }
            _ => Refusal::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMBA_SHORT: &str = "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal to or longer than 7 characters!";
    const SAMBA_COMPLEX: &str = "0000052D: Constraint violation - check_password_restrictions: the password does not meet the complexity criteria!";
    const SAMBA_HISTORY: &str = "0000052D: Constraint violation - check_password_restrictions: the password was already used (in history)!";
    const SAMBA_AGE: &str = "0000052D: Constraint violation - check_password_restrictions: password is too young to change!";
    const SAMBA_OLD: &str = "00000056: Constraint violation - check_password_restrictions: The old password specified doesn't match!";
    const SAMBA_PLAIN: &str = "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0\nPassword modification over LDAP must be over an encrypted connection";
    const WINDOWS_POLICY: &str =
        "0000052D: SvcErr: DSID-03190F80, problem 5003 (WILL_NOT_PERFORM), data 0\n";

    #[test]
    fn win32_code_is_the_leading_hex() {
        assert_eq!(win32_code(SAMBA_SHORT), Some(0x52D));
        assert_eq!(win32_code(WINDOWS_POLICY), Some(ERROR_PASSWORD_RESTRICTION));
        assert_eq!(win32_code(SAMBA_OLD), Some(ERROR_INVALID_PASSWORD));
        assert_eq!(win32_code("error in module acl: insufficient"), None);
        assert_eq!(win32_code("0000052"), None);
        assert_eq!(win32_code("0000052DX"), None);
        assert_eq!(win32_code("é0000052D:"), None);
        assert_eq!(win32_code(""), None);
    }

    #[test]
    fn samba_reasons_are_named() {
        assert_eq!(
            PolicyReason::from_diagnostic(SAMBA_SHORT),
            PolicyReason::TooShort { minimum: Some(7) }
        );
        assert_eq!(
            PolicyReason::from_diagnostic(SAMBA_COMPLEX),
            PolicyReason::Complexity
        );
        assert_eq!(
            PolicyReason::from_diagnostic(SAMBA_HISTORY),
            PolicyReason::History
        );
        assert_eq!(
            PolicyReason::from_diagnostic(SAMBA_AGE),
            PolicyReason::MinimumAge
        );
        assert_eq!(
            PolicyReason::from_diagnostic(WINDOWS_POLICY),
            PolicyReason::Unstated
        );
        assert_eq!(
            PolicyReason::from_diagnostic("check_password_restrictions: the password is too long!"),
            PolicyReason::Stated("the password is too long".into())
        );
        assert_eq!(
            PolicyReason::TooShort { minimum: Some(7) }.to_string(),
            "the password is too short (at least 7 characters)"
        );
    }

    #[test]
    fn refusals_map_as_the_product_does() {
        assert_eq!(
            Refusal::classify(19, SAMBA_SHORT, true),
            Refusal::Policy(PolicyReason::TooShort { minimum: Some(7) })
        );
        assert_eq!(
            Refusal::classify(53, WINDOWS_POLICY, true),
            Refusal::Policy(PolicyReason::Unstated)
        );
        assert_eq!(
            Refusal::classify(19, SAMBA_OLD, true),
            Refusal::WrongCurrentPassword
        );
        assert_eq!(Refusal::classify(53, SAMBA_PLAIN, true), Refusal::NeedsTls);
        assert_eq!(
            Refusal::classify(50, "error in module acl: insufficient access rights", true),
            Refusal::Denied
        );
        assert_eq!(Refusal::classify(32, "", true), Refusal::Gone);
        assert_eq!(Refusal::classify(19, "odd", false), Refusal::Other);
        assert_eq!(
            Refusal::classify(19, "odd", true),
            Refusal::Policy(PolicyReason::Unstated)
        );
        assert_eq!(
            Refusal::classify(80, "00000057: pwdLastSet must be 0 or -1 only!", true),
            Refusal::Other
        );
    }
}
