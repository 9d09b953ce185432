//! Password writeback, the agent's side: resets and unlocks asked for in the cloud, written into
//! Active Directory over LDAP as the service account.
//!
//! Enters: a bound service-account connection ([`crate::source::ldap::conn::DcConn`]), the domain,
//! and a request (whose: the source anchor, or the UPN; the new password as a
//! [`crate::secret::Secret`]; must-change; may-unlock). Leaves: at most one LDAP modify of the user
//! and an [`Answer`] — the real product's result code ([`WritebackCode`], 0 or 33001–33009) and a
//! message naming the user, AD's own reason and the fix; never the password.
//!
//! Files: [`codes`] (the codes and [`Answer`]; independent of `cloudsync-api`, the integrator maps
//! them to the wire type) · [`ldap`] (reset and unlock: the steps and refusals, the modify) ·
//! [`lookup`] (the user by anchor or UPN, and its state) · [`ad_answer`] (AD's diagnostic text →
//! the code; the texts Samba 4.22 sends, measured, are listed there) · [`error`] ([`WritebackError`],
//! one variant per case, each with its code).

pub mod ad_answer;
pub mod codes;
pub mod error;
pub mod ldap;
pub mod lookup;

pub use codes::{Answer, WritebackCode};
pub use error::WritebackError;
pub use ldap::{Domain, Done, ResetRequest, reset, unlock};
pub use lookup::UserRef;

/// The answer for a finished request: 0 with what was done, or the refusal's code and text.
pub fn answer(result: &Result<Done, WritebackError>) -> Answer {
    match result {
        Ok(done) => WritebackCode::Success.answer(format!("{} ({})", done.note, done.dn)),
        Err(e) => e.answer(),
    }
}
