//! The tenant administrator's session during an install: sign-in, the role check, and the admin
//! calls the installer and the cmdlets make. Enters: the `[tenant]` settings, a UPN and a password
//! (held only in memory). Leaves: an [`AdminSession`] (the client and the admin token), or a
//! refusal that names the account and the role it has or needs.
//!
//! The role is checked right after sign-in by one admin-only read (`GET /api/v1/agents`): the
//! tenant answers 403 naming the roles the call needs and the roles the caller has, and that
//! answer is passed on, so the wizard refuses a wrong account at the sign-in step, not at the end.
//! The tenant's OpenID configuration then says which cloud it is in; another environment than the
//! one chosen (e.g. `ENVIRONMENTNAME=AzureUSGovernment` against a public-cloud tenant) is refused.

use uuid::Uuid;
use zeroize::Zeroizing;

use super::InstallError;
use crate::control::tenant_client::{TenantClient, TenantConfig, TenantError};
use cloudsync_api::config::Configuration;

/// A signed-in tenant administrator (Global or Hybrid Identity Administrator).
pub struct AdminSession {
    /// The installer's client for the tenant.
    pub client: TenantClient,
    /// The admin's token (never printed).
    pub token: Zeroizing<String>,
    /// The UPN that signed in.
    pub upn: String,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("upn", &self.upn)
            .finish_non_exhaustive()
    }
}

/// Signs in as `upn` and checks the role; see the module doc.
pub async fn sign_in(
    tenant: &TenantConfig,
    upn: &str,
    password: &str,
) -> Result<AdminSession, InstallError> {
    let client = TenantClient::installer(tenant)?;
    let token = client
        .admin_token(upn, password)
        .await
        .map_err(|e| signin_error(upn, e))?;
    let session = AdminSession {
        client,
        token,
        upn: upn.to_string(),
    };
    let url = session.client.url("/api/v1/agents");
    let _: serde_json::Value = session
        .client
        .send_json(
            session
                .client
                .http()
                .get(&url)
                .bearer_auth(session.token.as_str()),
            &url,
        )
        .await
        .map_err(|e| signin_error(upn, e))?;
    check_environment(&session, tenant).await?;
    Ok(session)
}

/// The tenant's OpenID configuration names its cloud (`cloud_instance_name`, as Entra's does): an
/// install for another environment is refused here, before anything is written.
async fn check_environment(
    session: &AdminSession,
    tenant: &TenantConfig,
) -> Result<(), InstallError> {
    let url = session.client.url(&format!(
        "/{}/v2.0/.well-known/openid-configuration",
        tenant.tenant_id
    ));
    let answer: serde_json::Value = session
        .client
        .send_json(session.client.http().get(&url), &url)
        .await?;
    let chosen = tenant.environment.endpoints().cloud_instance_name;
    match answer.get("cloud_instance_name").and_then(|v| v.as_str()) {
        Some(cloud) if !cloud.eq_ignore_ascii_case(chosen) => Err(InstallError::WrongEnvironment {
            chosen: tenant.environment,
            tenant_cloud: cloud.to_string(),
        }),
        _ => Ok(()),
    }
}

fn signin_error(upn: &str, e: TenantError) -> InstallError {
    match e {
        TenantError::SignIn { description, .. } => InstallError::SignIn {
            upn: upn.to_string(),
            detail: description,
        },
        TenantError::Forbidden { message, .. } => InstallError::Role {
            upn: upn.to_string(),
            detail: message,
        },
        other => InstallError::Tenant(other),
    }
}

impl AdminSession {
    /// `DELETE /api/v1/agents/{id}`; `Ok(false)` when the tenant no longer knows the agent.
    pub async fn delete_agent(&self, agent_id: Uuid) -> Result<bool, InstallError> {
        let url = self.client.url(&format!("/api/v1/agents/{agent_id}"));
        let response = self
            .client
            .http()
            .delete(&url)
            .bearer_auth(self.token.as_str())
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(source) => {
                return Err(InstallError::Tenant(TenantError::Unreachable {
                    url,
                    source,
                }));
            }
        };
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => {
                let body = response.text().await.unwrap_or_default();
                Err(InstallError::Tenant(TenantError::Status {
                    url,
                    status,
                    code: String::new(),
                    message: body,
                    retry_after: None,
                }))
            }
        }
    }

    /// Reads configuration `id`.
    pub async fn configuration(&self, id: Uuid) -> Result<Configuration, InstallError> {
        let url = self.client.url(&format!("/api/v1/configurations/{id}"));
        Ok(self
            .client
            .send_json(
                self.client
                    .http()
                    .get(&url)
                    .bearer_auth(self.token.as_str()),
                &url,
            )
            .await?)
    }

    /// Sets configuration `id`'s writeback switches (`PUT /api/v1/configurations/{id}/writeback`, the
    /// `Set-AADCloudSyncPasswordWritebackConfiguration` analogue); the answer names the agents ready
    /// to carry writeback out.
    pub async fn set_writeback(
        &self,
        id: Uuid,
        switches: cloudsync_api::writeback::WritebackSwitches,
    ) -> Result<cloudsync_api::writeback::WritebackStatus, InstallError> {
        let url = self
            .client
            .url(&format!("/api/v1/configurations/{id}/writeback"));
        Ok(self
            .client
            .send_json(
                self.client
                    .http()
                    .put(&url)
                    .bearer_auth(self.token.as_str())
                    .json(&switches),
                &url,
            )
            .await?)
    }

    /// Sets configuration `id`'s `passwordHashSync` (`PUT` of its spec with the one field changed).
    pub async fn set_password_hash_sync(
        &self,
        id: Uuid,
        enabled: bool,
    ) -> Result<Configuration, InstallError> {
        let mut spec = self.configuration(id).await?.spec;
        spec.password_hash_sync = enabled;
        let url = self.client.url(&format!("/api/v1/configurations/{id}"));
        Ok(self
            .client
            .send_json(
                self.client
                    .http()
                    .put(&url)
                    .bearer_auth(self.token.as_str())
                    .json(&spec),
                &url,
            )
            .await?)
    }
}
