//! The local tenant. Enters: HTTPS from agents, admins and Graph clients. Leaves: answers, and its sled state.
//!
//! The local tenant: an emulated cloud directory that agents, tests and the quickstart run against.
//!
//! Enters: HTTPS requests from agents (registration, heartbeats, operation batches), admins (token
//! requests, configurations, restarts, logs, fault settings, the portal) and Graph clients (reads).
//! Leaves: responses shaped by [`cloudsync_api`] (agent contract), Microsoft Graph (reads) and
//! Microsoft's OAuth2 endpoint (tokens); durable state in sled under `--state`.
//!
//! The tenant meets the agent only through [`cloudsync_api`] and HTTP; nothing here imports the agent's
//! modules (and the agent does not import these).
//!
//! # Files, one role each
//! - [`server`]       — router, middleware (body limit, injected faults), binding, address file.
//! - [`routes`]       — every route as one row (who may call it, isolation, body, query), the router
//!   built from the table; [`route_guard`] — the row's checks before its handler, URI limits.
//! - [`body_drain`]   — request bodies answered early are read to the end first (no reset).
//! - [`tls`]          — private CA + CA:FALSE server certificate (rcgen), kept under the state dir.
//! - [`state`]        — the shared state and fixed tunables.
//! - [`identity`]     — tenant id/domain/environment, seeded admin users.
//! - [`token`]        — HS256-signed access tokens.
//! - [`auth`]         — token endpoint, OpenID configuration, the [`auth::Principal`] extractor.
//! - [`authorize`]    — [`authorize::Authorized`]: the role check as an extractor, before the body.
//! - [`agents`]       — registration, heartbeats, agent status.
//! - [`lease`]        — a lease per configuration: grant, renewal, expiry, epochs, the batch fence.
//! - [`agent_health`] — agent-reported staged deletes folded into a configuration's health.
//! - [`provisioning`] — configurations, restarts, the batch endpoint.
//! - [`apply`], [`apply_ops`] — applying a batch; per-operation rules (versions, anchors, thresholds);
//!   the model-based test of those rules in `apply_model_tests.rs`.
//! - [`bench`]        — the apply rate in process (`cloudsync bench`'s push limit, `benches/`).
//! - [`apply_guard`]  — confinement to the calling configuration's objects, reserved names, version bound.
//! - [`store`]        — the sled trees and their on-disk format; `store_format` — its version and
//!   the migration from format 1.
//! - [`graph`], [`graph_query`], [`graph_batch`] — the Graph-shaped reads, OData options, `$batch`.
//! - [`signin`], [`orgid`] — the sign-in check over synced PBKDF2 password hashes (the string parsed by
//!   `cloudsync_api::orgid`; an independent PBKDF2 that cross-checks the agent's kernel).
//! - [`logs`]         — provisioning log search.
//! - [`release`]      — the release channel (`/api/v1/releases/latest`) the updater asks.
//! - [`release_binary`] — release binaries: published (signed, bounded, a file each), downloaded.
//! - [`release_slot`] — the one upgrade slot that staggers agents' restarts.
//! - [`throttle`], [`admin`] — token-bucket limits and fault injection, and their admin route.
//! - [`portal`]       — the admin page at `/`.
//! - [`portal_auth`], [`session`] — the portal's sign-in, sessions, CSRF token and security headers.
//! - [`lockout`]      — smart lockout of every password check (AADSTS50053); tests in `lockout_tests.rs`.
//! - [`error`]        — OData error bodies and body extractors that never panic.
//! - [`writeback_queue`] — password writeback requests in memory: hand-out, re-hand-out, expiry,
//!   answers; tests in `writeback_queue_tests.rs`.
//! - [`writeback_submit`] — a reset or unlock checked (synced user, switches, ready agent), the
//!   password sealed to the agents' keys and wiped, queued, and the bounded wait for the answer.
//! - [`writeback_agent`] — the agent's writeback key, long poll and answers.
//! - [`writeback_graph`] — Graph's `resetPassword` (202 + operation) and `PATCH` `passwordProfile`.
//! - [`sspr`], [`sspr_codes`] — self-service reset and unlock with one-time codes and their channel.
//! - [`writeback_switch`] — `GET|PUT /api/v1/configurations/{id}/writeback` for admins.

pub mod admin;
pub mod agent_health;
pub mod agents;
pub mod apply;
pub mod apply_guard;
mod apply_image;
pub mod apply_ops;
pub mod auth;
pub mod authorize;
pub mod bench;
pub mod body_drain;
pub mod error;
pub mod graph;
pub mod graph_batch;
pub mod graph_query;
pub mod identity;
pub mod lease;
pub mod lockout;
pub mod logs;
pub mod orgid;
pub mod portal;
pub mod portal_auth;
pub mod provisioning;
pub mod release;
pub mod release_binary;
pub mod release_slot;
pub mod route_guard;
pub mod routes;
pub mod server;
pub mod session;
pub mod signin;
pub mod sspr;
pub mod sspr_codes;
pub mod state;
pub mod store;
mod store_format;
pub mod throttle;
pub mod tls;
pub mod token;
pub mod writeback_agent;
pub mod writeback_graph;
pub mod writeback_queue;
pub mod writeback_submit;
pub mod writeback_switch;

pub use server::{RunningTenant, ServeConfig, ServeError, start};
pub use state::TenantOptions;
pub use throttle::ThrottleSettings;
