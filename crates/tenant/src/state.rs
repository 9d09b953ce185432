//! The shared state every handler sees.

use std::sync::Arc;

use uuid::Uuid;

use cloudsync_api::Environment;

use super::identity::{AdminUser, Identity, Seed};
use super::lockout::{Lockout, LockoutPolicy};
use super::session::Sessions;
use super::store::{Store, StoreError};
use super::throttle::{Throttle, ThrottleSettings};
use super::token::TokenSigner;

/// Tunables fixed at start.
#[derive(Debug, Clone)]
pub struct TenantOptions {
    /// The emulated cloud.
    pub environment: Environment,
    /// Access token lifetime in seconds.
    pub token_lifetime_secs: u64,
    /// Heartbeat interval told to agents, in seconds.
    pub heartbeat_interval_secs: u64,
    /// An agent without a heartbeat for this long shows as Inactive.
    pub agent_inactive_after_secs: u64,
    /// A configuration's lease runs this long after its holder's last heartbeat; 0: twice the
    /// heartbeat interval ([`TenantOptions::lease_ms`]).
    pub lease_secs: u64,
    /// Length of the delete-threshold counting window, in seconds.
    pub delete_window_secs: u64,
    /// Batches in a row that fail entirely before a configuration is quarantined.
    pub quarantine_after_failed_batches: u32,
    /// `https` or `http`: how clients reach the tenant (used in `@odata.nextLink` and discovery).
    pub scheme: String,
    /// Smart lockout of password checks (token endpoint, `/signin`, portal sign-in).
    pub lockout: LockoutPolicy,
    /// How long a password reset or unlock waits for the agent's answer (at most
    /// [`MAX_WRITEBACK_WAIT`]); also the request's lifetime in the queue.
    pub writeback_wait: std::time::Duration,
    /// The largest release binary `PUT /api/v1/releases/{version}` accepts, in bytes.
    pub release_max_bytes: u64,
    /// How long an agent holds the upgrade slot unless it reports the new binary or gives it back.
    pub upgrade_slot: std::time::Duration,
}

impl TenantOptions {
    /// The lease length in milliseconds: `lease_secs`, or by default twice the heartbeat interval
    /// — a holder's heartbeat may be up to one interval late, and, since a standby heartbeats again
    /// right when the lease runs out, another agent takes over within two intervals of the
    /// holder's last heartbeat.
    pub fn lease_ms(&self) -> u64 {
        let secs = if self.lease_secs == 0 {
            self.heartbeat_interval_secs.saturating_mul(2)
        } else {
            self.lease_secs
        };
        secs.max(1).saturating_mul(1000)
    }
}

/// The longest bounded wait for a writeback answer (a Graph client's own timeout is 100 s).
pub const MAX_WRITEBACK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for TenantOptions {
    fn default() -> Self {
        TenantOptions {
            environment: Environment::AzureCloud,
            token_lifetime_secs: 3600,
            heartbeat_interval_secs: 600,
            agent_inactive_after_secs: 3600,
            lease_secs: 0,
            delete_window_secs: 120,
            quarantine_after_failed_batches: 3,
            scheme: "https".to_owned(),
            lockout: LockoutPolicy::default(),
            writeback_wait: std::time::Duration::from_secs(30),
            release_max_bytes: cloudsync_api::release::DEFAULT_RELEASE_MAX_BYTES,
            upgrade_slot: std::time::Duration::from_secs(600),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct TenantState {
    /// Durable state.
    pub store: Store,
    /// Who the tenant is.
    pub identity: Identity,
    /// Token signer.
    pub signer: TokenSigner,
    /// Fixed tunables.
    pub options: TenantOptions,
    /// Write/read budgets and injected faults (changeable at run time).
    pub throttle: Throttle,
    /// Serialises batch application, so idempotency checks and writes do not interleave.
    pub apply_lock: tokio::sync::Mutex<()>,
    /// Batches refused with `LeaseLost` since start (each refusal's WARN line carries the count).
    pub lease_refusals: std::sync::atomic::AtomicU64,
    /// Failed password checks per account and source address.
    pub lockout: Lockout,
    /// Portal sign-in sessions.
    pub sessions: Sessions,
    /// Password writeback requests waiting for, or answered by, agents (memory only).
    pub writeback: super::writeback_queue::WritebackQueue,
    /// Self-service verification codes and the stand-in delivery channel (memory only).
    pub sspr: super::sspr_codes::SsprCodes,
    /// Where release binaries are kept (`<state>/releases`); `None` for an in-memory tenant,
    /// which refuses binaries.
    pub release_dir: Option<std::path::PathBuf>,
    /// The upgrade slot (memory only: a restarted tenant has it free).
    pub upgrade_slot: super::release_slot::SlotHolder,
}

/// Shared handle.
pub type SharedState = Arc<TenantState>;

impl TenantState {
    /// Builds the state over an opened store: reads or creates the tenant id and signing key, and
    /// turns the seed's users into in-memory admin users.
    pub fn new(
        store: Store,
        seed: &Seed,
        options: TenantOptions,
        throttle: ThrottleSettings,
    ) -> Result<TenantState, StoreError> {
        let tenant_id = match seed.tenant_id {
            Some(id) => {
                store.meta.insert("tenant_id", id.as_bytes().as_slice())?;
                id
            }
            None => {
                let bytes =
                    store.meta_or_init("tenant_id", || Uuid::new_v4().as_bytes().to_vec())?;
                super::store::uuid_value("meta", &bytes)?
            }
        };
        let key = store.meta_or_init("signing_key", || {
            let mut key = vec![0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            key
        })?;
        let mut options = options;
        options.writeback_wait = options
            .writeback_wait
            .clamp(std::time::Duration::from_secs(1), MAX_WRITEBACK_WAIT);
        let users = seed
            .users
            .iter()
            .map(|u| AdminUser::new(&u.user_principal_name, &u.password, u.roles.clone()))
            .collect();
        Ok(TenantState {
            signer: TokenSigner::new(
                key,
                tenant_id,
                format!(
                    "https://{}/{tenant_id}/v2.0",
                    options.environment.login_host()
                ),
            ),
            identity: Identity {
                tenant_id,
                domain: seed.domain.clone(),
                environment: options.environment,
                users,
            },
            store,
            lockout: Lockout::new(options.lockout.clone()),
            sessions: Sessions::new(options.scheme == "https"),
            options,
            throttle: Throttle::new(throttle),
            apply_lock: tokio::sync::Mutex::new(()),
            lease_refusals: Default::default(),
            writeback: Default::default(),
            sspr: Default::default(),
            release_dir: None,
            upgrade_slot: Default::default(),
        })
    }
}

/// Current Unix time in milliseconds.
pub fn now_unix_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Current time as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// Formats a time as RFC 3339 (UTC, seconds precision).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses RFC 3339 into Unix seconds (0 when unparsable).
pub fn parse_unix(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}
