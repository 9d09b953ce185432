//! The event journal (placeholder; the journal work replaces this).

/// The on-disk format version this build writes.
pub const FORMAT_VERSION: u32 = 1;
