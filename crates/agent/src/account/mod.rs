//! The agent's service account in AD. Enters: what the directory serves about the account. Leaves: the
//! credentials the sources bind with.
//!
//! - [`gmsa_blob`]: a group managed service account's `msDS-ManagedPassword` value (MS-ADTS 2.2.19
//!   MSDS-MANAGEDPASSWORD_BLOB) decoded into its current and previous NT hashes and the time to the next
//!   change.

pub mod gmsa_blob;
