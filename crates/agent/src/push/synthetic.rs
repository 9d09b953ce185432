//! Synthetic operations for driving the push stage before projection exists (the hidden
//! `cloudsync push drive` command, tests and benchmarks). They go through the real outbox interface.

use std::collections::BTreeMap;

use uuid::Uuid;

use cloudsync_api::ops::{ObjectKind, OnPremisesIdentity, Operation, Upsert};

use super::outbox::OutboxOp;

/// The source anchor of synthetic user `n`.
pub fn anchor(n: u64) -> String {
    format!("synth-{n:07}")
}

/// A full-image upsert of synthetic user `n` at `version`, with UPN `synth<n>@<upn_domain>`.
pub fn user_upsert(n: u64, version: u64, upn_domain: &str) -> Operation {
    Operation::Upsert(Upsert {
        kind: ObjectKind::User,
        source_anchor: anchor(n),
        version,
        on_premises: OnPremisesIdentity {
            sam_account_name: Some(format!("synth{n}")),
            distinguished_name: Some(format!(
                "CN=Synth {n},OU=Synthetic,DC=corp,DC=example,DC=com"
            )),
            security_identifier: Some(format!("S-1-5-21-1-2-3-{}", 100_000 + n)),
            domain_name: Some("corp.example.com".into()),
        },
        attributes: BTreeMap::from([
            (
                "displayName".into(),
                serde_json::json!(format!("Synth {n}")),
            ),
            (
                "userPrincipalName".into(),
                serde_json::json!(format!("synth{n}@{upn_domain}")),
            ),
            ("accountEnabled".into(), serde_json::json!(true)),
        ]),
    })
}

/// Upserts of users `range`, version 1, as outbox entries for `configuration`.
pub fn users(configuration: Uuid, range: std::ops::Range<u64>, upn_domain: &str) -> Vec<OutboxOp> {
    range
        .map(|n| OutboxOp {
            configuration_id: configuration,
            operation: user_upsert(n, 1, upn_domain),
            origin_seq: n,
            reason: None,
        })
        .collect()
}
