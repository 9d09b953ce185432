//! Provisioning log search: `GET /api/v1/provisioningLogs` (admins), newest first.
//!
//! The log is scanned backwards from the newest entry; filters are exact matches. This is linear in
//! the number of entries skipped, which is fine for an emulator.

use axum::Json;
use axum::extract::State;

use cloudsync_api::logs::{LogEntry, LogPage, LogQuery};

use super::authorize::{Admins, Authorized};
use super::error::{ApiError, ApiQuery};
use super::state::SharedState;
use super::store::{StoreError, decode};

/// Runs a query against the log.
pub fn search(state: &SharedState, q: &LogQuery) -> Result<LogPage, StoreError> {
    let top = q.top.unwrap_or(100).clamp(1, 1000);
    let end = q.before.unwrap_or(u64::MAX);
    let mut value = Vec::new();
    let mut next_before = None;
    for entry in state.store.logs.range(..end.to_be_bytes()).rev() {
        let (_, bytes) = entry?;
        let e: LogEntry = decode("logs", &bytes)?;
        let keep = q.object_id.is_none_or(|id| e.object_id == Some(id))
            && q.source_anchor
                .as_ref()
                .is_none_or(|a| *a == e.source_anchor)
            && q.batch_id.is_none_or(|b| b == e.batch_id)
            && q.agent_id.is_none_or(|a| a == e.agent_id)
            && q.result.is_none_or(|r| r == e.result);
        if !keep {
            continue;
        }
        if value.len() == top {
            next_before = value.last().map(|l: &LogEntry| l.seq);
            break;
        }
        value.push(e);
    }
    Ok(LogPage { value, next_before })
}

/// `GET /api/v1/provisioningLogs`.
pub async fn list(
    State(state): State<SharedState>,
    _: Authorized<Admins>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    Ok(Json(search(&state, &q)?))
}
