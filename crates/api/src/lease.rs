//! Leases: which agent does a configuration's work, under which epoch.
//!
//! # The contract (stated once; the tenant enforces it, the agent's push stage relies on it)
//! - A configuration's work is leased to one **Active** agent paired with it (serving its domain).
//!   The lease is granted and renewed by that agent's heartbeats; it expires `leaseSeconds` after
//!   the last renewal. Each heartbeat answer lists, per paired configuration, a [`LeaseGrant`]:
//!   whether the caller holds it, the holder, the **epoch** and when the current holder got it.
//! - The epoch is a `u64` that only grows: every grant to a different agent (a takeover, or the
//!   first grant) is the previous epoch + 1. It is stored with the configuration, so a tenant
//!   restart never hands out an epoch twice. Renewals keep it.
//! - Every batch a lease holder sends carries its epoch ([`crate::ops::OperationBatch::epoch`]). A
//!   batch whose epoch is not the configuration's current one (or whose sender is not the holder)
//!   is refused whole with **409 `LeaseLost`**, the current lease in the error body
//!   ([`crate::error::ODataErrorBody::lease`]); nothing of it is applied. A batch without an epoch
//!   (tools, agents that predate leases) is accepted while no lease was ever granted for the
//!   configuration, or from the current holder (counted under its epoch); from anyone else it is
//!   refused. Lease-aware agents always send the epoch once a heartbeat granted one.
//! - Object versions compare as **(epoch, version)**, lexicographically: a newer holder's lower
//!   journal sequence numbers still win, and an older epoch's operation never overwrites a newer
//!   epoch's. A batch without an epoch counts as epoch 0 before any lease, else as the holder's.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A configuration's current lease, as the tenant shows it (configuration resource, agent list,
/// portal, `LeaseLost` body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    /// The agent holding (or, when expired, last holding) the lease.
    pub holder_agent_id: Uuid,
    /// The epoch of the current grant.
    pub epoch: u64,
    /// When the holder got this grant, RFC 3339.
    pub since: String,
    /// When the lease expires unless renewed, RFC 3339.
    pub expires: String,
    /// False once the holder missed its renewal: the next heartbeat of another paired Active agent
    /// takes the lease over with the next epoch.
    pub live: bool,
}

/// One configuration's lease in a heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseGrant {
    /// The configuration.
    pub configuration_id: Uuid,
    /// Whether the calling agent holds the lease (and may push, stamping `epoch`).
    pub held: bool,
    /// The lease as it stands (holder, epoch, since); absent while nobody holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseInfo>,
    /// Milliseconds until the lease expires unless renewed; a standby heartbeats again right after
    /// it, so a takeover does not wait for its next regular heartbeat.
    #[serde(default)]
    pub expires_in_ms: u64,
}
