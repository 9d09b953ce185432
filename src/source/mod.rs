//! Readers of Active Directory.
//!
//! - [`drsr`] — MS-DRSR replication for password hash sync.
//! - [`samba_priv`] — Samba's root-only `ldap_priv` socket, the local alternative on a Samba DC.

pub mod drsr;
pub mod samba_priv;
