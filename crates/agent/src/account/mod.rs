//! The agent's service account in AD. Enters: what the directory serves about the account. Leaves: the
//! credentials the sources bind with, and the rights the account holds.
//!
//! - [`gmsa_blob`]: a group managed service account's `msDS-ManagedPassword` value (MS-ADTS 2.2.19
//!   MSDS-MANAGEDPASSWORD_BLOB) decoded into its current and previous NT hashes and the time to the next
//!   change.
//! - [`gmsa`]: reading that value from the DC as the agent host's computer account over an encrypted
//!   connection, and which hash to present around a password change.
//! - [`provision`]: the account made by the installer as the domain administrator: this host's computer
//!   account, the gMSA and its allowed principals, or a regular account with a random password.
//! - [`kds`]: the forest's KDS root keys (what every gMSA password is derived from), listed and created
//!   over LDAP as `Add-KdsRootKey` / `samba-tool domain kds root-key create` do.
//! - [`kds_params`]: the MS-GKDI default parameter blobs a root key carries, the key interval, NT time.
//! - [`security_descriptor`]: the binary self-relative security descriptor (MS-DTYP 2.4.6), parsed,
//!   edited and written back byte-exact, with an SDDL rendering.
//! - [`permissions`]: the ACEs each feature needs (`agent permissions set|check --type …`), added
//!   idempotently to `nTSecurityDescriptor` and checked by reading it back.

pub mod gmsa;
pub mod gmsa_blob;
pub mod kds;
pub mod kds_params;
pub mod permissions;
pub mod provision;
pub mod security_descriptor;

use ldap3::SearchEntry;

/// The first value of `name` in an ldap3 entry, as bytes (ldap3 files values that are not UTF-8
/// under `bin_attrs`, the rest under `attrs`); the attribute name compared case-insensitively.
pub(crate) fn binary_value(entry: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
        .or_else(|| text_value(entry, name).map(String::into_bytes))
}

/// The first text value of `name` in an ldap3 entry.
pub(crate) fn text_value(entry: &SearchEntry, name: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}
