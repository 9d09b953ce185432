//! What the tenant's resources, each agent's `cloudsync agent status` and the portal say about the
//! leases, for `tests/ha_spread.rs`: read, and asserted equal to the tenant's configurations resource
//! ([`crate::ha::leases`]); and the admin calls that test makes (an agent's domains, its last heartbeat).
//!
//! Use with the modules `tests/common/ha.rs` needs plus `#[path = "common/ha_views.rs"] mod ha_views;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent_run;
use crate::ha::Lease;
use crate::tenant_fixture::{GA, HIA, TenantFixture};

/// `holder agent id → domains it holds` over live leases.
pub fn by_holder(leases: &[Lease]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in leases.iter().filter(|l| l.live) {
        out.entry(l.holder.clone())
            .or_default()
            .insert(l.domain.clone());
    }
    out
}

/// Each of `agents` holds exactly one of the three configurations, all live.
pub fn spread_one_each(leases: &[Lease], agents: &[String]) -> bool {
    let held = by_holder(leases);
    leases.len() == 3
        && leases.iter().all(|l| l.live)
        && agents
            .iter()
            .all(|a| held.get(a).is_some_and(|d| d.len() == 1))
}

/// `agent status --json` of the agent with `config`, while its daemon runs.
pub fn agent_status(config: &Path) -> Value {
    let o = agent_run::agent(
        &[
            "agent",
            "status",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("agent status --json: {e}\n{}", agent_run::text(&o)))
}

/// The same agent's text report.
pub fn agent_status_text(config: &Path) -> String {
    let o = agent_run::agent(
        &["agent", "status", "--config", config.to_str().unwrap()],
        &[],
    );
    agent_run::text(&o)
}

/// What `agent status` of `me` says about the leases equals the tenant's view: every configuration
/// with its holder, epoch and since; the text names the held one "this agent".
pub fn assert_status_shows(config: &Path, me: &str, leases: &[Lease]) {
    let report = agent_status(config);
    let seen: Vec<&Value> = report["tenant"]["configurations"]
        .as_array()
        .unwrap_or_else(|| panic!("no tenant view in agent status: {report:#}"))
        .iter()
        .collect();
    assert_eq!(seen.len(), 3, "{report:#}");
    for l in leases {
        let c = seen
            .iter()
            .find(|c| c["id"] == l.configuration.as_str())
            .unwrap_or_else(|| panic!("{} missing in agent status: {report:#}", l.domain));
        assert_eq!(c["domain"], l.domain.as_str());
        assert_eq!(c["lease"]["holderAgentId"], l.holder.as_str(), "{report:#}");
        assert_eq!(c["lease"]["epoch"], l.epoch, "{report:#}");
        assert_eq!(c["lease"]["since"], l.since.as_str(), "{report:#}");
    }
    let text = agent_status_text(config);
    let mine: Vec<&Lease> = leases.iter().filter(|l| l.holder == me).collect();
    for l in &mine {
        let line = format!(
            "({}): Healthy; last sync",
            l.domain // the configuration line of its domain…
        );
        let held = format!(
            "lease held by this agent (epoch {}) since {}",
            l.epoch, l.since
        );
        assert!(
            text.lines().any(|t| t.contains(&line) && t.contains(&held)),
            "agent status of {me} does not say it holds {}:\n{text}",
            l.domain
        );
    }
    assert_eq!(
        text.matches("lease held by this agent").count(),
        mine.len(),
        "{text}"
    );
}

/// The portal's configuration rows name each holder's id, epoch and since; the agents table lists
/// what each agent holds.
pub async fn assert_portal_shows(t: &TenantFixture, leases: &[Lease]) {
    let page = t.portal_page(HIA, "/").await;
    for l in leases {
        let row = page
            .split("<tr class=\"configuration\">")
            .find(|r| r.starts_with(&format!("<td>{}</td>", l.domain)))
            .unwrap_or_else(|| {
                panic!(
                    "no configuration row for {} in the portal:\n{page}",
                    l.domain
                )
            });
        let cell = row
            .split("<td class=\"lease\">")
            .nth(1)
            .and_then(|c| c.split("</td>").next())
            .unwrap();
        let want = format!(
            "<code class=\"holder\">{}</code> (epoch {}) since {}",
            l.holder, l.epoch, l.since
        );
        assert!(
            cell.contains(&want),
            "the portal's lease of {}: {cell:?}, want {want:?}",
            l.domain
        );
        let agent_row = page
            .split("<tr class=\"agent\">")
            .find(|r| r.contains(&format!("<code>{}</code>", l.holder)))
            .unwrap_or_else(|| panic!("no agent row for {} in the portal", l.holder));
        assert!(
            agent_row.contains(&format!(
                "{} (epoch {}) since {}",
                l.domain, l.epoch, l.since
            )),
            "the portal's agent row of {} does not list {}: {agent_row}",
            l.holder,
            l.domain
        );
    }
}

/// `GET /api/v1/agents`: each agent's held leases, as domains.
pub async fn agents_hold(t: &TenantFixture, token: &str) -> BTreeMap<String, BTreeSet<String>> {
    let v = t.get_json(token, "/api/v1/agents").await;
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let held = a["leases"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["lease"]["live"] == true)
                .map(|l| l["domain"].as_str().unwrap().to_owned())
                .collect();
            (a["id"].as_str().unwrap().to_owned(), held)
        })
        .collect()
}

/// `GET /api/v1/agents`: each agent's `lastSeen`.
pub async fn last_seen(t: &TenantFixture, token: &str) -> BTreeMap<String, String> {
    let v = t.get_json(token, "/api/v1/agents").await;
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["lastSeen"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `PUT /api/v1/agents/{id}/domains`: the domains the agent is paired with.
pub async fn set_domains(t: &TenantFixture, token: &str, id: &str, domains: &[&str]) {
    let r = t
        .client
        .put(t.at(&format!("/api/v1/agents/{id}/domains")))
        .bearer_auth(token)
        .json(&serde_json::json!({ "domains": domains }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// Polls Graph until `upn`'s `jobTitle` is `title`; returns how long it took.
pub async fn wait_for_title(
    t: &TenantFixture,
    upn: &str,
    title: &str,
    within: Duration,
) -> Duration {
    let token = t.user_token(GA).await;
    let start = Instant::now();
    loop {
        let u = t.get_json(&token, format!("/v1.0/users/{upn}")).await;
        if u["jobTitle"] == title {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{upn}'s jobTitle did not become {title:?} within {within:?}: {u}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
