//! The agent ↔ tenant contract. Enters: nothing (pure data). Leaves: the wire types both sides serialise.
//!
//! The agent ↔ tenant contract: wire types shared by both sides.
//!
//! Enters: nothing (pure data). Leaves: serde types that the agent serialises and the local tenant
//! (`cloudsync tenant serve`) deserialises, and back. Neither side imports the other; both depend only
//! on this module, and docs/openapi.yaml describes the same shapes for other clients.
//!
//! [`orgid`] is the `v1;PPH1_MD4,…` password hash string (formatter and bounded parser) that the agent
//! writes and the tenant verifies.
//!
//! All JSON uses camelCase field names, like Microsoft Graph. Enums are strings.
//!
//! # Routes (all under the tenant's base URL)
//! - `POST /{tenant}/oauth2/v2.0/token` — OAuth2 token endpoint ([`auth`]).
//! - `POST /api/v1/agents` — register an agent (admin token) → [`agent::RegistrationResponse`].
//! - `POST /api/v1/agents/{agentId}/heartbeat` — agent token → [`agent::HeartbeatResponse`].
//! - `GET|POST /api/v1/configurations`, `GET|PUT /api/v1/configurations/{id}` ([`config`]).
//! - `POST /api/v1/configurations/{id}/restart` — [`config::RestartRequest`].
//! - `POST /api/v1/configurations/{id}/batches` — [`ops::OperationBatch`] → [`ops::BatchResponse`];
//!   409 `LeaseLost` when the batch's epoch is not the configuration's lease ([`lease`]).
//! - `GET /api/v1/provisioningLogs` — [`logs::LogQuery`] → [`logs::LogPage`].
//! - `GET /api/v1/agents/{agentId}` — the agent itself or an admin → [`agent::AgentInfo`].
//! - `GET|PUT /api/v1/releases/latest` — the release channel ([`release`]).
//! - `PUT /api/v1/agents/{agentId}/writebackKey`, `GET /api/v1/agents/{agentId}/writeback/requests`,
//!   `POST …/writeback/requests/{requestId}/answer` — password writeback ([`writeback`]).
//!
//! Errors on every route use the OData error body ([`error::ODataError`]); 429 and 503 carry
//! `Retry-After` in seconds.

pub mod agent;
pub mod auth;
pub mod config;
pub mod environment;
pub mod error;
pub mod lease;
pub mod logs;
pub mod ops;
pub mod orgid;
pub mod release;
pub mod writeback;

/// The largest number of operations one batch may carry; larger batches are answered with 413.
pub const MAX_BATCH_OPERATIONS: usize = 500;
/// The longest reason an operation may carry in a batch (`OperationBatch::reasons`), in characters.
pub const MAX_REASON_CHARS: usize = 256;

/// The largest request body the tenant accepts, in bytes; larger bodies are answered with 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub use environment::{CloudEndpoints, Environment};
