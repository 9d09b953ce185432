//! Journal format migrations (placeholder; filled by the journal work).
