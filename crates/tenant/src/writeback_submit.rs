//! A reset or unlock asked of the tenant, turned into a queued writeback request.
//!
//! Enters: the user (by id or UPN), the kind, a new password for a reset, and who asked — from the
//! Graph routes ([`super::writeback_graph`]) and self-service ([`super::sspr`]). Leaves: a request in
//! [`super::writeback_queue`], the password sealed to each eligible agent's key and the cleartext
//! wiped; then the agent's answer, or [`WritebackError::Timeout`] after the bounded wait
//! ([`super::state::TenantOptions::writeback_wait`]).
//!
//! Refused, with nothing queued, when the user is not a synced user, password writeback is off
//! for the user's configuration, an unlock is asked and `allowUnlock` is off, or no agent paired
//! with the configuration is Active with a registered writeback key.
//!
//! The cleartext password: bodies carrying one are read by [`SecretJson`], which wipes the body
//! buffer it owns after parsing, and parsed into types that wipe themselves on drop
//! ([`zeroize::ZeroizeOnDrop`]) and never print; it is sealed here and dropped. Buffers of the HTTP
//! stack and of the JSON parser (escaped strings) are outside the tenant's reach. It is never
//! logged, stored or answered.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;
use zeroize::Zeroize;

use cloudsync_api::agent::AgentStatus;
use cloudsync_api::writeback::{WritebackAnswer, WritebackKind, WritebackRequest};

use super::error::ApiError;
use super::state::{SharedState, rfc3339};
use super::store::{AgentRecord, ConfigRecord, StoreError, StoredObject, decode, get_json};
use super::writeback_queue::NewEntry;

/// The longest new password accepted, in characters (AD's own limit is 256).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Why a writeback was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    /// No such user. 404.
    #[error("User '{0}' does not exist.")]
    UserNotFound(String),
    /// A cloud-only user: writeback applies to users synced from on-premises. 400.
    #[error(
        "User '{0}' is not synced from on-premises Active Directory; password writeback applies only to synced users."
    )]
    NotSynced(String),
    /// Password writeback is off for the user's configuration. 403.
    #[error(
        "Password writeback is disabled for the configuration of domain {0}; an administrator turns it on in the portal or with `cloudsync agent writeback enable`."
    )]
    WritebackOff(String),
    /// Unlock without reset is off for the user's configuration. 403.
    #[error(
        "Unlocking accounts without resetting the password is not allowed for the configuration of domain {0} (allowUnlock is off)."
    )]
    UnlockOff(String),
    /// No Active agent with a writeback key serves the configuration. 503.
    #[error(
        "No provisioning agent with password writeback is active for domain {0}; nothing was sent. Check the agent (cloudsync agent status)."
    )]
    NoAgent(String),
    /// The new password is empty or too long. 400.
    #[error("{0}")]
    BadPassword(String),
    /// The queue is full. 503.
    #[error("Too many password writeback requests are waiting; retry later.")]
    QueueFull,
    /// No answer within the bounded wait. 504.
    #[error(
        "The on-premises agent did not answer within {0} s; the request was withdrawn and will not be applied."
    )]
    Timeout(u64),
    /// The agent refused (its code and message). 400.
    #[error("{}", .0.message)]
    Agent(WritebackAnswer),
    /// The state store failed. 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing failed (never expected). 500.
    #[error("Sealing the password failed.")]
    Sealing,
}

impl WritebackError {
    /// The HTTP status.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        match self {
            WritebackError::UserNotFound(_) => S::NOT_FOUND,
            WritebackError::NotSynced(_)
            | WritebackError::BadPassword(_)
            | WritebackError::Agent(_) => S::BAD_REQUEST,
            WritebackError::WritebackOff(_) | WritebackError::UnlockOff(_) => S::FORBIDDEN,
            WritebackError::NoAgent(_) | WritebackError::QueueFull => S::SERVICE_UNAVAILABLE,
            WritebackError::Timeout(_) => S::GATEWAY_TIMEOUT,
            WritebackError::Store(_) | WritebackError::Sealing => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            WritebackError::UserNotFound(_) => "Request_ResourceNotFound",
            WritebackError::NotSynced(_) => "UserNotSynced",
            WritebackError::WritebackOff(_) => "PasswordWritebackDisabled",
            WritebackError::UnlockOff(_) => "UnlockDisabled",
            WritebackError::NoAgent(_) => "OnPremisesAgentUnavailable",
            WritebackError::BadPassword(_) => "invalidPassword",
            WritebackError::QueueFull => "TooManyRequests",
            WritebackError::Timeout(_) => "OnPremisesAgentTimeout",
            WritebackError::Agent(_) => "PasswordWritebackFailed",
            WritebackError::Store(_) | WritebackError::Sealing => "InternalServerError",
        }
    }

    /// The agent's result code, for an agent's refusal.
    pub fn writeback_code(&self) -> Option<u32> {
        match self {
            WritebackError::Agent(a) => Some(a.code),
            _ => None,
        }
    }
}

/// A new password: wiped on drop, never printed.
#[derive(Clone, Default, zeroize::Zeroize, zeroize::ZeroizeOnDrop, serde::Deserialize)]
#[serde(transparent)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

impl NewPassword {
    /// Checks the length (1 to [`MAX_PASSWORD_CHARS`] characters).
    pub fn check(&self) -> Result<(), WritebackError> {
        let chars = self.0.chars().count();
        if chars == 0 || chars > MAX_PASSWORD_CHARS {
            return Err(WritebackError::BadPassword(format!(
                "The new password must have 1 to {MAX_PASSWORD_CHARS} characters."
            )));
        }
        Ok(())
    }
}

/// A JSON body that holds a secret: the body buffer is wiped after parsing when the tenant holds
/// the only reference to it, and a parse error never echoes the body (serde's messages can quote
/// a value). 413 over the body limit, 400 otherwise.
#[derive(Debug)]
pub struct SecretJson<T>(pub T);

impl<S, T> FromRequest<S> for SecretJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "The request body exceeds {} bytes.",
                    cloudsync_api::MAX_BODY_BYTES
                ))
            } else {
                ApiError::BadRequest("The request body could not be read.".into())
            }
        })?;
        let parsed = serde_json::from_slice::<T>(&bytes);
        if let Ok(mut owned) = bytes.try_into_mut() {
            owned.as_mut().zeroize();
        }
        parsed.map(SecretJson).map_err(|e| {
            // Only serde's messages about field names are repeated; others may quote a value.
            let text = e.to_string();
            if text.starts_with("unknown field") || text.starts_with("missing field") {
                ApiError::BadRequest(format!("Malformed JSON body: {text}"))
            } else {
                ApiError::BadRequest(format!(
                    "Malformed JSON body ({:?} error at line {}, column {}); see docs/openapi.yaml for the shape.",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            }
        })
    }
}

/// A user found for a writeback, with the configuration that owns it.
#[derive(Debug)]
pub struct Target {
    /// The synced user.
    pub user: StoredObject,
    /// Its configuration.
    pub config: ConfigRecord,
    /// Agents that may carry it out, with their keys.
    pub agents: Vec<(Uuid, crypto_box::PublicKey)>,
}

/// Finds a synced user by object id or UPN; a seeded (cloud-only) user is [`WritebackError::NotSynced`].
pub fn find_user(state: &SharedState, key: &str) -> Result<StoredObject, WritebackError> {
    let id = match Uuid::parse_str(key) {
        Ok(id) => Some(id.as_bytes().to_vec()),
        Err(_) => state
            .store
            .upns
            .get(key.to_lowercase().as_bytes())
            .map_err(StoreError::from)?
            .map(|v| v.to_vec()),
    };
    let found = match id {
        Some(id) => get_json::<StoredObject>(&state.store.objects, "objects", &id)?,
        None => None,
    };
    match found {
        Some(o) if o.kind == cloudsync_api::ops::ObjectKind::User && !o.deleted => Ok(o),
        _ if state.identity.users.iter().any(|u| {
            u.user_principal_name.eq_ignore_ascii_case(key) || u.id.to_string() == key
        }) =>
        {
            Err(WritebackError::NotSynced(key.to_owned()))
        }
        _ => Err(WritebackError::UserNotFound(key.to_owned())),
    }
}

/// The agents paired with `domain` that are Active and have registered a writeback key.
pub fn ready_agents(
    state: &SharedState,
    domain: &str,
) -> Result<Vec<(Uuid, crypto_box::PublicKey)>, StoreError> {
    let active: Vec<Uuid> = super::agents::agent_infos(state)?
        .into_iter()
        .filter(|a| a.status == AgentStatus::Active)
        .map(|a| a.id)
        .collect();
    let mut out = Vec::new();
    for entry in state.store.agents.iter() {
        let (_, bytes) = entry?;
        let agent: AgentRecord = decode("agents", &bytes)?;
        if !active.contains(&agent.id)
            || !agent.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
        {
            continue;
        }
        if let Some(key) = agent.writeback_public_key.as_deref().and_then(parse_key) {
            out.push((agent.id, key));
        }
    }
    Ok(out)
}

/// A public key from standard base64 of 32 bytes (not all zero).
pub fn parse_key(text: &str) -> Option<crypto_box::PublicKey> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    let array: [u8; crypto_box::KEY_SIZE] = bytes.try_into().ok()?;
    (array != [0u8; crypto_box::KEY_SIZE]).then(|| crypto_box::PublicKey::from(array))
}

/// Checks that `user` may have `kind` written back now; nothing is queued.
pub fn target(
    state: &SharedState,
    user: StoredObject,
    kind: WritebackKind,
) -> Result<Target, WritebackError> {
    let config: ConfigRecord = get_json(
        &state.store.configs,
        "configs",
        user.configuration_id.as_bytes(),
    )?
    .ok_or_else(|| WritebackError::NotSynced(user.upn().unwrap_or_default().to_owned()))?;
    let domain = config.config.spec.domain.clone();
    if !config.config.spec.password_writeback {
        return Err(WritebackError::WritebackOff(domain));
    }
    if kind == WritebackKind::Unlock && !config.config.spec.allow_unlock {
        return Err(WritebackError::UnlockOff(domain));
    }
    let agents = ready_agents(state, &domain)?;
    if agents.is_empty() {
        return Err(WritebackError::NoAgent(domain));
    }
    Ok(Target {
        user,
        config,
        agents,
    })
}

/// A queued request: its id and where its answer arrives.
#[derive(Debug)]
pub struct Queued {
    /// The request id (also Graph's operation id).
    pub id: Uuid,
    /// The answer, once an agent gives it.
    pub answer: watch::Receiver<Option<WritebackAnswer>>,
    /// When the caller stops waiting.
    pub deadline: Instant,
}

/// Seals `password` (a reset) to every eligible agent, wipes it, and queues the request.
pub fn submit(
    state: &SharedState,
    target: Target,
    kind: WritebackKind,
    password: Option<NewPassword>,
    force_change_at_next_sign_in: bool,
    requested_by: String,
) -> Result<Queued, WritebackError> {
    let mut sealed = Vec::with_capacity(target.agents.len());
    for (agent, key) in &target.agents {
        let boxed = match &password {
            Some(p) => Some(
                STANDARD.encode(
                    key.seal(&mut crypto_box::aead::OsRng, p.0.as_bytes())
                        .map_err(|_| WritebackError::Sealing)?,
                ),
            ),
            None => None,
        };
        sealed.push((*agent, boxed));
    }
    drop(password);
    let wait = state.options.writeback_wait;
    let now = Instant::now();
    let id = Uuid::new_v4();
    let upn = target.user.upn().unwrap_or_default().to_owned();
    let request = WritebackRequest {
        id,
        configuration_id: target.config.config.id,
        kind,
        source_anchor: target.user.source_anchor.clone(),
        user_principal_name: upn.clone(),
        sealed_password: None,
        force_change_at_next_sign_in,
        expires_at: rfc3339(time::OffsetDateTime::now_utc() + wait),
        requested_by: requested_by.clone(),
    };
    let answer = state
        .writeback
        .enqueue(
            NewEntry {
                request,
                sealed,
                user_id: target.user.id,
                expires: now + wait,
                created_at: super::state::now_rfc3339(),
            },
            now,
        )
        .map_err(|_| WritebackError::QueueFull)?;
    tracing::info!(
        request_id = %id,
        configuration = %target.config.config.id,
        kind = ?kind,
        upn = %upn,
        requested_by = %requested_by,
        agents = target.agents.len(),
        "Password writeback request queued."
    );
    Ok(Queued {
        id,
        answer,
        deadline: now + wait,
    })
}

/// Waits for the agent's answer until the request's deadline; on timeout the request is withdrawn.
pub async fn await_answer(
    state: &SharedState,
    mut queued: Queued,
) -> Result<WritebackAnswer, WritebackError> {
    let waited = tokio::time::timeout_at(queued.deadline, queued.answer.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|r| r.ok().and_then(|answer| answer.clone()));
    match waited {
        Some(answer) => Ok(answer),
        None => {
            let withdrawn = state.writeback.expire(queued.id, Instant::now());
            // The answer may have arrived between the timeout and the withdrawal.
            if let Some(answer) = queued.answer.borrow().clone() {
                return Ok(answer);
            }
            tracing::warn!(request_id = %queued.id, withdrawn, "No agent answered the password writeback request in time.");
            Err(WritebackError::Timeout(
                state.options.writeback_wait.as_secs(),
            ))
        }
    }
}

/// The answer as the caller's result: success, or the agent's refusal.
pub fn into_result(answer: WritebackAnswer) -> Result<WritebackAnswer, WritebackError> {
    if answer.code == cloudsync_api::writeback::SUCCESS {
        Ok(answer)
    } else {
        Err(WritebackError::Agent(answer))
    }
}
