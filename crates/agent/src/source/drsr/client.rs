//! One replication run: EPM → bind → GetNCChanges pages → unbind, with secrets decrypted.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::cookie::Cookie;
use super::drsuapi::{self, DRSUAPI_INTERFACE};
use super::error::DrsrError;
use super::getncchanges::{self, DRS_GET_ANC, DRS_INIT_SYNC, DRS_WRIT_REP, Request};
use super::ndr::Guid;
use super::ntlm::Credentials;
use super::secrets;
use super::transport::Connection;
use zeroize::Zeroizing;

use crate::nt_hash::NtHash;

/// userAccountControl ACCOUNTDISABLE.
const UF_ACCOUNTDISABLE: u32 = 0x2;
/// userAccountControl NORMAL_ACCOUNT: a user (not a computer, DC or trust account).
const UF_NORMAL_ACCOUNT: u32 = 0x200;
/// The RID of krbtgt, whose key material never leaves the domain.
const RID_KRBTGT: u32 = 502;

/// Whether an account's password may be synced: not krbtgt, and a user account when
/// userAccountControl is known (an incremental page carries only the attributes that changed; the
/// projection scopes those by objectGUID).
pub fn is_syncable(rid: u32, user_account_control: Option<u32>) -> bool {
    rid != RID_KRBTGT && user_account_control.is_none_or(|uac| uac & UF_NORMAL_ACCOUNT != 0)
}

/// Where and how to replicate.
#[derive(Debug, Clone)]
pub struct DrsrSettings {
    /// The domain controller: a host name or an IP address.
    pub dc: String,
    /// The DRSUAPI TCP port; `None` asks the endpoint mapper on port 135.
    pub port: Option<u16>,
    /// The domain NC's DN (e.g. `DC=corp,DC=example,DC=test`).
    pub nc_dn: String,
    /// The sync account.
    pub credentials: Credentials,
    /// Per-operation network deadline.
    pub timeout: Duration,
    /// `cMaxObjects` per page.
    pub page_objects: u32,
    /// Replicate only userAccountControl, unicodePwd and objectSid (a partial attribute set):
    /// smaller pages, and incremental runs return only accounts whose password or state changed.
    pub partial_attribute_set: bool,
}

/// One account's replicated NT hash.
#[derive(Debug)]
pub struct ReplicatedHash {
    /// objectGUID.
    pub guid: Guid,
    /// The DN (for logs; not secret).
    pub dn: String,
    /// The NT hash (zeroized on drop).
    pub nt_hash: NtHash,
    /// Whether userAccountControl says disabled, when it was replicated.
    pub disabled: Option<bool>,
}

/// The result of one run.
#[derive(Debug)]
pub struct ReplicationRun {
    /// Hashes of accounts whose unicodePwd was replicated.
    pub hashes: Vec<ReplicatedHash>,
    /// The cookie to store with the events of this run.
    pub cookie: Cookie,
    /// Objects replicated (with or without a password).
    pub objects: usize,
    /// GetNCChanges pages fetched.
    pub pages: usize,
    /// unicodePwd values that did not decrypt (quarantined, logged by GUID).
    pub undecryptable: usize,
    /// Passwords not synced because the account is krbtgt, a computer, a DC or a trust.
    pub not_users: usize,
    /// Time spent in replication (network + decoding + decryption).
    pub elapsed: Duration,
}

/// Resolves `host` (a name or a literal address) to its first address.
async fn resolve_host(host: &str, timeout: Duration) -> Result<IpAddr, DrsrError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::time::timeout(timeout, tokio::net::lookup_host((host, 135)))
        .await
        .map_err(|_| DrsrError::Timeout(timeout))??;
    addrs.next().map(|a| a.ip()).ok_or_else(|| {
        DrsrError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the domain controller name {host} has no address"),
        ))
    })
}

/// The MS-DRSR client.
#[derive(Debug, Default)]
pub struct DrsrClient;

impl DrsrClient {
    /// Replicates the domain NC from `from` (or from scratch) to the end and decrypts every
    /// replicated unicodePwd.
    pub async fn replicate(
        settings: &DrsrSettings,
        from: Option<&Cookie>,
    ) -> Result<ReplicationRun, DrsrError> {
        let mut hashes = Vec::new();
        let mut run = Self::replicate_pages(settings, from, |page| hashes.extend(page)).await?;
        run.hashes = hashes;
        Ok(run)
    }

    /// Like [`DrsrClient::replicate`], but hands each page's hashes to `on_page` as soon as the page
    /// is decrypted (so hashing can overlap the next request); the returned run's `hashes` is empty.
    pub async fn replicate_pages(
        settings: &DrsrSettings,
        from: Option<&Cookie>,
        mut on_page: impl FnMut(Vec<ReplicatedHash>),
    ) -> Result<ReplicationRun, DrsrError> {
        let started = Instant::now();
        let ip = resolve_host(&settings.dc, settings.timeout).await?;
        let port = match settings.port {
            Some(p) => p,
            None => super::epm::resolve(ip, DRSUAPI_INTERFACE, settings.timeout).await?,
        };
        let mut conn = Connection::connect(
            SocketAddr::new(ip, port),
            DRSUAPI_INTERFACE,
            Some(&settings.credentials),
            settings.timeout,
        )
        .await?;
        let session_key = Zeroizing::new(
            *conn
                .session_key()
                .ok_or_else(|| DrsrError::Ntlm("no session key".into()))?,
        );
        let bind = drsuapi::parse_bind_reply(
            &conn
                .call(drsuapi::OP_BIND, &drsuapi::bind_request())
                .await?,
        )?;
        tracing::debug!(
            port,
            server_extensions = bind.server_extensions,
            "DRSUAPI bound."
        );
        let full = from.is_none();
        let mut cookie = from.cloned().unwrap_or_default();
        let mut flags = DRS_WRIT_REP;
        if !settings.partial_attribute_set {
            flags |= DRS_GET_ANC;
        }
        if full {
            flags |= DRS_INIT_SYNC;
        }
        let mut run = ReplicationRun {
            hashes: Vec::new(),
            cookie: Cookie::default(),
            objects: 0,
            pages: 0,
            undecryptable: 0,
            not_users: 0,
            elapsed: Duration::ZERO,
        };
        loop {
            let stub = getncchanges::encode_request(&Request {
                handle: &bind.handle,
                nc_dn: &settings.nc_dn,
                from: &cookie,
                flags,
                max_objects: settings.page_objects,
                max_bytes: 0,
                partial: settings.partial_attribute_set,
            });
            let raw = conn.call(drsuapi::OP_GET_NC_CHANGES, &stub).await?;
            let reply = getncchanges::decode_reply(&raw)?;
            run.pages += 1;
            run.objects += reply.objects.len();
            let mut page = Vec::new();
            for object in reply.objects {
                let Some(value) = object.unicode_pwd.as_ref() else {
                    continue;
                };
                let guid_text = super::ndr::guid_string(&object.guid);
                let Some(rid) = object.rid else {
                    run.undecryptable += 1;
                    tracing::warn!(guid = %guid_text, "Replicated password of an object without a SID skipped.");
                    continue;
                };
                if !is_syncable(rid, object.user_account_control) {
                    run.not_users += 1;
                    continue;
                }
                match secrets::decrypt_unicode_pwd(&session_key, value, rid) {
                    Ok(nt_hash) => page.push(ReplicatedHash {
                        guid: object.guid,
                        dn: object.dn,
                        nt_hash,
                        disabled: object
                            .user_account_control
                            .map(|uac| uac & UF_ACCOUNTDISABLE != 0),
                    }),
                    Err(err) => {
                        run.undecryptable += 1;
                        tracing::warn!(guid = %guid_text, error = %err, "Replicated password does not decrypt; object skipped.");
                    }
                }
            }
            if !page.is_empty() {
                on_page(page);
            }
            cookie.invocation_id = reply.invocation_id;
            cookie.hwm = reply.usn_to;
            if let Some(cursors) = reply.cursors {
                cookie.cursors = cursors;
            }
            if !reply.more_data {
                break;
            }
        }
        // Unbind politely; the run is complete either way.
        if let Err(err) = conn
            .call(drsuapi::OP_UNBIND, &drsuapi::unbind_request(&bind.handle))
            .await
        {
            tracing::debug!(error = %err, "IDL_DRSUnbind failed after a complete run.");
        }
        run.cookie = cookie;
        run.elapsed = started.elapsed();
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn host_names_and_literals_resolve() {
        let t = Duration::from_secs(5);
        assert_eq!(
            resolve_host("192.0.2.7", t).await.unwrap(),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert!(resolve_host("localhost", t).await.unwrap().is_loopback());
    }

    #[test]
    fn only_user_accounts_and_never_krbtgt_are_synced() {
        assert!(is_syncable(1105, Some(0x200)));
        assert!(is_syncable(1105, Some(0x202))); // disabled users still sync
        assert!(is_syncable(1105, None));
        assert!(!is_syncable(502, Some(0x202)));
        assert!(!is_syncable(502, None));
        assert!(!is_syncable(1000, Some(0x1000))); // workstation trust (computer)
        assert!(!is_syncable(1000, Some(0x2000))); // server trust (DC)
        assert!(!is_syncable(1000, Some(0x0800))); // interdomain trust
    }
}
