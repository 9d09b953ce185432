//! What the agent tells the tenant about its own health in each heartbeat: per configuration, the
//! deletes its delete threshold holds back (read from projection's store). See
//! [`cloudsync_api::agent`] for the wire contract.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::projection::store::{ProjectionStore, StoreError};
use cloudsync_api::agent::AgentConfigurationHealth;

/// Staged deletes per domain (lower-case DNS name), as projection's store holds them.
pub fn staged_by_domain(store: &ProjectionStore) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for staged in store.staged()? {
        *out.entry(staged.domain.to_ascii_lowercase()).or_insert(0) += 1;
    }
    Ok(out)
}

/// One report per configuration the agent serves (`domains`: configuration id → domain); a
/// configuration without staged deletes is reported too, with zero, so the tenant can clear it.
pub fn reports(
    staged: &BTreeMap<String, u64>,
    domains: &BTreeMap<Uuid, String>,
) -> Vec<AgentConfigurationHealth> {
    domains
        .iter()
        .map(|(id, domain)| {
            let n = staged
                .get(&domain.to_ascii_lowercase())
                .copied()
                .unwrap_or(0);
            AgentConfigurationHealth {
                configuration_id: *id,
                staged_deletes: n,
                delete_threshold_exceeded: n > 0,
            }
        })
        .collect()
}

/// [`reports`] straight from the store; on a store error the heartbeat goes out without health
/// (the tenant then keeps nothing staged for this agent, which the next readable heartbeat corrects).
pub fn heartbeat_reports(
    store: &ProjectionStore,
    domains: &BTreeMap<Uuid, String>,
) -> Vec<AgentConfigurationHealth> {
    match staged_by_domain(store) {
        Ok(staged) => reports(&staged, domains),
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the staged deletes; the heartbeat carries no health.");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_configuration_is_reported_case_insensitively() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let domains = BTreeMap::from([
            (a, "Corp.Example.Test".to_owned()),
            (b, "other.test".into()),
        ]);
        let staged = BTreeMap::from([("corp.example.test".to_owned(), 7u64)]);
        let r = reports(&staged, &domains);
        assert_eq!(r.len(), 2);
        let ra = r.iter().find(|x| x.configuration_id == a).unwrap();
        assert_eq!((ra.staged_deletes, ra.delete_threshold_exceeded), (7, true));
        let rb = r.iter().find(|x| x.configuration_id == b).unwrap();
        assert_eq!(
            (rb.staged_deletes, rb.delete_threshold_exceeded),
            (0, false)
        );
        assert!(!rb.needs_attention());
    }
}
