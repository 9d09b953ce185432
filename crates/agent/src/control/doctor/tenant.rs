//! Checks of the tenant: reachability and TLS with `[tenant] ca_file`, the credentials file
//! (present, 0600, readable), a token for the agent, a heartbeat round trip, and the clock against
//! the heartbeat answer's `server_time`. Enters: `[tenant]` and `now`. Leaves: [`Check`]s.

use std::time::SystemTime;

use super::{Check, skew};
use crate::control::credentials::{AgentCredentials, CredentialsError};
use crate::control::heartbeat::send_heartbeat;
use crate::control::tenant_client::{TenantClient, TenantConfig, TenantError};

const CA_FIX: &str =
    "set [tenant] ca_file to a PEM file holding the CA that issued the tenant's certificate";
const REGISTER_FIX: &str = "register the agent again: cloudsync agent register --config FILE";

/// Every tenant check, each step only once the one before passed.
pub async fn check(t: &TenantConfig, now: SystemTime) -> Vec<Check> {
    let mut out = Vec::new();
    let what = format!("tenant: reach {}", t.url);
    let installer = match TenantClient::installer(t) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail("tenant: TLS", e.to_string(), CA_FIX));
            return out;
        }
    };
    match installer.http().get(installer.url("/")).send().await {
        Ok(r) => out.push(Check::ok(
            what,
            format!(
                "answered HTTP {} over a verified connection",
                r.status().as_u16()
            ),
        )),
        Err(e) => {
            out.push(transport_failure(&what, &e));
            return out;
        }
    }

    let path = &t.credentials_file;
    let what = format!("tenant: credentials {}", path.display());
    if !path.exists() {
        out.push(Check::fail(what, "missing", REGISTER_FIX));
        return out;
    }
    let creds = match AgentCredentials::load(path) {
        Ok(c) => {
            out.push(Check::ok(what, "present, mode 0600"));
            c
        }
        Err(e) => {
            let fix = match &e {
                CredentialsError::TooOpen { path, .. } => format!("chmod 600 {}", path.display()),
                CredentialsError::Io { .. } => {
                    "make the file readable by the agent's user (owner, mode 0600)".to_string()
                }
                _ => REGISTER_FIX.to_string(),
            };
            out.push(Check::fail(what, e.to_string(), fix));
            return out;
        }
    };

    let client = match TenantClient::agent(t, &creds) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail("tenant: TLS", e.to_string(), CA_FIX));
            return out;
        }
    };
    let what = format!("tenant: token for agent {}", creds.agent_id);
    match client.agent_token(true).await {
        Ok(_) => out.push(Check::ok(what, "issued")),
        Err(e) => {
            let fix = match &e {
                TenantError::SignIn { .. } => REGISTER_FIX,
                _ => "check [tenant] url and tenant_id",
            };
            out.push(Check::fail(what, e.to_string(), fix));
            return out;
        }
    }

    let what = "tenant: heartbeat";
    match send_heartbeat(&client, &creds, Vec::new(), Vec::new()).await {
        Ok(answer) => {
            out.push(Check::ok(
                what,
                format!(
                    "answered; {} configurations served",
                    answer.configurations.len()
                ),
            ));
            let server = time::OffsetDateTime::parse(
                &answer.server_time,
                &time::format_description::well_known::Rfc3339,
            );
            out.push(match server {
                Ok(s) => skew::check("tenant: clock", "the tenant", now, s.into()),
                Err(_) => Check::warn(
                    "tenant: clock",
                    format!("unreadable server_time {:?}", answer.server_time),
                    "compare `date -u` here with the tenant's clock by hand",
                ),
            });
        }
        Err(e) => {
            let fix = match &e {
                TenantError::Status { status: 404, .. } => REGISTER_FIX,
                _ => "check the tenant's logs for this agent's heartbeat",
            };
            out.push(Check::fail(what, e.to_string(), fix));
        }
    }
    out
}

/// A transport error: a TLS refusal (names the CA fix) or an unreachable tenant.
fn transport_failure(what: &str, e: &reqwest::Error) -> Check {
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        let fix = if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            "use a host name the tenant's certificate names in [tenant] url"
        } else if lower.contains("expired") {
            "renew the tenant's certificate (it has expired)"
        } else {
            CA_FIX
        };
        Check::fail("tenant: TLS", text, fix)
    } else {
        Check::fail(
            what,
            text,
            "check [tenant] url, that the tenant is running, and that this host can reach it (proxy, firewall)",
        )
    }
}
