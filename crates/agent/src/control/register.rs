//! The installer flow: admin sign-in (password grant), agent registration, one configuration per
//! configured domain (reused when the tenant already has one), credentials file written 0600.

use super::cloud::{Cloud, CloudError, host_name};
use super::credentials::AgentCredentials;
use crate::config::Config;

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
    let cloud = Cloud::new(tenant)?;
    let admin = cloud.admin_token(admin_upn, admin_password).await?;
    let domains: Vec<String> = config
        .domains
        .values()
        .map(|d| d.dns_name.clone())
        .collect();
    let reg = cloud
        .register_agent(admin.as_str(), &host_name(), &domains)
        .await?;
    let mut configurations = Vec::new();
    for d in config.domains.values() {
        let (id, created) = match d.configuration_id {
            Some(id) => (id, false),
            None => {
                cloud
                    .ensure_configuration(
                        admin.as_str(),
                        &d.dns_name,
                        config.projection.delete_threshold,
                    )
                    .await?
            }
        };
        configurations.push((d.dns_name.to_ascii_lowercase(), id, created));
    }
    let creds = AgentCredentials {
        agent_id: reg.agent_id,
        tenant_id: reg.tenant_id,
        client_id: reg.client_id,
        client_secret: zeroize::Zeroizing::new(reg.client_secret),
        token_endpoint: reg.token_endpoint,
        configurations: configurations
            .iter()
            .map(|(d, id, _)| (d.clone(), *id))
            .collect(),
    };
    creds
        .save(&tenant.credentials_file)
        .map_err(CloudError::from)?;
    tracing::info!(agent = %creds.agent_id, file = %tenant.credentials_file.display(), "Agent registered.");
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
    Cloud(#[from] CloudError),
}
