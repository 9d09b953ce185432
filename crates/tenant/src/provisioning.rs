//! Configurations, restarts and operation batches.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use cloudsync_api::agent::PendingRestart;
use cloudsync_api::auth::Role;
use cloudsync_api::config::{
    Configuration, ConfigurationSpec, Health, RestartRequest, RestartResponse, RestartScope,
};
use cloudsync_api::ops::{BatchResponse, OperationBatch};
use cloudsync_api::{MAX_BATCH_OPERATIONS, MAX_REASON_CHARS};

use super::agent_health::effective;
use super::agents::{all_configs, parse_id};
use super::apply::{BatchContext, ThrottleCut, apply_batch_cut};
use super::auth::Principal;
use super::authorize::{Admins, AdminsOrAgents, Agents, Authorized};
use super::error::{ApiError, ApiJson};
use super::lease::fence;
use super::state::{SharedState, now_rfc3339, now_unix, now_unix_ms};
use super::store::{AgentRecord, ConfigRecord, get_json, put_json};
use super::throttle::Budget;

fn validate_spec(spec: &ConfigurationSpec) -> Result<(), ApiError> {
    if spec.domain.trim().is_empty() || !spec.domain.contains('.') {
        return Err(ApiError::BadRequest(
            "domain must be the AD domain's DNS name, e.g. corp.example.com.".into(),
        ));
    }
    Ok(())
}

fn load(state: &SharedState, id: Uuid) -> Result<ConfigRecord, ApiError> {
    get_json(&state.store.configs, "configs", id.as_bytes())?
        .ok_or_else(|| ApiError::NotFound(format!("Configuration {id} does not exist.")))
}

/// `POST /api/v1/configurations` (admins).
pub async fn create(
    State(state): State<SharedState>,
    _: Authorized<Admins>,
    ApiJson(spec): ApiJson<ConfigurationSpec>,
) -> Result<(StatusCode, Json<Configuration>), ApiError> {
    validate_spec(&spec)?;
    let _guard = state.apply_lock.lock().await;
    if all_configs(&state)?
        .iter()
        .any(|c| c.config.spec.domain.eq_ignore_ascii_case(&spec.domain))
    {
        return Err(ApiError::Conflict(format!(
            "A configuration for domain {} already exists.",
            spec.domain
        )));
    }
    let record = ConfigRecord::new(Uuid::new_v4(), spec);
    put_json(&state.store.configs, record.config.id.as_bytes(), &record)?;
    state.store.flush().await?;
    Ok((StatusCode::CREATED, Json(effective(&record))))
}

/// The domains an agent caller serves, or `None` for an admin (who sees every configuration).
fn agent_domains(
    state: &SharedState,
    principal: &Principal,
) -> Result<Option<Vec<String>>, ApiError> {
    if !principal.claims.roles.contains(&Role::Agent) {
        return Ok(None);
    }
    let agent: AgentRecord = get_json(&state.store.agents, "agents", principal.id().as_bytes())?
        .ok_or_else(|| ApiError::Forbidden("The calling agent is no longer registered.".into()))?;
    Ok(Some(agent.domains))
}

fn serves(domains: &[String], record: &ConfigRecord) -> bool {
    domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&record.config.spec.domain))
}

/// `GET /api/v1/configurations` (admins: all; agents: those of the domains they serve).
pub async fn list(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<AdminsOrAgents>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let only = agent_domains(&state, &principal)?;
    let value: Vec<Configuration> = all_configs(&state)?
        .iter()
        .filter(|r| only.as_deref().is_none_or(|d| serves(d, r)))
        .map(effective)
        .collect();
    Ok(Json(serde_json::json!({ "value": value })))
}

/// `GET /api/v1/configurations/{id}` (admins; agents only for a domain they serve, else 404 as if
/// it did not exist).
pub async fn get(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<AdminsOrAgents>,
    Path(id): Path<String>,
) -> Result<Json<Configuration>, ApiError> {
    let id = parse_id(&id)?;
    let record = load(&state, id)?;
    if let Some(domains) = agent_domains(&state, &principal)?
        && !serves(&domains, &record)
    {
        return Err(ApiError::NotFound(format!(
            "Configuration {id} does not exist."
        )));
    }
    Ok(Json(effective(&record)))
}

/// `PUT /api/v1/configurations/{id}` (admins): replaces the spec and bumps the revision.
pub async fn update(
    State(state): State<SharedState>,
    _: Authorized<Admins>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<ConfigurationSpec>,
) -> Result<Json<Configuration>, ApiError> {
    validate_spec(&spec)?;
    let id = parse_id(&id)?;
    let _guard = state.apply_lock.lock().await;
    let mut record = load(&state, id)?;
    if !record.config.spec.domain.eq_ignore_ascii_case(&spec.domain) {
        return Err(ApiError::BadRequest(
            "The domain of a configuration cannot change.".into(),
        ));
    }
    record.config.spec = spec;
    record.config.revision += 1;
    put_json(&state.store.configs, id.as_bytes(), &record)?;
    state.store.flush().await?;
    Ok(Json(effective(&record)))
}

/// Applies a restart to a record; returns the pending restart to hand to agents.
pub fn restart_record(
    record: &mut ConfigRecord,
    scopes: &[RestartScope],
    now: i64,
    window_secs: u64,
) -> PendingRestart {
    let all = scopes.contains(&RestartScope::Full);
    if all || scopes.contains(&RestartScope::Quarantine) {
        if matches!(record.config.health, Health::Quarantine { .. }) {
            record.config.health = Health::Healthy;
        }
        record.consecutive_failed_batches = 0;
    }
    if all || scopes.contains(&RestartScope::ForceDeletes) {
        if matches!(record.config.health, Health::DeleteThresholdExceeded { .. }) {
            record.config.health = Health::Healthy;
        }
        record.delete_window_count = 0;
        record.delete_window_start = now;
        record.force_deletes_until =
            now.saturating_add(i64::try_from(window_secs).unwrap_or(i64::MAX));
    }
    record.config.revision += 1;
    let pending = PendingRestart {
        id: Uuid::new_v4(),
        configuration_id: record.config.id,
        scopes: scopes.to_vec(),
    };
    record.pending_restarts.push(pending.clone());
    pending
}

/// `POST /api/v1/configurations/{id}/restart` (admins).
pub async fn restart(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Admins>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RestartRequest>,
) -> Result<(StatusCode, Json<RestartResponse>), ApiError> {
    if req.scopes.is_empty() {
        return Err(ApiError::BadRequest(
            "scopes must name at least one of Watermark, Quarantine, ForceDeletes, Full.".into(),
        ));
    }
    let id = parse_id(&id)?;
    let _guard = state.apply_lock.lock().await;
    let mut record = load(&state, id)?;
    let pending = restart_record(
        &mut record,
        &req.scopes,
        now_unix(),
        state.options.delete_window_secs,
    );
    put_json(&state.store.configs, id.as_bytes(), &record)?;
    state.store.flush().await?;
    tracing::info!(configuration = %id, scopes = ?req.scopes, by = %principal.id(), "Configuration restarted.");
    Ok((
        StatusCode::ACCEPTED,
        Json(RestartResponse {
            restart_id: pending.id,
            configuration: effective(&record),
        }),
    ))
}

/// `POST /api/v1/configurations/{id}/batches` (agents serving the configuration's domain; another
/// agent gets 404, as for a configuration that does not exist).
#[tracing::instrument(skip_all, fields(configuration = %id, batch_id = %batch.batch_id))]
pub async fn batch(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path(id): Path<String>,
    ApiJson(batch): ApiJson<OperationBatch>,
) -> Result<Json<BatchResponse>, ApiError> {
    let id = parse_id(&id)?;
    if batch.operations.len() > MAX_BATCH_OPERATIONS {
        return Err(ApiError::PayloadTooLarge(format!(
            "A batch may carry at most {MAX_BATCH_OPERATIONS} operations; this one has {}.",
            batch.operations.len()
        )));
    }
    if let Some((index, reason)) = batch
        .reasons
        .iter()
        .find(|(i, r)| **i >= batch.operations.len() || r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "reasons[{index}] must name an operation of the batch (0 to {}) and hold at most {MAX_REASON_CHARS} characters ({} given).",
            batch.operations.len().saturating_sub(1),
            reason.chars().count()
        )));
    }
    // The domain of a configuration never changes, so this check may run before taking the lock.
    let domain = load(&state, id)?.config.spec.domain;
    let agent: AgentRecord = get_json(&state.store.agents, "agents", principal.id().as_bytes())?
        .ok_or_else(|| ApiError::Forbidden("The calling agent is no longer registered.".into()))?;
    // Another domain's configuration is 404 to an agent, as the configuration's GET answers: the
    // refusal neither confirms that the id exists nor names its domain.
    if !agent
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        tracing::warn!(agent_id = %agent.id, configuration = %id, "Batch refused: the agent does not serve the configuration's domain.");
        return Err(ApiError::NotFound(format!(
            "Configuration {id} does not exist."
        )));
    }
    let _guard = state.apply_lock.lock().await;
    if let Some(mut stored) = get_json::<BatchResponse>(
        &state.store.batches,
        "batches",
        &super::store::batch_key(id, batch.batch_id),
    )? {
        stored.replayed = true;
        tracing::info!("Batch replayed; returning stored results.");
        return Ok(Json(stored));
    }
    // Reload under the lock: health and counters may have changed since the check above.
    let mut record = load(&state, id)?;
    // The fence: only the lease holder's current epoch writes (`super::lease`, rule 4).
    if let Some(message) = fence(record.lease.as_ref(), principal.id(), batch.epoch) {
        let refusals = state
            .lease_refusals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        tracing::warn!(
            agent_id = %principal.id(),
            epoch = ?batch.epoch,
            holder = ?record.lease.map(|l| l.holder),
            current_epoch = ?record.lease.map(|l| l.epoch),
            operations = batch.operations.len(),
            refusals,
            "Batch refused: LeaseLost."
        );
        return Err(ApiError::LeaseLost {
            message,
            lease: record.lease.map(|l| l.info(now_unix_ms())),
        });
    }
    // Apply what the write budget covers; the rest gets per-item `Throttled` (see `api::ops`).
    let cost = u64::try_from(batch.operations.len()).unwrap_or(u64::MAX);
    let grant = state
        .throttle
        .take_up_to(Budget::Writes, cost)
        .map_err(|retry_after| {
            // Logged so that a client's pacing can be checked from the log (tests/fault_campaign.rs
            // counts the requests between a 429 and its Retry-After).
            tracing::info!(
                operations = batch.operations.len(),
                retry_after,
                "Batch refused: the write budget is spent (429)."
            );
            ApiError::TooManyRequests { retry_after }
        })?;
    let cut = grant
        .rest_retry_after
        .map(|retry_after_seconds| ThrottleCut {
            fits: usize::try_from(grant.granted).unwrap_or(usize::MAX),
            retry_after_seconds,
        });
    let ctx = BatchContext {
        agent_id: principal.id(),
        now: now_unix(),
        now_text: now_rfc3339(),
        delete_window_secs: state.options.delete_window_secs,
        quarantine_after: state.options.quarantine_after_failed_batches,
        // Without an epoch (an agent that predates leases), the holder's current one.
        epoch: batch.epoch.or(record.lease.map(|l| l.epoch)).unwrap_or(0),
    };
    let response = apply_batch_cut(&state.store, &mut record, &batch, &ctx, cut)?;
    state.store.flush().await?;
    match cut {
        Some(cut) => tracing::info!(
            operations = batch.operations.len(),
            applied = cut.fits,
            retry_after = cut.retry_after_seconds,
            "Batch applied in part; the rest is throttled."
        ),
        None => tracing::info!(
            operations = batch.operations.len(),
            epoch = ?batch.epoch,
            agent_id = %principal.id(),
            "Batch applied."
        ),
    }
    Ok(Json(response))
}
