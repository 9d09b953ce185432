//! Signed access tokens: compact JWS with HS256 over JSON claims.
//!
//! Tokens are opaque to clients (as Microsoft advises for access tokens); only the tenant verifies them,
//! with a 32-byte key generated once and kept in the state store. Claims follow Entra's v2 shape:
//! `iss`, `aud`, `tid`, `sub`, `oid`, `roles`, `iat`, `nbf`, `exp`, plus `upn` for users and
//! `appid` for agents. [`TokenSigner::verify`] accepts a token only when, besides signature, expiry
//! and tenant, its issuer is this tenant's and its audience is one of [`AUDIENCES`]: the API is the
//! resource those name, and a token issued for another resource is not a token for it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use cloudsync_api::auth::{AGENT_RESOURCE, GRAPH_RESOURCE, Role};

use super::orgid::constant_time_eq;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or the header/claims are not the expected JSON.
    #[error("the access token is malformed")]
    Malformed,
    /// The signature does not match.
    #[error("the access token's signature is invalid")]
    BadSignature,
    /// The token has expired (or is not valid yet).
    #[error("the access token has expired")]
    Expired,
    /// The token was issued for another tenant.
    #[error("the access token was issued for another tenant")]
    WrongTenant,
    /// The token's issuer is not this tenant's.
    #[error("the access token's issuer is not this tenant")]
    WrongIssuer,
    /// The token was issued for another resource.
    #[error("the access token's audience is not this API")]
    WrongAudience,
}

/// The audiences (resources) this tenant's API accepts: Microsoft Graph and the provisioning API.
pub const AUDIENCES: &[&str] = &[GRAPH_RESOURCE, AGENT_RESOURCE];

/// The claims the tenant puts into and reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: `https://<login host>/<tenant id>/v2.0`.
    pub iss: String,
    /// Audience: the resource of the requested scope.
    pub aud: String,
    /// Tenant id.
    pub tid: Uuid,
    /// Subject: the user's or agent's object id.
    pub sub: Uuid,
    /// Object id (same as `sub`).
    pub oid: Uuid,
    /// Roles.
    pub roles: Vec<Role>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The user's sign-in name (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// The agent's client id (app tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
}

/// Signs and verifies tokens with one HS256 key.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
    tenant_id: Uuid,
    issuer: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

const HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenSigner {
    /// A signer for `tenant_id` with `key` (32 random bytes) that accepts only tokens of `issuer`.
    pub fn new(key: Vec<u8>, tenant_id: Uuid, issuer: String) -> TokenSigner {
        TokenSigner {
            key,
            tenant_id,
            issuer,
        }
    }

    /// The issuer this tenant puts into (and requires of) its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn mac(&self, signing_input: &[u8]) -> [u8; 32] {
        match hmac::Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(signing_input);
                mac.finalize().into_bytes().into()
            }
            // HMAC takes keys of any length; unreachable, but never panic.
            Err(_) => [0u8; 32],
        }
    }

    /// Signs the claims into a compact token.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = URL_SAFE_NO_PAD.encode(HEADER);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature = self.mac(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// Verifies signature, expiry and tenant, returning the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        if !constant_time_eq(&signature, &self.mac(signing_input.as_bytes())) {
            return Err(TokenError::BadSignature);
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        if header != HEADER {
            return Err(TokenError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if now >= claims.exp || now + 300 < claims.nbf {
            return Err(TokenError::Expired);
        }
        if claims.tid != self.tenant_id {
            return Err(TokenError::WrongTenant);
        }
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !AUDIENCES.contains(&claims.aud.as_str()) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://login.microsoftonline.com/x/v2.0";

    fn claims(tid: Uuid, exp: i64) -> Claims {
        let id = Uuid::new_v4();
        Claims {
            iss: ISS.into(),
            aud: "https://graph.microsoft.com".into(),
            tid,
            sub: id,
            oid: id,
            roles: vec![Role::GlobalAdministrator],
            iat: 0,
            nbf: 0,
            exp,
            upn: Some("a@b".into()),
            appid: None,
        }
    }

    #[test]
    fn round_trips_and_rejects_tampering_expiry_and_other_tenants() {
        let tid = Uuid::new_v4();
        let signer = TokenSigner::new(vec![7; 32], tid, ISS.into());
        let c = claims(tid, 1000);
        let token = signer.sign(&c);
        assert_eq!(signer.verify(&token, 10), Ok(c.clone()));
        assert_eq!(signer.verify(&token, 1000), Err(TokenError::Expired));

        let other_key = TokenSigner::new(vec![8; 32], tid, ISS.into());
        assert_eq!(other_key.verify(&token, 10), Err(TokenError::BadSignature));

        // Swap in claims with more roles but keep the old signature.
        let mut forged = c.clone();
        forged.roles.push(Role::HybridIdentityAdministrator);
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(signer.verify(&tampered, 10), Err(TokenError::BadSignature));

        let foreign = signer.sign(&claims(Uuid::new_v4(), 1000));
        assert_eq!(signer.verify(&foreign, 10), Err(TokenError::WrongTenant));
        assert_eq!(signer.verify("abc", 10), Err(TokenError::Malformed));
    }

    #[test]
    fn rejects_other_issuers_and_audiences() {
        let tid = Uuid::new_v4();
        let signer = TokenSigner::new(vec![7; 32], tid, ISS.into());
        let agent = Claims {
            aud: "api://cloudsync".into(),
            ..claims(tid, 1000)
        };
        assert!(signer.verify(&signer.sign(&agent), 10).is_ok());
        let evil = Claims {
            aud: "https://evil.example".into(),
            ..claims(tid, 1000)
        };
        assert_eq!(
            signer.verify(&signer.sign(&evil), 10),
            Err(TokenError::WrongAudience)
        );
        let other_issuer = Claims {
            iss: "https://login.microsoftonline.us/x/v2.0".into(),
            ..claims(tid, 1000)
        };
        assert_eq!(
            signer.verify(&signer.sign(&other_issuer), 10),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn signature_is_standard_hs256() {
        // RFC 7515 Appendix A.1 key and signing input; the published signature.
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let signer = TokenSigner::new(key, Uuid::nil(), String::new());
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(signer.mac(input.as_bytes())),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn verify_never_panics_and_never_accepts_garbage(s in "[A-Za-z0-9_.-]{0,200}") {
            let signer = TokenSigner::new(vec![1; 32], Uuid::nil(), String::new());
            prop_assert!(signer.verify(&s, 0).is_err());
        }
    }
}
