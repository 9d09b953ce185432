//! The agent's end of the password writeback relay (docs/writeback.md): outbound HTTPS only, like the
//! real product's relay. Enters: the agent's tenant client and its writeback key. Leaves: the requests the
//! tenant holds for the agent's configurations, each new password opened into a zeroizing buffer; the
//! answers sent back. The wire types are `cloudsync_api::writeback`.
//!
//! - [`WritebackKey`]: the agent's X25519 key pair (`crypto_box` 0.9, libsodium sealed boxes). The private
//!   half lives only in the 0600 credentials file (`writeback_private_key`); the public half is
//!   registered with `PUT /api/v1/agents/{id}/writebackKey` ([`register_key`]).
//! - [`poll`]: one long poll, `GET /api/v1/agents/{id}/writeback/requests?waitSeconds=N` (N bounded by the
//!   contract's maximum), with a request timeout longer than the wait.
//! - [`answer`]: `POST …/requests/{requestId}/answer` (the tenant keeps the first answer).

use std::time::Duration;

use base64::Engine as _;
use cloudsync_api::writeback::{
    MAX_ANSWER_MESSAGE_CHARS, MAX_WAIT_SECONDS, WritebackAnswer, WritebackKey as WireKey,
    WritebackRequest, WritebackRequests,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::tenant_client::{TenantClient, TenantError};

/// Why a writeback key or a sealed password cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored private key is not 32 bytes of standard base64.
    #[error(
        "the writeback private key in the credentials file is not 32 bytes of base64; re-run `cloudsync agent install` (it keeps the registration)"
    )]
    BadKey,
    /// The sealed password is not base64, or does not open with this key (sealed to another key).
    #[error("the sealed password does not open with this agent's writeback key")]
    Unseal,
    /// The opened password is not UTF-8.
    #[error("the opened password is not UTF-8")]
    NotUtf8,
}

/// The agent's writeback key pair.
pub struct WritebackKey {
    secret: crypto_box::SecretKey,
}

impl std::fmt::Debug for WritebackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritebackKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

impl WritebackKey {
    /// A new key pair from the OS random generator.
    pub fn generate() -> WritebackKey {
        WritebackKey {
            secret: crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng),
        }
    }

    /// The key stored in the credentials file.
    pub fn from_base64(text: &str) -> Result<WritebackKey, KeyError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::BadKey)?,
        );
        let array: [u8; crypto_box::KEY_SIZE] =
            bytes.as_slice().try_into().map_err(|_| KeyError::BadKey)?;
        Ok(WritebackKey {
            secret: crypto_box::SecretKey::from(array),
        })
    }

    /// The private key as stored (base64).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.secret.to_bytes()))
    }

    /// The public key as registered (base64).
    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.secret.public_key().as_bytes())
    }

    /// Opens a request's sealed password into a zeroizing buffer.
    pub fn open(&self, sealed_base64: &str) -> Result<Zeroizing<String>, KeyError> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(sealed_base64.trim())
            .map_err(|_| KeyError::Unseal)?;
        let plain = Zeroizing::new(self.secret.unseal(&sealed).map_err(|_| KeyError::Unseal)?);
        let text = std::str::from_utf8(&plain).map_err(|_| KeyError::NotUtf8)?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

/// Registers the public key (idempotent: the tenant keeps the latest).
pub async fn register_key(
    client: &TenantClient,
    agent_id: Uuid,
    key: &WritebackKey,
) -> Result<(), TenantError> {
    let url = client.url(&format!("/api/v1/agents/{agent_id}/writebackKey"));
    let body = WireKey {
        public_key: key.public_base64(),
    };
    client
        .send_as_agent(&url, |token| {
            client.http().put(&url).bearer_auth(token).json(&body)
        })
        .await?;
    Ok(())
}

/// One long poll of at most `wait` (bounded by the contract's maximum).
pub async fn poll(
    client: &TenantClient,
    agent_id: Uuid,
    wait: Duration,
) -> Result<Vec<WritebackRequest>, TenantError> {
    let secs = wait.as_secs().clamp(1, MAX_WAIT_SECONDS);
    let url = client.url(&format!(
        "/api/v1/agents/{agent_id}/writeback/requests?waitSeconds={secs}"
    ));
    let requests: WritebackRequests = client
        .agent_json(&url, |token| {
            client
                .http()
                .get(&url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(secs + 15))
        })
        .await?;
    Ok(requests.value)
}

/// Sends the answer to one request; the message is cut to the contract's limit.
pub async fn answer(
    client: &TenantClient,
    agent_id: Uuid,
    request_id: Uuid,
    code: u32,
    message: &str,
) -> Result<(), TenantError> {
    let url = client.url(&format!(
        "/api/v1/agents/{agent_id}/writeback/requests/{request_id}/answer"
    ));
    let body = WritebackAnswer {
        code,
        message: message.chars().take(MAX_ANSWER_MESSAGE_CHARS).collect(),
    };
    client
        .send_as_agent(&url, |token| {
            client.http().post(&url).bearer_auth(token).json(&body)
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_sealed_to_the_public_key_opens_and_nothing_else_does() {
        let key = WritebackKey::generate();
        let back = WritebackKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(back.public_base64(), key.public_base64());
        // Sealed as the tenant seals it: to the public key alone.
        let public_bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(key.public_base64())
            .unwrap()
            .try_into()
            .unwrap();
        let public = crypto_box::PublicKey::from(public_bytes);
        let sealed = public
            .seal(&mut crypto_box::aead::OsRng, "N3w!Passw0rd".as_bytes())
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sealed);
        assert_eq!(back.open(&b64).unwrap().as_str(), "N3w!Passw0rd");
        // Another agent's key cannot open it; garbage is an error, not a panic.
        assert!(WritebackKey::generate().open(&b64).is_err());
        assert!(back.open("not base64 !").is_err());
        assert!(back.open("").is_err());
        assert!(WritebackKey::from_base64("c2hvcnQ=").is_err());
        assert!(!format!("{back:?}").contains(back.to_base64().as_str()));
    }
}
