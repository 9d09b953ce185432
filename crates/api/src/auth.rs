//! OAuth2 token endpoint shapes (`POST /{tenant}/oauth2/v2.0/token`, form-encoded request).
//!
//! Two grants are supported: `client_credentials` (agents: `client_id`, `client_secret`, `scope`) and
//! `password` (the installer's admin sign-in: `client_id`, `username`, `password`, `scope`).

use serde::{Deserialize, Serialize};

/// The public client id of the installer (the password grant's only client): like the real
/// agent's installer, it is a well-known public client, not a secret.
pub const INSTALLER_CLIENT_ID: &str = "cloudsync-installer";

/// The Microsoft Graph resource: admin tokens ask for `https://graph.microsoft.com/.default`.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// The provisioning API's resource: agent tokens ask for `api://cloudsync/.default`.
pub const AGENT_RESOURCE: &str = "api://cloudsync";

/// The directory roles a signed-in user may hold; carried in the token's `roles` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Full control of the tenant, including fault injection at run time.
    GlobalAdministrator,
    /// Manages hybrid identity: registers agents, edits configurations, restarts jobs, reads logs.
    HybridIdentityAdministrator,
    /// A plain user: may sign in, nothing else.
    User,
    /// The application role of a registered provisioning agent (client-credentials tokens).
    Agent,
}

/// The form body of a token request; unknown fields are ignored, as the real endpoint does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenRequest {
    /// `client_credentials` or `password`.
    pub grant_type: String,
    /// The agent's client id (client credentials) or the installer's public client id (password).
    #[serde(default)]
    pub client_id: String,
    /// The agent's secret (client credentials only).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The admin's user principal name (password grant only).
    #[serde(default)]
    pub username: Option<String>,
    /// The admin's password (password grant only).
    #[serde(default)]
    pub password: Option<String>,
    /// The requested scope, e.g. `https://graph.microsoft.com/.default`.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A successful token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the token in seconds.
    pub expires_in: u64,
    /// The signed access token.
    pub access_token: String,
    /// The granted scope.
    #[serde(default)]
    pub scope: String,
}

/// An OAuth2 error response in Microsoft's shape (`error`, `error_description`, `error_codes`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthError {
    /// The RFC 6749 error, e.g. `invalid_client`, `invalid_grant`, `unsupported_grant_type`.
    pub error: String,
    /// A human-readable description starting with an `AADSTS` code.
    pub error_description: String,
    /// The numeric AADSTS codes.
    #[serde(default)]
    pub error_codes: Vec<u32>,
}
