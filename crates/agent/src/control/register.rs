//! The installer flow: admin sign-in (password grant), agent registration, one configuration per
//! configured domain (reused when the tenant already has one), credentials file written 0600.
//! [`register_as`] is the same with an admin already signed in, and keeps an installed agent's
//! registration on an update in place (`agent install` run again).

use uuid::Uuid;

use super::credentials::AgentCredentials;
use super::tenant_client::{TenantClient, TenantError, host_name};
use crate::config::Config;
use cloudsync_api::Environment;
use cloudsync_api::agent::{RegistrationRequest, RegistrationResponse};
use cloudsync_api::config::{Configuration, ConfigurationSpec};

/// What registration did.
#[derive(Debug)]
pub struct Registered {
    /// The credentials written to the file.
    pub creds: AgentCredentials,
    /// Per domain: (DNS name, configuration id, created now?).
    pub configurations: Vec<(String, uuid::Uuid, bool)>,
}

/// Registers this agent for every configured domain and writes `[tenant] credentials_file`.
pub async fn register(
    config: &Config,
    admin_upn: &str,
    admin_password: &str,
) -> Result<Registered, RegisterError> {
    let tenant = config.tenant.as_ref().ok_or(RegisterError::NoTenant)?;
    let client = TenantClient::installer(tenant)?;
    let admin = client.admin_token(admin_upn, admin_password).await?;
    register_as(config, &client, admin.as_str(), None).await
}

/// [`register`] with an admin already signed in (the installer's session). With `keep` (an update
/// in place of an installed agent) the agent is not registered again: its id and client secret
/// stay, and only the configurations of the domains are looked up or created.
pub async fn register_as(
    config: &Config,
    client: &TenantClient,
    admin: &str,
    keep: Option<&AgentCredentials>,
) -> Result<Registered, RegisterError> {
    let tenant = config.tenant.as_ref().ok_or(RegisterError::NoTenant)?;
    let domains: Vec<String> = config
        .domains
        .values()
        .map(|d| d.dns_name.clone())
        .collect();
    let mut creds = match keep {
        Some(existing) => {
            // The tenant pairs an agent with the configurations of its recorded domains: an update
            // in place that adds (or drops) a domain says so.
            set_agent_domains(client, admin, existing.agent_id, &domains).await?;
            existing.clone()
        }
        None => {
            let reg =
                register_agent(client, admin, tenant.environment, &host_name(), &domains).await?;
            AgentCredentials {
                agent_id: reg.agent_id,
                tenant_id: reg.tenant_id,
                client_id: reg.client_id,
                client_secret: zeroize::Zeroizing::new(reg.client_secret),
                token_endpoint: reg.token_endpoint,
                configurations: Default::default(),
                writeback_private_key: None,
            }
        }
    };
    let mut configurations = Vec::new();
    for d in config.domains.values() {
        let (id, created) = match d.configuration_id {
            Some(id) => (id, false),
            None => {
                ensure_configuration(
                    client,
                    admin,
                    &d.dns_name,
                    config.projection.delete_threshold,
                )
                .await?
            }
        };
        configurations.push((d.dns_name.to_ascii_lowercase(), id, created));
    }
    creds.configurations = configurations
        .iter()
        .map(|(d, id, _)| (d.clone(), *id))
        .collect();
    // The key writeback requests are sealed to (kept on an update in place); the daemon registers
    // its public half.
    if creds.writeback_private_key.is_none() {
        creds.writeback_private_key =
            Some(super::writeback_relay::WritebackKey::generate().to_base64());
    }
    creds
        .save(&tenant.credentials_file)
        .map_err(TenantError::from)?;
    tracing::info!(agent = %creds.agent_id, kept = keep.is_some(), file = %tenant.credentials_file.display(), "Agent registered.");
    Ok(Registered {
        creds,
        configurations,
    })
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The configuration has no `[tenant]` section.
    #[error("the configuration has no [tenant] section")]
    NoTenant,
    /// A call to the tenant failed (wrong password, missing role, unreachable, …).
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

/// Registers the agent for `domains` and returns its credentials (the secret is shown only here).
async fn register_agent(
    client: &TenantClient,
    admin: &str,
    environment: Environment,
    host_name: &str,
    domains: &[String],
) -> Result<RegistrationResponse, TenantError> {
    let url = client.url("/api/v1/agents");
    let body = RegistrationRequest {
        host_name: host_name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        environment,
        domains: domains.to_vec(),
    };
    client
        .send_json(
            client.http().post(&url).bearer_auth(admin).json(&body),
            &url,
        )
        .await
}

/// Replaces the domains the tenant records for an installed agent (`PUT /api/v1/agents/{id}/domains`).
async fn set_agent_domains(
    client: &TenantClient,
    admin: &str,
    agent_id: Uuid,
    domains: &[String],
) -> Result<(), TenantError> {
    let url = client.url(&format!("/api/v1/agents/{agent_id}/domains"));
    let body = cloudsync_api::agent::AgentDomains {
        domains: domains.to_vec(),
    };
    let _: cloudsync_api::agent::AgentInfo = client
        .send_json(client.http().put(&url).bearer_auth(admin).json(&body), &url)
        .await?;
    Ok(())
}

/// The configuration of `domain`: an existing one is reused, else one is created.
/// Returns the id and whether it was created.
async fn ensure_configuration(
    client: &TenantClient,
    admin: &str,
    domain: &str,
    delete_threshold: u32,
) -> Result<(Uuid, bool), TenantError> {
    let url = client.url("/api/v1/configurations");
    #[derive(serde::Deserialize)]
    struct List {
        value: Vec<Configuration>,
    }
    let list: List = client
        .send_json(client.http().get(&url).bearer_auth(admin), &url)
        .await?;
    if let Some(c) = list
        .value
        .iter()
        .find(|c| c.spec.domain.eq_ignore_ascii_case(domain))
    {
        return Ok((c.id, false));
    }
    let spec = ConfigurationSpec {
        domain: domain.to_string(),
        scope: Default::default(),
        mappings: Vec::new(),
        password_hash_sync: true,
        password_writeback: false,
        allow_unlock: false,
        delete_threshold,
    };
    let created: Configuration = client
        .send_json(
            client.http().post(&url).bearer_auth(admin).json(&spec),
            &url,
        )
        .await?;
    Ok((created.id, true))
}
