//! Password writeback: cloud resets and unlocks carried to the agent, and the agent's answers.
//!
//! Flow (issue 14, `/work/tasks/writeback-contract.md`):
//! 1. The agent registers an X25519 public key: `PUT /api/v1/agents/{id}/writebackKey` with a
//!    [`WritebackKey`] (the agent itself only; 204).
//! 2. A reset or unlock asked of the tenant (Graph admin reset, `PATCH /v1.0/users/{id}` with a
//!    `passwordProfile`, or self-service) becomes a [`WritebackRequest`] queued in the tenant's memory for
//!    the user's configuration. A new password is sealed on receipt to the agent's key (a libsodium
//!    sealed box, `crypto_box` 0.9 `seal`) and the cleartext dropped: only the agent can open it.
//! 3. The agent long-polls `GET /api/v1/agents/{id}/writeback/requests?waitSeconds=N` (N ≤
//!    [`MAX_WAIT_SECONDS`], default [`DEFAULT_WAIT_SECONDS`]) and receives [`WritebackRequests`] for the
//!    configurations it is paired with. A request handed out and not answered within
//!    [`IN_FLIGHT_SECONDS`] is handed out again, to the same agent only; the agent remembers the ids it
//!    applied (or began) and re-sends the same answer (or "interrupted") instead of applying twice. Expired requests are never handed out.
//! 4. The agent answers `POST /api/v1/agents/{id}/writeback/requests/{requestId}/answer` with a
//!    [`WritebackAnswer`] (204; the first answer wins, later ones are ignored; an unknown request or one
//!    of another agent's configuration → 404).
//!
//! The result codes are the real product's ([`SUCCESS`], [`OTHER`] … [`DIRECTORY_CONFIGURATION`]);
//! [`description`] names each one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest long poll the tenant holds, in seconds; larger `waitSeconds` are clamped to it.
pub const MAX_WAIT_SECONDS: u64 = 30;
/// The long poll's length when the agent names none, in seconds.
pub const DEFAULT_WAIT_SECONDS: u64 = 25;
/// A request handed out and not answered within this many seconds is handed out again.
pub const IN_FLIGHT_SECONDS: u64 = 30;
/// The longest [`WritebackAnswer::message`] the tenant accepts, in characters.
pub const MAX_ANSWER_MESSAGE_CHARS: usize = 1024;
/// The most requests one long poll returns.
pub const MAX_REQUESTS_PER_POLL: usize = 100;

/// What the agent is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WritebackKind {
    /// Replace the user's password (`unicodePwd`), optionally forcing a change at next sign-in.
    Reset,
    /// Clear the user's lockout (`lockoutTime = 0`) without touching the password.
    Unlock,
}

/// `PUT /api/v1/agents/{id}/writebackKey`: the agent's X25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WritebackKey {
    /// 32 bytes, standard base64.
    pub public_key: String,
}

/// One request as the agent receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WritebackRequest {
    /// The idempotency key: the same request handed out twice carries the same id.
    pub id: Uuid,
    /// The configuration (domain) the user belongs to.
    pub configuration_id: Uuid,
    /// Reset or unlock.
    pub kind: WritebackKind,
    /// The user's source anchor as the agent pushed it (`onPremisesImmutableId`).
    pub source_anchor: String,
    /// The user's UPN, for messages and logs only.
    pub user_principal_name: String,
    /// Reset only: standard base64 of a sealed box (X25519, XSalsa20-Poly1305) of the UTF-8 password.
    #[serde(default)]
    pub sealed_password: Option<String>,
    /// Reset only: the user must change the password at next sign-in (`pwdLastSet = 0`).
    #[serde(default)]
    pub force_change_at_next_sign_in: bool,
    /// RFC 3339; after it the agent answers [`OTHER`] ("expired") without applying.
    pub expires_at: String,
    /// `admin:<upn>` or `self-service:<upn>`.
    pub requested_by: String,
}

/// The answer to a long poll.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WritebackRequests {
    /// Pending requests, possibly none.
    pub value: Vec<WritebackRequest>,
}

/// The agent's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WritebackAnswer {
    /// [`SUCCESS`] or one of the 33001–33009 codes.
    pub code: u32,
    /// AD's text or the agent's explanation (at most [`MAX_ANSWER_MESSAGE_CHARS`]).
    pub message: String,
}

/// `PUT /api/v1/configurations/{id}/writeback` (admins): both writeback switches of a configuration,
/// the `Set-AADCloudSyncPasswordWritebackConfiguration` analogue (`cloudsync agent writeback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WritebackSwitches {
    /// Password writeback (`ConfigurationSpec::password_writeback`).
    pub enabled: bool,
    /// Users may unlock their account without resetting the password
    /// (`ConfigurationSpec::allow_unlock`); omitted means false.
    #[serde(default)]
    pub allow_unlock: bool,
}

/// The answer of `GET|PUT /api/v1/configurations/{id}/writeback`: the switches and whether an agent
/// can carry writeback out for the configuration now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WritebackStatus {
    /// The configuration.
    pub configuration_id: Uuid,
    /// The configuration's revision after the change.
    pub revision: u64,
    /// Password writeback is on.
    pub enabled: bool,
    /// Unlock without reset is allowed.
    pub allow_unlock: bool,
    /// Agents paired with the configuration that are Active and have registered a writeback key;
    /// writeback requests are refused while this is empty.
    pub ready_agents: Vec<Uuid>,
}

/// Applied.
pub const SUCCESS: u32 = 0;
/// Anything else, with AD's text (also: the request expired).
pub const OTHER: u32 = 33001;
/// No user with the source anchor.
pub const USER_NOT_FOUND: u32 = 33002;
/// Several users matched the source anchor.
pub const SEVERAL_MATCHES: u32 = 33003;
/// The service account may not do it, or the account is protected (`adminCount=1`).
pub const PERMISSIONS: u32 = 33004;
/// The account is disabled.
pub const DISABLED: u32 = 33005;
/// The account is locked out.
pub const LOCKED_OUT: u32 = 33006;
/// The current password given is wrong.
pub const WRONG_CURRENT_PASSWORD: u32 = 33007;
/// The new password does not meet AD's policy (AD's reason in the message).
pub const PASSWORD_POLICY: u32 = 33008;
/// The directory is configured so the agent cannot do it.
pub const DIRECTORY_CONFIGURATION: u32 = 33009;

/// Whether `code` is one the contract knows.
pub fn is_known_code(code: u32) -> bool {
    code == SUCCESS || (OTHER..=DIRECTORY_CONFIGURATION).contains(&code)
}

/// A short description of a result code, as the product documents it.
pub fn description(code: u32) -> &'static str {
    match code {
        SUCCESS => "The password was written back.",
        OTHER => "The on-premises directory refused the change.",
        USER_NOT_FOUND => "The user was not found in the on-premises directory.",
        SEVERAL_MATCHES => "Several users in the on-premises directory matched.",
        PERMISSIONS => "The service account lacks the permissions, or the account is protected.",
        DISABLED => "The on-premises account is disabled.",
        LOCKED_OUT => "The on-premises account is locked out.",
        WRONG_CURRENT_PASSWORD => "The current password is wrong.",
        PASSWORD_POLICY => "The password does not meet the on-premises password policy.",
        DIRECTORY_CONFIGURATION => "The on-premises directory's configuration prevents the change.",
        _ => "Unknown result code.",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_camel_case() {
        let request = WritebackRequest {
            id: Uuid::nil(),
            configuration_id: Uuid::nil(),
            kind: WritebackKind::Unlock,
            source_anchor: "AAAA".into(),
            user_principal_name: "a@b".into(),
            sealed_password: None,
            force_change_at_next_sign_in: false,
            expires_at: "2025-01-01T00:00:00Z".into(),
            requested_by: "admin:x@y".into(),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["kind"], "unlock");
        assert_eq!(json["sourceAnchor"], "AAAA");
        assert_eq!(json["forceChangeAtNextSignIn"], false);
        let back: WritebackRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn codes_are_described() {
        for code in [SUCCESS, OTHER, PASSWORD_POLICY, DIRECTORY_CONFIGURATION] {
            assert!(is_known_code(code));
            assert_ne!(description(code), description(1));
        }
        assert!(!is_known_code(33010));
        assert!(!is_known_code(1));
    }
}
