//! The real product's password-writeback result codes, as a type of the agent's own.
//!
//! Enters: nothing. Leaves: [`WritebackCode`] (the number with [`WritebackCode::code`], a fixed
//! description) and [`Answer`], the code plus a message for the person who asked. The numbers are
//! the ones Entra's PasswordResetService logs (33001–33009, see `docs` and the writeback contract);
//! this module does not depend on `cloudsync-api`: whoever sends an answer maps it to the wire type.

use std::fmt;

/// What became of a writeback request. The discriminants are the wire numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum WritebackCode {
    /// The change was made (or, for an unlock, nothing needed doing).
    Success = 0,
    /// Anything not listed below; the message carries AD's own text.
    Other = 33001,
    /// No user has the anchor (or UPN) the request names.
    UserNotFound = 33002,
    /// More than one object has it.
    MultipleMatches = 33003,
    /// The service account may not make the change, or the account is protected (`adminCount=1`).
    Permissions = 33004,
    /// The user's account is disabled.
    Disabled = 33005,
    /// The user's account is locked out.
    LockedOut = 33006,
    /// A password *change* named a current password that is not the user's.
    WrongCurrentPassword = 33007,
    /// AD's password policy refused the new password (length, complexity, history, minimum age).
    PasswordPolicy = 33008,
    /// The directory connection is not set up for writeback (no TLS, …).
    DirectoryConfiguration = 33009,
}

impl WritebackCode {
    /// Every code, in numeric order.
    pub const ALL: [WritebackCode; 10] = [
        WritebackCode::Success,
        WritebackCode::Other,
        WritebackCode::UserNotFound,
        WritebackCode::MultipleMatches,
        WritebackCode::Permissions,
        WritebackCode::Disabled,
        WritebackCode::LockedOut,
        WritebackCode::WrongCurrentPassword,
        WritebackCode::PasswordPolicy,
        WritebackCode::DirectoryConfiguration,
    ];

    /// The wire number: 0, or 33001..=33009.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The code for a wire number, if it is one of ours.
    pub fn from_code(code: u32) -> Option<WritebackCode> {
        WritebackCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// True only for [`WritebackCode::Success`].
    pub fn is_success(self) -> bool {
        self == WritebackCode::Success
    }

    /// A fixed one-line description, the first part of every message.
    pub fn description(self) -> &'static str {
        match self {
            WritebackCode::Success => "The change was written to Active Directory",
            WritebackCode::Other => "Active Directory refused the change",
            WritebackCode::UserNotFound => "The user was not found in Active Directory",
            WritebackCode::MultipleMatches => {
                "More than one Active Directory object matches the user"
            }
            WritebackCode::Permissions => {
                "The agent's service account is not allowed to change this user's password"
            }
            WritebackCode::Disabled => "The user's account is disabled in Active Directory",
            WritebackCode::LockedOut => "The user's account is locked out in Active Directory",
            WritebackCode::WrongCurrentPassword => "The current password given is not the user's",
            WritebackCode::PasswordPolicy => {
                "The new password does not meet the Active Directory password policy"
            }
            WritebackCode::DirectoryConfiguration => {
                "The agent's connection to Active Directory is not set up for password writeback"
            }
        }
    }

    /// An answer with this code: the description, then `detail` (the specifics: which user, AD's
    /// reason, the fix). The detail must never hold a password.
    pub fn answer(self, detail: impl fmt::Display) -> Answer {
        let detail = detail.to_string();
        let message = if detail.is_empty() {
            format!("{}.", self.description())
        } else {
            format!("{}: {detail}", self.description())
        };
        Answer {
            code: self,
            message,
        }
    }
}

impl fmt::Display for WritebackCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

/// A code and the message for the requester (and the journal): never a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What happened.
    pub code: WritebackCode,
    /// [`WritebackCode::description`] followed by the specifics.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_products() {
        let numbers: Vec<u32> = WritebackCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(
            numbers,
            [
                0, 33001, 33002, 33003, 33004, 33005, 33006, 33007, 33008, 33009
            ]
        );
        for code in WritebackCode::ALL {
            assert_eq!(WritebackCode::from_code(code.code()), Some(code));
        }
        assert_eq!(WritebackCode::from_code(33010), None);
        assert_eq!(WritebackCode::from_code(1), None);
    }

    #[test]
    fn answers_start_with_the_description() {
        let a = WritebackCode::Disabled.answer("user00001@corp.example.test");
        assert_eq!(
            a.message,
            "The user's account is disabled in Active Directory: user00001@corp.example.test"
        );
        assert_eq!(
            WritebackCode::Success.answer("").message,
            "The change was written to Active Directory."
        );
        assert!(!WritebackCode::Other.is_success());
    }
}
