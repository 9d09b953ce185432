//! Agent registration, heartbeats and listing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use rand::RngCore;
use sha2::Digest;
use uuid::Uuid;

use cloudsync_api::agent::{
    AgentDomains, AgentInfo, AgentStatus, ConfigurationRef, HeartbeatRequest, HeartbeatResponse,
    HeldLease, MAX_AGENT_DOMAINS, RegistrationRequest, RegistrationResponse, valid_domain_name,
};
use cloudsync_api::auth::Role;

use super::agent_health::record_report;
use super::authorize::{Admins, AdminsOrAgents, Agents, Authorized};
use super::error::{ApiError, ApiJson};
use super::lease::{LeaseChange, grant_for, on_heartbeat};
use super::state::{SharedState, now_rfc3339, now_unix, now_unix_ms, parse_unix};
use super::store::{AgentRecord, ConfigRecord, StoreError, decode, get_json, put_json};

/// `POST /api/v1/agents` (Global or Hybrid Identity Administrator).
pub async fn register(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Admins>,
    ApiJson(req): ApiJson<RegistrationRequest>,
) -> Result<(StatusCode, Json<RegistrationResponse>), ApiError> {
    if req.host_name.trim().is_empty() {
        return Err(ApiError::BadRequest("hostName must not be empty.".into()));
    }
    check_domains(&req.domains)?;
    if req.environment != state.identity.environment {
        return Err(ApiError::BadRequest(format!(
            "The agent was installed for {} but this tenant is in {}.",
            req.environment, state.identity.environment
        )));
    }
    let mut secret_bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut secret_bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let agent = AgentRecord {
        id: Uuid::new_v4(),
        host_name: req.host_name,
        version: req.version,
        environment: req.environment,
        domains: req.domains,
        client_id: Uuid::new_v4().to_string(),
        secret_sha256: hex::encode(sha2::Sha256::digest(secret.as_bytes())),
        last_seen: now_rfc3339(),
        writeback_public_key: None,
        binary_sha256: None,
    };
    put_json(&state.store.agents, agent.id.as_bytes(), &agent)?;
    state
        .store
        .clients
        .insert(agent.client_id.as_bytes(), agent.id.as_bytes().as_slice())
        .map_err(StoreError::from)?;
    state.store.flush().await?;
    tracing::info!(agent_id = %agent.id, host = %agent.host_name, registered_by = %principal.id(), "Agent registered.");
    Ok((
        StatusCode::CREATED,
        Json(RegistrationResponse {
            agent_id: agent.id,
            tenant_id: state.identity.tenant_id,
            client_id: agent.client_id,
            client_secret: secret,
            token_endpoint: format!("/{}/oauth2/v2.0/token", state.identity.tenant_id),
        }),
    ))
}

/// `POST /api/v1/agents/{id}/heartbeat` (the agent itself).
pub async fn heartbeat(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Agents>,
    Path(agent_id): Path<String>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let agent_id = parse_id(&agent_id)?;
    if principal.id() != agent_id {
        return Err(ApiError::Forbidden(
            "An agent may only send heartbeats for itself.".into(),
        ));
    }
    let _guard = state.apply_lock.lock().await;
    let mut agent: AgentRecord = get_json(&state.store.agents, "agents", agent_id.as_bytes())?
        .ok_or_else(|| ApiError::NotFound(format!("Agent {agent_id} is not registered.")))?;
    agent.version = req.version;
    agent.last_seen = now_rfc3339();
    if req.binary_sha256.is_some() {
        agent.binary_sha256 = req.binary_sha256.clone();
    }
    state
        .upgrade_slot
        .on_heartbeat(agent.id, req.binary_sha256.as_deref());
    put_json(&state.store.agents, agent.id.as_bytes(), &agent)?;
    let now_ms = now_unix_ms();
    let lease_ms = state.options.lease_ms();
    let mut records = all_configs(&state)?;
    let mut spread = Spread::new(&state, &records, agent.id, now_ms, lease_ms)?;
    let mut configurations = Vec::new();
    let mut pending_restarts = Vec::new();
    let mut leases = Vec::new();
    for record in &mut records {
        if !agent
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&record.config.spec.domain))
        {
            continue;
        }
        let before = record.pending_restarts.len();
        record
            .pending_restarts
            .retain(|r| !req.acknowledged_restarts.contains(&r.id));
        let report = req
            .configurations
            .iter()
            .find(|c| c.configuration_id == record.config.id);
        let reported = record_report(record, agent.id, report, &agent.last_seen);
        let fewer = spread.fewer_elsewhere(&record.config.spec.domain);
        let change = on_heartbeat(&mut record.lease, agent.id, now_ms, lease_ms, fewer);
        if let LeaseChange::Granted { previous } = change {
            spread.granted();
            let epoch = record.lease.map_or(0, |l| l.epoch);
            tracing::info!(configuration = %record.config.id, agent_id = %agent.id, epoch, previous = ?previous, "Lease granted.");
        }
        // Every heartbeat of the holder renews: the record is written each time (a few hundred
        // bytes per configuration per heartbeat).
        if record.pending_restarts.len() != before || reported || change != LeaseChange::Standby {
            put_json(&state.store.configs, record.config.id.as_bytes(), &*record)?;
        }
        configurations.push(ConfigurationRef {
            id: record.config.id,
            revision: record.config.revision,
        });
        leases.push(grant_for(
            record.config.id,
            record.lease.as_ref(),
            agent.id,
            now_ms,
        ));
        pending_restarts.extend(record.pending_restarts.iter().cloned());
    }
    // The epoch is durable before the agent learns it.
    state.store.flush().await?;
    Ok(Json(HeartbeatResponse {
        server_time: now_rfc3339(),
        heartbeat_interval_seconds: state.options.heartbeat_interval_secs,
        configurations,
        pending_restarts,
        leases,
    }))
}

/// Rule 3 of [`super::lease`]: how many live leases each Active agent holds, to leave a free
/// configuration to a paired agent that holds fewer than the caller.
struct Spread {
    caller: Uuid,
    held: std::collections::HashMap<Uuid, usize>,
    /// Other Active agents (a heartbeat within one lease length) and their domains.
    peers: Vec<(Uuid, Vec<String>)>,
}

impl Spread {
    fn new(
        state: &SharedState,
        records: &[ConfigRecord],
        caller: Uuid,
        now_ms: i64,
        lease_ms: u64,
    ) -> Result<Spread, StoreError> {
        let mut held = std::collections::HashMap::new();
        for l in records.iter().filter_map(|r| r.lease) {
            if l.live(now_ms) {
                *held.entry(l.holder).or_insert(0) += 1;
            }
        }
        let active_after =
            now_ms.div_euclid(1000) - i64::try_from(lease_ms / 1000).unwrap_or(i64::MAX);
        let mut peers = Vec::new();
        for entry in state.store.agents.iter() {
            let (_, bytes) = entry?;
            let a: AgentRecord = decode("agents", &bytes)?;
            if a.id != caller && parse_unix(&a.last_seen) > active_after {
                peers.push((a.id, a.domains));
            }
        }
        Ok(Spread {
            caller,
            held,
            peers,
        })
    }

    fn fewer_elsewhere(&self, domain: &str) -> bool {
        let mine = self.held.get(&self.caller).copied().unwrap_or(0);
        self.peers.iter().any(|(id, domains)| {
            domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
                && self.held.get(id).copied().unwrap_or(0) < mine
        })
    }

    fn granted(&mut self) {
        *self.held.entry(self.caller).or_insert(0) += 1;
    }
}

/// `DELETE /api/v1/agents/{id}` (Global or Hybrid Identity Administrator): the uninstaller removes
/// the agent's registration. Its client id can no longer get a token and its heartbeats answer 404;
/// its configurations stay, as in the portal when an agent is removed. 404 when no such agent.
pub async fn delete(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Admins>,
    Path(agent_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let agent_id = parse_id(&agent_id)?;
    let _guard = state.apply_lock.lock().await;
    let agent: AgentRecord = get_json(&state.store.agents, "agents", agent_id.as_bytes())?
        .ok_or_else(|| ApiError::NotFound(format!("Agent {agent_id} is not registered.")))?;
    state
        .store
        .clients
        .remove(agent.client_id.as_bytes())
        .map_err(StoreError::from)?;
    state
        .store
        .agents
        .remove(agent.id.as_bytes())
        .map_err(StoreError::from)?;
    state.store.flush().await?;
    tracing::info!(agent_id = %agent.id, host = %agent.host_name, removed_by = %principal.id(), "Agent registration removed.");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks an agent's domain list (registration and updates).
fn check_domains(domains: &[String]) -> Result<(), ApiError> {
    if domains.len() > MAX_AGENT_DOMAINS {
        return Err(ApiError::BadRequest(format!(
            "An agent serves at most {MAX_AGENT_DOMAINS} domains; {} were given.",
            domains.len()
        )));
    }
    if let Some(bad) = domains.iter().find(|d| !valid_domain_name(d)) {
        return Err(ApiError::BadRequest(format!(
            "{bad:?} is not a domain's DNS name (1 to 253 letters, digits, '-' and '.')."
        )));
    }
    Ok(())
}

/// `PUT /api/v1/agents/{id}/domains` (Global or Hybrid Identity Administrator): replaces the domains
/// an installed agent serves (an install that adds a domain keeps the registration). Its next
/// heartbeat pairs it with the configurations of the new list. Answers the agent as listed.
pub async fn set_domains(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<Admins>,
    Path(agent_id): Path<String>,
    ApiJson(req): ApiJson<AgentDomains>,
) -> Result<Json<AgentInfo>, ApiError> {
    let agent_id = parse_id(&agent_id)?;
    check_domains(&req.domains)?;
    {
        let _guard = state.apply_lock.lock().await;
        let mut agent: AgentRecord = get_json(&state.store.agents, "agents", agent_id.as_bytes())?
            .ok_or_else(|| ApiError::NotFound(format!("Agent {agent_id} is not registered.")))?;
        let mut domains: Vec<String> = Vec::new();
        for d in req.domains {
            if !domains.iter().any(|k| k.eq_ignore_ascii_case(&d)) {
                domains.push(d);
            }
        }
        agent.domains = domains;
        put_json(&state.store.agents, agent.id.as_bytes(), &agent)?;
        state.store.flush().await?;
        tracing::info!(agent_id = %agent.id, domains = ?agent.domains, changed_by = %principal.id(), "Agent's domains replaced.");
    }
    agent_infos(&state)?
        .into_iter()
        .find(|a| a.id == agent_id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("Agent {agent_id} is not registered.")))
}

/// `GET /api/v1/agents` (admins).
pub async fn list(
    State(state): State<SharedState>,
    _: Authorized<Admins>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(serde_json::json!({ "value": agent_infos(&state)? })))
}

/// `GET /api/v1/agents/{id}` (the agent itself, or admins): one agent as the portal shows it. Another
/// agent gets 404, as if the id did not exist, so agents cannot learn each other's ids or hosts.
pub async fn get_one(
    State(state): State<SharedState>,
    Authorized { principal, .. }: Authorized<AdminsOrAgents>,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentInfo>, ApiError> {
    let agent_id = parse_id(&agent_id)?;
    let not_found = || ApiError::NotFound(format!("Agent {agent_id} is not registered."));
    if principal.claims.roles.contains(&Role::Agent) && principal.id() != agent_id {
        return Err(not_found());
    }
    agent_infos(&state)?
        .into_iter()
        .find(|a| a.id == agent_id)
        .map(Json)
        .ok_or_else(not_found)
}

/// Every agent with its derived status.
pub fn agent_infos(state: &SharedState) -> Result<Vec<AgentInfo>, StoreError> {
    let now = now_unix();
    let inactive_after = i64::try_from(state.options.agent_inactive_after_secs).unwrap_or(i64::MAX);
    let now_ms = now_unix_ms();
    let configs = all_configs(state)?;
    let mut out = Vec::new();
    for entry in state.store.agents.iter() {
        let (_, bytes) = entry?;
        let a: AgentRecord = decode("agents", &bytes)?;
        let status = if now.saturating_sub(parse_unix(&a.last_seen)) >= inactive_after {
            AgentStatus::Inactive
        } else {
            AgentStatus::Active
        };
        out.push(AgentInfo {
            id: a.id,
            host_name: a.host_name,
            version: a.version,
            environment: a.environment,
            domains: a.domains,
            status,
            last_seen: a.last_seen,
            binary_sha256: a.binary_sha256,
            leases: configs
                .iter()
                .filter_map(|c| {
                    let l = c.lease.filter(|l| l.holder == a.id)?;
                    Some(HeldLease {
                        configuration_id: c.config.id,
                        domain: c.config.spec.domain.clone(),
                        lease: l.info(now_ms),
                    })
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Every configuration record.
pub fn all_configs(state: &SharedState) -> Result<Vec<ConfigRecord>, StoreError> {
    state
        .store
        .configs
        .iter()
        .map(|entry| {
            entry
                .map_err(StoreError::from)
                .and_then(|(_, v)| decode("configs", &v))
        })
        .collect()
}

/// Parses a GUID path segment (400 when it is not one).
pub fn parse_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::BadRequest(format!("'{s}' is not a valid GUID.")))
}
