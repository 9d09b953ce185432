//! The tenant's durable state in sled.
//!
//! # On-disk format (directory given by `--state`)
//! One sled database with these trees; values are JSON (self-describing, so fields can be added with
//! `#[serde(default)]` without a migration). Key bytes:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `format`, `tenant_id`, `signing_key` | `b"2"` ([`FORMAT`]), 16-byte UUID, 32 random bytes (HS256 key) |
//! | `objects` | 16-byte object id | [`StoredObject`] |
//! | `config_anchors` | 16-byte owning configuration id ‖ source anchor (UTF-8) | 16-byte object id |
//! | `upns` | lower-cased userPrincipalName | 16-byte object id |
//! | `members` | group id ‖ member id (32 bytes) | the lease epoch the link was last asserted under, u64 big-endian (empty: 0, written before leases) |
//! | `member_of` | member id ‖ group id (32 bytes) | empty |
//! | `credentials` | 16-byte object id | `{version, credential}`: the `v1;PPH1_MD4,…` string (salted PBKDF2, never an NT hash) |
//! | `agents` | 16-byte agent id | [`AgentRecord`] |
//! | `clients` | client id (UTF-8) | 16-byte agent id |
//! | `configs` | 16-byte configuration id | [`ConfigRecord`] |
//! | `batches` | 16-byte configuration id ‖ 16-byte batch id ([`batch_key`]) | [`cloudsync_api::ops::BatchResponse`] |
//! | `logs` | 8-byte big-endian sequence | [`cloudsync_api::logs::LogEntry`] |
//!
//! Anchors are unique per configuration: an object belongs to the configuration that created it
//! ([`StoredObject::configuration_id`]) and is found only under that configuration's key prefix, so a
//! batch cannot even look up another configuration's object (see [`cloudsync_api::ops`], Ownership).
//!
//! # Format versions
//! - `1`: the `anchors` tree was keyed by the bare source anchor, tenant-wide.
//! - `2` (current): `config_anchors` as above. Opening a format-1 state migrates it: every `anchors`
//!   entry is copied under its object's `configurationId` (the configuration that last wrote it),
//!   each configuration's `versionHighWater` is raised to the highest version of its objects (so the
//!   version bound starts where the agent's versions are), format 1's stored batch results (keyed by
//!   the bare batch id) are cleared — a replay of such a batch is applied again, and the per-object
//!   versions make that a no-op — then `format` becomes `2`, then `anchors` is dropped. A crash in between leaves format `1`, and
//!   the next open redoes the copy from the start. A format newer than [`FORMAT`] is refused.
//!
//! Fields added with `#[serde(default)]` need no new format: `AgentRecord::writeback_public_key`
//! (the agent's X25519 public key, absent until it registers one), `AgentRecord::binary_sha256`, the
//! configuration's `allowUnlock` (false when absent), and the lease fields ([`super::lease`]): a
//! configuration's `lease` (absent: never leased) and `versionHighWaterEpoch`, an object's and a stored
//! credential's `epoch` (absent: 0, "written before leases", which every lease epoch ≥ 1 beats). Password writeback requests are never stored: they live in
//! [`super::writeback_queue`], in memory only.
//!
//! Deleted objects stay in `objects` as tombstones (`deleted: true`) so that a replayed older upsert is
//! recognised as stale; their UPN index entry and memberships are removed. Nothing is ever purged.
//!
//! # Durability
//! Writes of one batch are applied in order, then its results are stored under its batch id, then the
//! database is flushed before the response is sent. A crash in between leaves a partly applied batch
//! without a stored result: the agent resends it, and per-object versions make the replay harmless.

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use cloudsync_api::Environment;
use cloudsync_api::agent::PendingRestart;
use cloudsync_api::config::{Configuration, ConfigurationSpec, Health};
use cloudsync_api::ops::{ObjectKind, OnPremisesIdentity};
use cloudsync_private_fs::lock::{is_lock_conflict, open_waiting_for_lock};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O or corruption).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value did not decode.
    #[error("corrupt record in tree {tree}: {source}")]
    Corrupt {
        /// The tree holding the record.
        tree: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A stored key had the wrong length.
    #[error("corrupt key in tree {0}")]
    CorruptKey(&'static str),
    /// A record could not be encoded.
    #[error("encoding a record: {0}")]
    Encode(serde_json::Error),
    /// The state was written by a newer tenant (or is not a tenant state at all).
    #[error(
        "the tenant state has format {found:?}, but this build reads formats 1 and {FORMAT}; use the newer cloudsync that wrote it, or start over with an empty --state directory"
    )]
    UnsupportedFormat {
        /// The stored `meta/format` value.
        found: String,
    },
    /// A release binary's file could not be written or read (`<state>/releases`).
    #[error("release file {path}: {source}")]
    ReleaseFile {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// Store errors are not retriable from a client's point of view unless the disk recovers.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StoreError::Sled(sled::Error::Io(_)))
    }
}

/// A directory object as stored (live or tombstone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObject {
    /// Cloud object id.
    pub id: Uuid,
    /// User, group or contact.
    pub kind: ObjectKind,
    /// Source anchor (`onPremisesImmutableId`).
    pub source_anchor: String,
    /// Highest version applied (upsert or delete), within [`Self::epoch`].
    pub version: u64,
    /// The lease epoch of the batch that wrote `version` ([`super::lease`]); versions compare as
    /// (epoch, version). 0 for objects written before leases existed or without a lease.
    #[serde(default)]
    pub epoch: u64,
    /// Tombstone flag.
    #[serde(default)]
    pub deleted: bool,
    /// On-premises identity.
    #[serde(default)]
    pub on_premises: OnPremisesIdentity,
    /// Mapped attributes by Graph property name.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// When last written, RFC 3339.
    pub last_sync: String,
    /// The owning configuration: the one whose batch created it, the only one that may change it.
    pub configuration_id: Uuid,
}

/// Whether a mapped value means "no value": `null` (Graph's way to clear a property) or `[]` (an empty
/// collection). The tenant stores such a property as absent; Graph reads show it as `null` / `[]`.
pub fn is_unset(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

impl StoredObject {
    /// The user principal name, if the object has one.
    pub fn upn(&self) -> Option<&str> {
        self.attributes
            .get("userPrincipalName")
            .and_then(|v| v.as_str())
    }

    /// `accountEnabled`, defaulting to true as Graph does for synced users without the attribute.
    pub fn account_enabled(&self) -> bool {
        self.attributes
            .get("accountEnabled")
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
    }
}

/// A registered agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    /// Agent id.
    pub id: Uuid,
    /// Host name.
    pub host_name: String,
    /// Version last reported.
    pub version: String,
    /// Environment.
    pub environment: Environment,
    /// Domains served.
    pub domains: Vec<String>,
    /// Client id for client credentials.
    pub client_id: String,
    /// SHA-256 of the client secret (the secret itself is never stored).
    pub secret_sha256: String,
    /// Last heartbeat or registration, RFC 3339.
    pub last_seen: String,
    /// The agent's X25519 public key for password writeback (standard base64 of 32 bytes), once
    /// it registered one (`PUT /api/v1/agents/{id}/writebackKey`). Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writeback_public_key: Option<String>,
    /// SHA-256 of the executable the agent's last heartbeat came from (the updater's health
    /// criterion, docs/updater.md). Absent until an agent that reports it heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
}

/// A configuration plus the tenant's bookkeeping for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRecord {
    /// What clients see.
    pub config: Configuration,
    /// Start of the current delete-counting window, Unix seconds.
    #[serde(default)]
    pub delete_window_start: i64,
    /// Deletes applied in the current window.
    #[serde(default)]
    pub delete_window_count: u32,
    /// Deletes are let through without counting until this Unix time (after `ForceDeletes`).
    #[serde(default)]
    pub force_deletes_until: i64,
    /// Batches in a row in which every operation failed permanently.
    #[serde(default)]
    pub consecutive_failed_batches: u32,
    /// Restarts not yet acknowledged by an agent.
    #[serde(default)]
    pub pending_restarts: Vec<PendingRestart>,
    /// Agents whose last heartbeat reported staged deletes for this configuration, by agent id
    /// (see [`super::agent_health`]).
    #[serde(default)]
    pub agent_reports: std::collections::BTreeMap<Uuid, super::agent_health::AgentReport>,
    /// The highest version applied for this configuration (the bound of [`cloudsync_api::ops`],
    /// Version bound); 0 before the first.
    #[serde(default)]
    pub version_high_water: u64,
    /// The epoch of [`Self::version_high_water`]: the bound applies within this epoch; a newer
    /// epoch's versions start afresh (they are another agent's journal sequence numbers).
    #[serde(default)]
    pub version_high_water_epoch: u64,
    /// The configuration's lease ([`super::lease`]); absent before the first grant, kept (with
    /// its epoch) after it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<super::lease::LeaseRecord>,
}

impl ConfigRecord {
    /// A new configuration `id` for `spec`: revision 1, healthy, never synced, and no bookkeeping yet
    /// (no delete window, no pending restarts, no agent reports, no version applied).
    pub fn new(id: Uuid, spec: ConfigurationSpec) -> Self {
        Self {
            config: Configuration {
                id,
                revision: 1,
                spec,
                health: Health::Healthy,
                last_sync: None,
                lease: None,
            },
            delete_window_start: 0,
            delete_window_count: 0,
            force_deletes_until: 0,
            consecutive_failed_batches: 0,
            pending_restarts: Vec::new(),
            agent_reports: Default::default(),
            version_high_water: 0,
            version_high_water_epoch: 0,
            lease: None,
        }
    }
}

/// The sled database and its trees.
#[derive(Debug, Clone)]
pub struct Store {
    /// The database (for the format migration in [`super::store_format`]).
    pub(super) db: sled::Db,
    /// Tenant metadata.
    pub meta: sled::Tree,
    /// Objects by id.
    pub objects: sled::Tree,
    /// Owning configuration id ‖ anchor → object id (tree `config_anchors`).
    pub anchors: sled::Tree,
    /// Lower-case UPN → object id.
    pub upns: sled::Tree,
    /// Group id ‖ member id.
    pub members: sled::Tree,
    /// Member id ‖ group id.
    pub member_of: sled::Tree,
    /// Object id → PPH1 string.
    pub credentials: sled::Tree,
    /// Agents by id.
    pub agents: sled::Tree,
    /// Client id → agent id.
    pub clients: sled::Tree,
    /// Configurations by id.
    pub configs: sled::Tree,
    /// Batch results by batch id.
    pub batches: sled::Tree,
    /// Provisioning log by sequence.
    pub logs: sled::Tree,
}

/// sled's page cache for the tenant's store (sled's default is 1 GiB per database). The hot set is
/// the objects a batch touches and their anchors; a directory of millions of objects does not need
/// them all resident.
pub const CACHE_BYTES: u64 = 128 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// sled releases the file lock of a just-dropped handle asynchronously, so a reopen right after a
    /// close (a restart, or a test's reboot) polls for the lock for up to two seconds before failing.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = open_waiting_for_lock(
            std::time::Duration::from_secs(2),
            || {
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(CACHE_BYTES)
                    .open()
            },
            |e| matches!(e, sled::Error::Io(e) if is_lock_conflict(e)),
        )?;
        Self::from_db(db)
    }

    /// A throw-away in-memory store (tests and benchmarks).
    pub fn temporary() -> Result<Store, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Store, StoreError> {
        let store = Store {
            meta: db.open_tree("meta")?,
            objects: db.open_tree("objects")?,
            anchors: db.open_tree("config_anchors")?,
            upns: db.open_tree("upns")?,
            members: db.open_tree("members")?,
            member_of: db.open_tree("member_of")?,
            credentials: db.open_tree("credentials")?,
            agents: db.open_tree("agents")?,
            clients: db.open_tree("clients")?,
            configs: db.open_tree("configs")?,
            batches: db.open_tree("batches")?,
            logs: db.open_tree("logs")?,
            db,
        };
        match store.meta.get("format")?.as_deref() {
            None => {}
            Some(b"1") => super::store_format::migrate_from_1(&store)?,
            Some(v) if v == FORMAT.as_bytes() => {}
            Some(other) => {
                return Err(StoreError::UnsupportedFormat {
                    found: String::from_utf8_lossy(other).into_owned(),
                });
            }
        }
        store.meta.insert("format", FORMAT.as_bytes())?;
        Ok(store)
    }

    /// Flushes every tree to disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Flushes every tree to disk, blocking: at start-up, so the tenant id and signing key made
    /// there survive a crash before sled's own periodic flush; at shutdown, on a blocking thread.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A fresh monotonic id (used for log sequence numbers).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Returns the meta value for `key`, creating it with `init` when absent.
    pub fn meta_or_init(
        &self,
        key: &str,
        init: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(v) = self.meta.get(key)? {
            return Ok(v.to_vec());
        }
        let value = init();
        self.meta.insert(key, value.as_slice())?;
        Ok(value)
    }
}

/// The current on-disk format (`meta/format`).
pub const FORMAT: &str = "2";

/// The `config_anchors` key of `anchor` in configuration `config`.
pub fn anchor_key(config: Uuid, anchor: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + anchor.len());
    key.extend_from_slice(config.as_bytes());
    key.extend_from_slice(anchor.as_bytes());
    key
}

/// The key of a batch's stored results: configuration id, then batch id. Per configuration, so an
/// agent that sends another configuration's batch id to its own configuration gets no replay of
/// the other's results (object ids, UPNs in messages): its batch is applied as a new one.
pub fn batch_key(config: Uuid, batch: Uuid) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(config.as_bytes());
    key[16..].copy_from_slice(batch.as_bytes());
    key
}

/// Reads and decodes a JSON record.
pub fn get_json<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(name, &bytes).map(Some),
    }
}

/// Encodes and writes a JSON record.
pub fn put_json<T: Serialize>(tree: &sled::Tree, key: &[u8], value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(StoreError::Encode)?;
    tree.insert(key, bytes)?;
    Ok(())
}

/// Decodes a JSON record.
pub fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// Reads a 16-byte UUID value.
pub fn uuid_value(tree: &'static str, bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|_| StoreError::CorruptKey(tree))
}

/// Concatenates two ids into a 32-byte pair key.
pub fn pair_key(a: Uuid, b: Uuid) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(a.as_bytes());
    key[16..].copy_from_slice(b.as_bytes());
    key
}
