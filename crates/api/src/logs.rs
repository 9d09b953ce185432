//! Provisioning logs: one entry per applied or rejected operation, searchable over
//! `GET /api/v1/provisioningLogs`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ops::{OpErrorCode, OpStatus};

/// One provisioning log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Monotonic sequence number (newest is highest).
    pub seq: u64,
    /// When the operation was processed, RFC 3339.
    pub time: String,
    /// The agent that sent it.
    pub agent_id: Uuid,
    /// The configuration it was sent to.
    pub configuration_id: Uuid,
    /// The batch it came in.
    pub batch_id: Uuid,
    /// The cloud object id, when known.
    #[serde(default)]
    pub object_id: Option<Uuid>,
    /// The source anchor.
    pub source_anchor: String,
    /// The action (`upsert`, `delete`, `addMember`, `removeMember`, `setPasswordHash`).
    pub action: String,
    /// The result.
    pub result: OpStatus,
    /// The error code, when the result is an error.
    #[serde(default)]
    pub error_code: Option<OpErrorCode>,
    /// A human-readable message.
    pub message: String,
    /// Why the agent sent the operation, when it said (e.g. `ConfigurationChanged: scope, revision 7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Query parameters of `GET /api/v1/provisioningLogs`; all filters are exact matches and combine with AND.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Cloud object id.
    #[serde(default)]
    pub object_id: Option<Uuid>,
    /// Source anchor.
    #[serde(default)]
    pub source_anchor: Option<String>,
    /// Batch id.
    #[serde(default)]
    pub batch_id: Option<Uuid>,
    /// Agent id.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    /// Result.
    #[serde(default)]
    pub result: Option<OpStatus>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    pub top: Option<usize>,
    /// Return entries with `seq` below this (for paging backwards, newest first).
    #[serde(default)]
    pub before: Option<u64>,
}

/// A page of log entries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    /// The entries.
    pub value: Vec<LogEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    #[serde(default)]
    pub next_before: Option<u64>,
}
