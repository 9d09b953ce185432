//! Readers of Active Directory.
//!
//! - [`drsr`] — MS-DRSR replication for password hash sync.

pub mod drsr;
