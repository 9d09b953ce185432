//! Agent-reported configuration health: heartbeats carry how many deletes each agent's delete
//! threshold holds back ([`cloudsync_api::agent::AgentConfigurationHealth`]); the tenant keeps the last
//! report per agent in the configuration's record and folds it into the health that admins see.
//!
//! The stored `config.health` stays the tenant's own state (it gates the tenant's delete counting and
//! quarantine, see `apply_ops`); agent reports only change what [`effective`] returns, so an agent
//! releasing its staged deletes is never refused by a health the agent itself raised.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cloudsync_api::agent::AgentConfigurationHealth;
use cloudsync_api::config::{Configuration, Health};

use super::store::ConfigRecord;

/// The last report of one agent about one configuration (stored only while it needs attention).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    /// Deletes the agent holds back.
    pub staged_deletes: u64,
    /// When the agent first reported this count, RFC 3339.
    pub since: String,
}

/// Replaces `agent`'s report on `record` with what its heartbeat says (`None`: the configuration was
/// not listed, i.e. nothing staged). Returns whether the record changed (the caller then stores it).
/// A change of the effective health bumps the revision, as every health change does.
pub fn record_report(
    record: &mut ConfigRecord,
    agent: Uuid,
    report: Option<&AgentConfigurationHealth>,
    now: &str,
) -> bool {
    let new = report
        .filter(|r| r.needs_attention())
        .map(|r| r.staged_deletes);
    let old = record.agent_reports.get(&agent).map(|r| r.staged_deletes);
    if new == old {
        return false;
    }
    let before = effective(record).health;
    match new {
        Some(staged_deletes) => {
            record.agent_reports.insert(
                agent,
                AgentReport {
                    staged_deletes,
                    since: now.to_owned(),
                },
            );
        }
        None => {
            record.agent_reports.remove(&agent);
        }
    }
    let after = effective(record).health;
    if before != after {
        record.config.revision += 1;
        match &after {
            Health::DeleteThresholdExceeded { deletes } => tracing::warn!(
                configuration = %record.config.id,
                agent = %agent,
                deletes,
                "An agent reports staged deletes; the configuration shows Delete threshold exceeded."
            ),
            _ => tracing::info!(
                configuration = %record.config.id,
                agent = %agent,
                health = after.label(),
                "An agent reports its staged deletes released."
            ),
        }
    }
    true
}

/// The configuration as clients see it: the tenant's own health when it is not healthy, else
/// "Delete threshold exceeded" with the most deletes any agent reports staged.
pub fn effective(record: &ConfigRecord) -> Configuration {
    let mut config = record.config.clone();
    config.lease = record.lease.map(|l| l.info(super::state::now_unix_ms()));
    if config.health == Health::Healthy
        && let Some(staged) = record
            .agent_reports
            .values()
            .map(|r| r.staged_deletes)
            .max()
    {
        config.health = Health::DeleteThresholdExceeded {
            deletes: u32::try_from(staged).unwrap_or(u32::MAX),
        };
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::config::ConfigurationSpec;

    fn record() -> ConfigRecord {
        let spec: ConfigurationSpec =
            serde_json::from_value(serde_json::json!({"domain": "corp.example.com"})).unwrap();
        ConfigRecord::new(Uuid::from_u128(9), spec)
    }

    fn report(staged: u64) -> AgentConfigurationHealth {
        AgentConfigurationHealth {
            configuration_id: Uuid::from_u128(9),
            staged_deletes: staged,
            delete_threshold_exceeded: staged > 0,
        }
    }

    #[test]
    fn staged_deletes_raise_and_a_zero_report_clears() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut r = record();
        assert!(record_report(&mut r, a, Some(&report(12)), "t1"));
        assert_eq!(
            effective(&r).health,
            Health::DeleteThresholdExceeded { deletes: 12 }
        );
        assert_eq!(r.config.revision, 2, "a health change bumps the revision");
        assert_eq!(
            r.config.health,
            Health::Healthy,
            "the stored health is the tenant's own"
        );
        // Same report again: nothing to store, no revision bump.
        assert!(!record_report(&mut r, a, Some(&report(12)), "t2"));
        assert_eq!(r.config.revision, 2);
        // A second agent with more staged: the larger count shows.
        assert!(record_report(&mut r, b, Some(&report(30)), "t3"));
        assert_eq!(
            effective(&r).health,
            Health::DeleteThresholdExceeded { deletes: 30 }
        );
        // b released (zero), a's report is not listed at all (counts as nothing staged).
        assert!(record_report(&mut r, b, Some(&report(0)), "t4"));
        assert!(record_report(&mut r, a, None, "t5"));
        assert_eq!(effective(&r).health, Health::Healthy);
        assert!(r.agent_reports.is_empty());
    }

    #[test]
    fn the_tenants_own_health_wins() {
        let mut r = record();
        r.config.health = Health::Quarantine {
            reason: "AllOperationsFailed".into(),
        };
        record_report(&mut r, Uuid::from_u128(1), Some(&report(5)), "t");
        assert!(matches!(effective(&r).health, Health::Quarantine { .. }));
    }

    #[test]
    fn an_old_agents_heartbeat_without_the_field_decodes_and_reports_nothing() {
        let req: cloudsync_api::agent::HeartbeatRequest =
            serde_json::from_str(r#"{"version":"0.0.9","acknowledgedRestarts":[]}"#).unwrap();
        assert!(req.configurations.is_empty());
    }
}
