//! The daemon's password writeback task (docs/writeback.md). Enters: the agent's configuration (its
//! domains), its credentials (the writeback key; the credentials file gets one if an older install had
//! none), the tenant client, the journal. Leaves: resets and unlocks written into AD
//! ([`crate::writeback`]), one [`Event::WritebackAnswered`] per request in the journal, the answer sent
//! to the tenant ([`crate::control::writeback_relay`]).
//!
//! Steps, per request of a long poll:
//! 1. Answered before (the tenant hands a request out again when its answer was lost): the same answer
//!    is sent again, nothing is applied twice.
//! 2. Begun before but never answered (the agent died while applying it): not applied again; answered
//!    33001 "interrupted", since the account may or may not have changed.
//! 3. Expired, or for a configuration this agent does not serve: answered without touching AD.
//! 4. Otherwise: marked begun (durably), the sealed password opened, AD written over the domain's own
//!    connection (the service account, a gMSA included; one bound connection per domain is kept between
//!    requests while used within a minute), the answer appended to the journal, recorded as answered
//!    (durably), then sent.
//!
//! The record of begun and answered requests is `writeback-requests.json` beside the credentials file
//! (0600, written by rename); answers older than a day are dropped from it (the tenant's requests expire
//! within a minute).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudsync_api::writeback::{WritebackKind, WritebackRequest};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::control::credentials::AgentCredentials;
use crate::control::tenant_client::TenantClient;
use crate::control::writeback_relay::{self, WritebackKey};
use crate::event::Event;
use crate::journal::Journal;
use crate::secret::Secret;
use crate::source::ldap::conn::{DcConn, connect};
use crate::source::ldap::{DomainConfig, LdapSourceError};
use crate::writeback::{self, ResetRequest, UserRef, WritebackCode};

/// How long one long poll asks the tenant to hold.
const POLL_WAIT: Duration = Duration::from_secs(20);
/// A kept connection is used again only when idle for less than this.
const IDLE_REUSE: Duration = Duration::from_secs(60);
/// Answers kept for re-sending.
const KEEP_ANSWERS: Duration = Duration::from_secs(24 * 3600);

/// The durable record of requests begun and answered.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    /// Request ids whose application started (removed once answered).
    #[serde(default)]
    begun: Vec<Uuid>,
    /// Request id → (code, message, unix seconds answered).
    #[serde(default)]
    answered: BTreeMap<Uuid, (u32, String, u64)>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Record {
    fn load(path: &Path) -> Record {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "The writeback record is damaged; starting a new one (requests begun before are answered as interrupted only if listed).");
                Record::default()
            }),
            Err(_) => Record::default(),
        }
    }

    fn save(&mut self, path: &Path) -> std::io::Result<()> {
        let oldest = unix_now().saturating_sub(KEEP_ANSWERS.as_secs());
        self.answered.retain(|_, (_, _, at)| *at >= oldest);
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        cloudsync_private_fs::write_atomic(path, &bytes, 0o600)
    }
}

/// The writeback task of the daemon.
pub struct WritebackTask {
    /// The agent's configuration (its domains).
    pub config: Config,
    /// The credentials as loaded (agent id, configurations, key).
    pub creds: AgentCredentials,
    /// Where they live (a key made here is saved there).
    pub credentials_file: PathBuf,
    /// The tenant client.
    pub client: Arc<TenantClient>,
    /// The journal the answers are recorded in.
    pub journal: Journal,
    /// One bound connection per domain, kept between requests (with when it was last used).
    pub conns: tokio::sync::Mutex<BTreeMap<String, (DcConn, std::time::Instant)>>,
}

impl WritebackTask {
    /// Long-polls until `cancel`; every error is logged and retried with a capped backoff.
    pub async fn run(mut self, cancel: CancellationToken) {
        let key = match self.key() {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "Password writeback is off: the writeback key cannot be used.");
                return;
            }
        };
        let record_file = self
            .credentials_file
            .with_file_name("writeback-requests.json");
        let mut record = Record::load(&record_file);
        let mut backoff = Duration::from_secs(1);
        let mut registered = false;
        loop {
            if !registered {
                let r = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = writeback_relay::register_key(&self.client, self.creds.agent_id, &key) => r,
                };
                match r {
                    Ok(()) => {
                        registered = true;
                        tracing::info!(public_key = %key.public_base64(), "Writeback key registered; waiting for writeback requests.");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "Registering the writeback key failed.");
                        if sleep_or_cancel(&cancel, backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        continue;
                    }
                }
            }
            let polled = tokio::select! {
                () = cancel.cancelled() => return,
                r = writeback_relay::poll(&self.client, self.creds.agent_id, POLL_WAIT) => r,
            };
            match polled {
                Ok(requests) => {
                    backoff = Duration::from_secs(1);
                    for request in requests {
                        self.handle(&key, &request, &mut record, &record_file).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "The writeback long poll failed.");
                    if sleep_or_cancel(&cancel, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// The key from the credentials, or a new one saved there (an agent registered before writeback).
    fn key(&mut self) -> Result<WritebackKey, String> {
        if let Some(text) = &self.creds.writeback_private_key {
            return WritebackKey::from_base64(text).map_err(|e| e.to_string());
        }
        let key = WritebackKey::generate();
        self.creds.writeback_private_key = Some(key.to_base64());
        self.creds
            .save(&self.credentials_file)
            .map_err(|e| e.to_string())?;
        Ok(key)
    }

    /// A bound connection to `domain`: the one kept from the last request when it was used less than
    /// [`IDLE_REUSE`] ago (a DC closes idle connections, AD after 15 minutes), else a new bind.
    async fn conn_for(&self, domain: &DomainConfig) -> Result<DcConn, LdapSourceError> {
        let kept = self.conns.lock().await.remove(&domain.dns_name);
        if let Some((conn, used)) = kept {
            if used.elapsed() < IDLE_REUSE {
                return Ok(conn);
            }
            conn.close().await;
        }
        connect(domain).await
    }

    /// Keeps `conn` for the next request when `healthy`, else closes it.
    async fn keep_conn(&self, domain: &DomainConfig, conn: DcConn, healthy: bool) {
        if healthy {
            self.conns
                .lock()
                .await
                .insert(domain.dns_name.clone(), (conn, std::time::Instant::now()));
        } else {
            conn.close().await;
        }
    }

    /// The domain a request's configuration is served by here.
    fn domain_of(&self, configuration: Uuid) -> Option<&DomainConfig> {
        self.config.domains.values().find(|d| {
            d.configuration_id
                .or_else(|| self.creds.configuration_for(&d.dns_name))
                == Some(configuration)
        })
    }

    async fn handle(
        &self,
        key: &WritebackKey,
        request: &WritebackRequest,
        record: &mut Record,
        record_file: &Path,
    ) {
        let id = request.id;
        let (code, message) = if let Some((code, message, _)) = record.answered.get(&id) {
            tracing::info!(request = %id, code, "A writeback request answered before was handed out again; sending the same answer.");
            (*code, message.clone())
        } else {
            let (code, message, domain) = if record.begun.contains(&id) {
                let a = WritebackCode::Other.answer(
                    "the agent stopped while applying this request, so it is not applied again; check the account in AD",
                );
                (a.code.code(), a.message, self.domain_name(request))
            } else {
                record.begun.push(id);
                if let Err(e) = record.save(record_file) {
                    tracing::error!(error = %e, file = %record_file.display(), "Cannot record a writeback request as begun; not applying it.");
                    record.begun.retain(|b| *b != id);
                    return;
                }
                let (code, message) = self.apply(key, request).await;
                (code, message, self.domain_name(request))
            };
            let event = Event::WritebackAnswered {
                domain,
                request_id: id.to_string(),
                kind: kind_text(request),
                anchor: request.source_anchor.clone(),
                user_principal_name: request.user_principal_name.clone(),
                requested_by: request.requested_by.clone(),
                code,
                message: message.clone(),
            };
            if let Err(e) = self.journal.append_async(vec![event], None).await {
                tracing::error!(error = %e, request = %id, "The writeback answer could not be journaled.");
            }
            record.begun.retain(|b| *b != id);
            record
                .answered
                .insert(id, (code, message.clone(), unix_now()));
            if let Err(e) = record.save(record_file) {
                tracing::error!(error = %e, file = %record_file.display(), "Cannot record a writeback answer.");
            }
            tracing::info!(request = %id, kind = %kind_text(request), user = %request.user_principal_name, requested_by = %request.requested_by, code, "Writeback request answered.");
            (code, message)
        };
        if let Err(e) =
            writeback_relay::answer(&self.client, self.creds.agent_id, id, code, &message).await
        {
            tracing::warn!(error = %e, request = %id, "Sending the writeback answer failed; the tenant will hand the request out again and the same answer will be sent.");
        }
    }

    fn domain_name(&self, request: &WritebackRequest) -> String {
        self.domain_of(request.configuration_id)
            .map(|d| d.dns_name.clone())
            .unwrap_or_default()
    }

    /// Steps 3 and 4 of the module doc: (code, message).
    async fn apply(&self, key: &WritebackKey, request: &WritebackRequest) -> (u32, String) {
        let refuse = |code: WritebackCode, why: &str| {
            let a = code.answer(why);
            (a.code.code(), a.message)
        };
        if expired(&request.expires_at) {
            return refuse(
                WritebackCode::Other,
                "the request expired before the agent got it",
            );
        }
        let Some(domain) = self.domain_of(request.configuration_id) else {
            return refuse(
                WritebackCode::DirectoryConfiguration,
                "this agent serves no domain of the request's configuration",
            );
        };
        let mut conn = match self.conn_for(domain).await {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    WritebackCode::Other,
                    &format!("the agent could not bind to {}: {e}", domain.dns_name),
                );
            }
        };
        let target = writeback::Domain::of(domain);
        let user = UserRef::by_anchor(
            request.source_anchor.clone(),
            request.user_principal_name.clone(),
        );
        let result = match request.kind {
            WritebackKind::Unlock => writeback::unlock(&mut conn, &target, &user).await,
            WritebackKind::Reset => {
                let Some(sealed) = &request.sealed_password else {
                    self.keep_conn(domain, conn, true).await;
                    return refuse(WritebackCode::Other, "a reset without a password");
                };
                let password = match key.open(sealed) {
                    Ok(p) => Secret::new(p.as_str().to_owned()),
                    Err(e) => {
                        self.keep_conn(domain, conn, true).await;
                        return refuse(WritebackCode::Other, &e.to_string());
                    }
                };
                let reset = ResetRequest {
                    user,
                    password,
                    force_change: request.force_change_at_next_sign_in,
                    unlock: false,
                    apply_history: request.requested_by.starts_with("self-service:"),
                };
                writeback::reset(&mut conn, &target, &reset).await
            }
        };
        // A connection that failed is not kept (the next request binds afresh).
        let healthy = !matches!(&result, Err(e) if e.is_retriable());
        self.keep_conn(domain, conn, healthy).await;
        let answer = writeback::answer(&result);
        (answer.code.code(), answer.message)
    }
}

fn kind_text(request: &WritebackRequest) -> String {
    match request.kind {
        WritebackKind::Reset if request.force_change_at_next_sign_in => "reset+must-change".into(),
        WritebackKind::Reset => "reset".into(),
        WritebackKind::Unlock => "unlock".into(),
    }
}

/// Whether an RFC 3339 expiry has passed (an unreadable one counts as expired).
fn expired(expires_at: &str) -> bool {
    match time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339) {
        Ok(t) => t < time::OffsetDateTime::now_utc(),
        Err(_) => true,
    }
}

/// Sleeps `d`; true when cancelled first.
async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_as_rfc3339_and_garbage_counts_as_expired() {
        assert!(expired("2001-01-01T00:00:00Z"));
        assert!(!expired("2999-01-01T00:00:00Z"));
        assert!(expired("tomorrow"));
    }

    #[test]
    fn the_record_survives_a_restart_and_forgets_old_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writeback-requests.json");
        let mut r = Record::default();
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        r.begun.push(a);
        r.answered.insert(b, (0, "done".into(), unix_now()));
        r.answered.insert(Uuid::from_u128(3), (0, "old".into(), 1));
        r.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = Record::load(&path);
        assert_eq!(back.begun, vec![a]);
        assert!(back.answered.contains_key(&b));
        assert!(!back.answered.contains_key(&Uuid::from_u128(3)));
        std::fs::write(&path, b"{garbage").unwrap();
        assert!(Record::load(&path).answered.is_empty());
    }
}
