//! The crash campaign's driver and oracle around the agents (`tests/crash_campaign.rs`): the tenant
//! polled until it equals AD with sign-ins ([`settle`]), its refusals for a failure report, the lease
//! holder, a cloud password reset through Graph and its operation, an AD password change.
//!
//! Use with the modules `crash_campaign.rs` declares (`common`, `agent_run`, `diff_changes`,
//! `diff_oracle`, `ha`, `crash_agent`, `tenant_fixture`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::common::lab::{self, LabDc};
use crate::crash_agent::Agent;
use crate::diff_changes::{Kind, World};
use crate::diff_oracle;
use crate::ha;
use crate::tenant_fixture::TenantFixture;

/// Graph's password method id (resetPassword).
pub const PASSWORD_METHOD: &str = "28c10230-6103-485e-b985-444c60001490";
/// The tenant's bounded wait for a writeback answer (`tenant serve --writeback-wait-secs`).
pub const WRITEBACK_WAIT_SECS: u64 = 10;

/// Polls until the tenant equals AD in full and every enabled user in scope signs in with its AD
/// password (`w`'s model of the passwords; the oracle re-reads AD for who is in scope and enabled).
pub async fn settle(
    dc: &LabDc,
    t: &TenantFixture,
    w: &World,
    within: Duration,
) -> Result<f64, String> {
    let start = Instant::now();
    loop {
        let mut diffs = diff_oracle::compare(dc, t, &w.ous).await;
        if diffs.is_empty() {
            diffs = diff_oracle::signin_failures(dc, t, &w.ous, &w.users_in_scope()).await;
        }
        if diffs.is_empty() {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > within {
            return Err(format!(
                "not equal to AD within {within:?} ({} differences):\n{}",
                diffs.len(),
                diffs
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The tenant's last provisioning-log entries that were not applied (`result=error`), one line each:
/// what a failure report needs beside the differences (refusals, quarantines).
pub async fn refusals(t: &TenantFixture, ga: &str) -> String {
    let page = t
        .get_json(ga, "/api/v1/provisioningLogs?result=error&top=20")
        .await;
    page["value"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|e| {
                    format!(
                        "{} {} {} {} by agent {}, batch {}: {:?} {}",
                        e["time"].as_str().unwrap_or(""),
                        e["action"].as_str().unwrap_or(""),
                        e["sourceAnchor"].as_str().unwrap_or(""),
                        e["result"].as_str().unwrap_or(""),
                        e["agentId"].as_str().unwrap_or(""),
                        e["batchId"].as_str().unwrap_or(""),
                        e["errorCode"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|| format!("(no provisioning log: {page})"))
}

/// Which of the two holds the lease (index into `agents`), per the tenant.
pub async fn holder(t: &TenantFixture, token: &str, agents: &[Agent; 2]) -> Option<usize> {
    let (id, _) = ha::lease(t, token).await?;
    agents.iter().position(|a| a.id == id)
}

/// A cloud reset through Graph: its operation path and request id, once the tenant accepted it
/// (202; it answers 503 while no agent has registered a writeback key yet).
pub async fn reset(t: &TenantFixture, ga: &str, upn: &str, password: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = t
            .client
            .post(t.at(&format!(
                "/v1.0/users/{upn}/authentication/methods/{PASSWORD_METHOD}/resetPassword"
            )))
            .bearer_auth(ga)
            .json(&json!({ "newPassword": password }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 202 {
            let location = r.headers()["location"].to_str().unwrap().to_owned();
            let path = location[t.url.len()..].to_owned();
            let id = path.rsplit('/').next().unwrap().to_owned();
            return (path, id);
        }
        let body = r.text().await.unwrap_or_default();
        assert!(
            Instant::now() < deadline && (status == 503 || status == 404),
            "reset of {upn} not accepted: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls the operation until it is `succeeded` or `failed`: (status, statusDetail).
pub async fn operation_result(t: &TenantFixture, ga: &str, path: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(WRITEBACK_WAIT_SECS + 60);
    loop {
        let op = t.get_json(ga, path).await;
        let status = op["status"].as_str().unwrap_or("").to_owned();
        if status == "succeeded" || status == "failed" {
            return (status, op["statusDetail"].as_str().unwrap_or("").to_owned());
        }
        assert!(
            Instant::now() < deadline,
            "operation {path} never finished: {op}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An AD password change of a random user in scope (password hash sync's work); returns the line.
pub fn change_password(rng: &mut StdRng, dc: &LabDc, w: &mut World) -> Option<String> {
    let users: Vec<usize> = (0..w.slots.len())
        .filter(|&i| w.slots[i].kind == Kind::User && w.in_scope(&w.slots[i]))
        .collect();
    if users.is_empty() {
        return None;
    }
    let i = users[rng.random_range(0..users.len())];
    let n = w.next();
    let password = format!("Crash!Pw{n}x");
    let dn = w.slots[i].dn();
    dc.ldif_admin(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
        lab::unicode_pwd_base64(&password)
    ));
    w.slots[i].password = password;
    Some(format!("password change of {dn}"))
}
