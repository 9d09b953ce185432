//! Fixtures shared by the integration tests. Each test crate includes this module with `mod common;`.
//!
//! - [`lab`] — a real Samba AD DC per test, cloned from a cached, seeded template on its own 127.0.0.N.
//!
//! Not every test crate uses every helper, hence `dead_code` is allowed here. Fixtures panic with a
//! clear message when the environment is missing something: a test never skips silently.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod lab;
