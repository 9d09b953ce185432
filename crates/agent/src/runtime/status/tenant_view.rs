//! What the tenant says about this agent, for `agent status`. Enters: `[tenant]` and the
//! registration (credentials file). Leaves: a [`TenantView`] — the agent's record as the portal
//! shows it (`GET /api/v1/agents/{id}`: Active/Inactive, host, version, environment, last seen) and
//! each configuration it serves (`GET /api/v1/configurations`, agent-scoped: health, last sync, the
//! lease: holder, epoch, since when) —
//! or, when the tenant cannot be asked, why; and the [`Attention`] items that follow from it.
//!
//! Only reads: no heartbeat is sent (that would make the agent look Active when its daemon is not).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Attention, AttentionKind, ReportSource};
use crate::control::credentials::AgentCredentials;
use crate::control::tenant_client::{TenantClient, TenantConfig, TenantError};
use cloudsync_api::agent::{AgentInfo, AgentStatus};
use cloudsync_api::config::{Configuration, Health};

/// The tenant's side of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// Whether the tenant answered.
    pub reachable: bool,
    /// Why not, when it did not (or refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The agent as the tenant lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// Each configuration of the agent's domains.
    #[serde(default)]
    pub configurations: Vec<TenantConfiguration>,
}

/// One configuration as the tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantConfiguration {
    /// The configuration id.
    pub id: Uuid,
    /// The domain it syncs.
    pub domain: String,
    /// Its health label as the portal shows it ("Healthy", "Quarantine", "Delete threshold exceeded").
    pub health: String,
    /// The health in full (reason, delete count).
    pub health_detail: Health,
    /// When the tenant last applied a batch of it, RFC 3339.
    pub last_sync: Option<String>,
    /// Which agent holds its lease, the epoch and since when ([`cloudsync_api::lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<cloudsync_api::lease::LeaseInfo>,
}

#[derive(Deserialize)]
struct ConfigurationList {
    value: Vec<Configuration>,
}

async fn ask(client: &TenantClient, agent_id: Uuid) -> Result<TenantView, TenantError> {
    let url = client.url(&format!("/api/v1/agents/{agent_id}"));
    let agent: AgentInfo = client
        .agent_json(&url, |token| client.http().get(&url).bearer_auth(token))
        .await?;
    let url = client.url("/api/v1/configurations");
    let list: ConfigurationList = client
        .agent_json(&url, |token| client.http().get(&url).bearer_auth(token))
        .await?;
    let configurations = list
        .value
        .into_iter()
        .map(|c| TenantConfiguration {
            id: c.id,
            domain: c.spec.domain,
            health: c.health.label().to_string(),
            health_detail: c.health,
            last_sync: c.last_sync,
            lease: c.lease,
        })
        .collect();
    Ok(TenantView {
        reachable: true,
        error: None,
        agent: Some(agent),
        configurations,
    })
}

/// Asks the tenant (bounded by `[tenant]`'s request timeout per call). Never fails: a tenant that
/// cannot be asked is a view saying why.
pub async fn fetch(tenant: &TenantConfig, creds: &AgentCredentials) -> TenantView {
    let unreachable = |e: String| TenantView {
        reachable: false,
        error: Some(e),
        agent: None,
        configurations: Vec::new(),
    };
    let client = match TenantClient::agent(tenant, creds) {
        Ok(c) => c,
        Err(e) => return unreachable(e.to_string()),
    };
    match ask(&client, creds.agent_id).await {
        Ok(view) => view,
        Err(e @ TenantError::Unreachable { .. }) => unreachable(e.to_string()),
        Err(e) => TenantView {
            reachable: true,
            error: Some(e.to_string()),
            agent: None,
            configurations: Vec::new(),
        },
    }
}

/// What needs an admin in the tenant's view. `source` says whether a daemon is running: an agent
/// the tenant sees Inactive while its daemon runs is not getting its heartbeats through.
pub fn attention(view: &TenantView, source: ReportSource) -> Vec<Attention> {
    let mut out = Vec::new();
    if let Some(e) = &view.error {
        out.push(Attention {
            kind: AttentionKind::Tenant,
            message: if view.reachable {
                format!("The tenant refused to say how it sees this agent: {e}. Check the registration (cloudsync agent doctor).")
            } else {
                format!("The tenant cannot be reached, so only the local state is shown: {e}. Check the network and [tenant] url (cloudsync agent doctor).")
            },
        });
    }
    if let Some(a) = &view.agent
        && a.status == AgentStatus::Inactive
        && source == ReportSource::Daemon
    {
        out.push(Attention {
            kind: AttentionKind::Other,
            message: format!(
                "The tenant sees this agent as Inactive (last heartbeat {}) although it runs: its heartbeats do not arrive; check its log and `cloudsync agent doctor`.",
                a.last_seen
            ),
        });
    }
    for c in &view.configurations {
        match &c.health_detail {
            Health::Healthy => {}
            Health::Quarantine { reason } => out.push(Attention {
                kind: AttentionKind::Quarantine,
                message: format!(
                    "The tenant has configuration {} ({}) in quarantine ({reason}): fix the cause, then restart it with the Quarantine scope.",
                    c.id, c.domain
                ),
            }),
            Health::DeleteThresholdExceeded { deletes } => out.push(Attention {
                kind: AttentionKind::StagedDeletes,
                message: format!(
                    "The tenant reports Delete threshold exceeded for {} ({deletes} deletes): review them, then `cloudsync agent allow-deletes` or a ForceDeletes restart.",
                    c.domain
                ),
            }),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn agent(status: AgentStatus) -> AgentInfo {
        AgentInfo {
            id: Uuid::nil(),
            host_name: "h".into(),
            version: "0.1.0".into(),
            environment: cloudsync_api::Environment::AzureCloud,
            domains: vec![],
            status,
            last_seen: "2026-01-01T00:00:00Z".into(),
            binary_sha256: None,
            leases: vec![],
        }
    }

    #[test]
    fn inactive_needs_attention_only_while_the_daemon_runs() {
        let view = TenantView {
            reachable: true,
            error: None,
            agent: Some(agent(AgentStatus::Inactive)),
            configurations: vec![],
        };
        assert!(attention(&view, ReportSource::Databases).is_empty());
        let a = attention(&view, ReportSource::Daemon);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AttentionKind::Other);
    }

    #[test]
    fn an_unreachable_tenant_sets_its_own_bit() {
        let view = TenantView {
            reachable: false,
            error: Some("connection refused".into()),
            agent: None,
            configurations: vec![],
        };
        let a = attention(&view, ReportSource::Databases);
        assert_eq!(a[0].kind.bit(), super::super::EXIT_TENANT);
        assert!(
            a[0].message.contains("cannot be reached"),
            "{}",
            a[0].message
        );
    }
}
