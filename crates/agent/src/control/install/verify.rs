//! The last step: "Your agent configuration was successfully verified" only when the installed
//! agent can do its work. Enters: the configuration as written (read back through the agent's own
//! loader) and the credentials file. Leaves: one [`Verified`] line per check: a heartbeat round
//! trip with the new credentials, then per domain a bind as the service account (password from
//! its file) and one read of the domain's root.

use ldap3::Scope;

use crate::config::Config;
use crate::control::credentials::AgentCredentials;
use crate::control::heartbeat::send_heartbeat;
use crate::control::tenant_client::TenantClient;
use crate::source::ldap::conn::connect;

/// The message printed when every check passed (the seed's words).
pub const VERIFIED: &str = "Your agent configuration was successfully verified";

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Verified {
    /// What was checked, e.g. `heartbeat` or `corp.example.test: bind`.
    pub what: String,
    /// `Ok(detail)` or `Err(why)`.
    pub result: Result<String, String>,
}

/// Runs every check; all of them run even when one fails, so the admin sees every problem.
pub async fn verify(config: &Config) -> Vec<Verified> {
    let mut out = Vec::new();
    match &config.tenant {
        None => out.push(Verified {
            what: "heartbeat".into(),
            result: Err("the configuration has no [tenant] section".into()),
        }),
        Some(tenant) => {
            let result = async {
                let creds =
                    AgentCredentials::load(&tenant.credentials_file).map_err(|e| e.to_string())?;
                let client = TenantClient::agent(tenant, &creds).map_err(|e| e.to_string())?;
                let answer = send_heartbeat(&client, &creds, Vec::new(), Vec::new())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(format!(
                    "agent {} answered at {} ({} configuration(s))",
                    creds.agent_id,
                    answer.server_time,
                    answer.configurations.len()
                ))
            }
            .await;
            out.push(Verified {
                what: "heartbeat".into(),
                result,
            });
        }
    }
    for d in config.domains.values() {
        let name = &d.dns_name;
        match connect(d).await {
            Err(e) => out.push(Verified {
                what: format!("{name}: bind as {}", d.bind_dn),
                result: Err(e.to_string()),
            }),
            Ok(mut dc) => {
                out.push(Verified {
                    what: format!("{name}: bind as {}", d.bind_dn),
                    result: Ok("bound".into()),
                });
                let base = d.base();
                let read = match dc
                    .op()
                    .search(&base, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
                    .await
                    .and_then(|r| r.success())
                {
                    Ok((entries, _)) if !entries.is_empty() => Ok("readable".to_string()),
                    Ok(_) => Err("no entry returned: grant the service account read access".into()),
                    Err(e) => Err(e.to_string()),
                };
                out.push(Verified {
                    what: format!("{name}: read {base}"),
                    result: read,
                });
                dc.close().await;
            }
        }
    }
    out
}

/// Whether every check passed.
pub fn all_ok(checks: &[Verified]) -> bool {
    !checks.is_empty() && checks.iter().all(|c| c.result.is_ok())
}
