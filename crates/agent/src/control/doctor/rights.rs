//! The rights the service account needs, each probed for real rather than read from ACLs (a
//! probe answers for group memberships, inheritance and deny ACEs the way the DC itself decides).
//! Enters: the domain's configuration, its bound connection and `[phs]`. Leaves: [`Check`]s.
//!
//! Each refusal's fix names the `cloudsync agent permissions set` command that grants the right
//! ([`permissions_set`]; `crate::account::permissions`).
//!
//! - **DirSync** ([`dirsync`]): the feed's own request — the DirSync control with the flags the
//!   feed sends (`LDAP_DIRSYNC_OBJECT_SECURITY` when `object_security = true`) — over the NC head,
//!   limited to the domain object. AD and Samba answer `insufficientAccessRights` (50) when the
//!   account has neither "Replicating Directory Changes" nor the object-security flag.
//! - **Replicating Directory Changes All** ([`replication_all`], when `[phs] enabled` with the
//!   `drsr` source): one IDL_DRSGetNCChanges of the domain NC, `cMaxObjects = 1`, with no partial
//!   attribute set — a request for secrets — and then unbound. A DC answers it only to an account
//!   holding both replication rights (`ERROR_DS_DRA_ACCESS_DENIED`, 8453, otherwise; with a
//!   partial attribute set Samba would instead leave the secrets out silently, so the probe does not
//!   send one). Reading the domain head's security descriptor was the alternative; it would need
//!   the account's transitive groups (`tokenGroups`) and deny-ACE ordering evaluated here, and could
//!   still disagree with the DC: the probe is what password hash sync itself will meet.

use std::net::{IpAddr, SocketAddr};

use crate::nt_hash::NtHash;
use ldap3::Scope;

use super::Check;
use crate::runtime::phs::{ntlm_identity, url_host};
use crate::source::drsr::cookie::Cookie;
use crate::source::drsr::drsuapi::{self, DRSUAPI_INTERFACE};
use crate::source::drsr::getncchanges::{self, DRS_INIT_SYNC, DRS_WRIT_REP, Request};
use crate::source::drsr::ntlm::Credentials;
use crate::source::drsr::transport::Connection;
use crate::source::drsr::{DrsrError, epm};
use crate::source::ldap::DomainConfig;
use crate::source::ldap::conn::DcConn;
use crate::source::ldap::control::{DirSyncRequest, FLAG_OBJECT_SECURITY};
use crate::source::phs::PhsSettings;

/// LDAP `insufficientAccessRights`.
const INSUFFICIENT_ACCESS: u32 = 50;

/// The `permissions set` command that grants `kind` in `dns` (the configuration's path is not known
/// to the doctor library: `FILE` stands for the one `doctor --config` was given).
pub fn permissions_set(kind: &str, dns: &str) -> String {
    format!(
        "cloudsync agent permissions set --type {kind} --domain {dns} --config FILE --domain-admin <admin UPN> --domain-admin-password-file -"
    )
}

/// The fix for a DirSync refusal.
pub fn dirsync_fix(label: &str, dns: &str, account: &str) -> String {
    format!(
        "grant {account} \"Replicating Directory Changes\" on the domain root, or set [domains.{label}] object_security = true; to grant it run: {}",
        permissions_set("basic-read", dns)
    )
}

/// The fix for a refused replication of secrets.
pub fn replication_all_fix(dns: &str, account: &str) -> String {
    format!(
        "grant {account} \"Replicating Directory Changes\" and \"Replicating Directory Changes All\" on the domain root (password hash sync replicates password hashes); to grant them run: {}",
        permissions_set("password-hash-sync", dns)
    )
}

/// A DirSync request as the feed sends it, over the domain object only.
pub async fn dirsync(label: &str, cfg: &DomainConfig, dc: &mut DcConn) -> Check {
    let flags = if cfg.object_security {
        FLAG_OBJECT_SECURITY
    } else {
        0
    };
    let what = format!("{label}: DirSync rights");
    let how = if cfg.object_security {
        "with object_security"
    } else {
        "as a replicating account"
    };
    let request = DirSyncRequest {
        flags,
        max_bytes: 1 << 16,
        cookie: Vec::new(),
    };
    let answer = dc
        .op()
        .with_controls(vec![request.to_control()])
        .search(
            &cfg.base(),
            Scope::Subtree,
            "(objectClass=domainDNS)",
            vec!["objectGUID"],
        )
        .await;
    match answer {
        Ok(r) if r.1.rc == 0 => Check::ok(what, format!("a DirSync request {how} succeeds")),
        Ok(r) if r.1.rc == INSUFFICIENT_ACCESS => Check::fail(
            what,
            format!(
                "AD refused DirSync {how}: insufficientAccessRights (50){}",
                if r.1.text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.1.text.trim())
                }
            ),
            dirsync_fix(label, &cfg.dns_name, &cfg.bind_dn),
        ),
        Ok(r) => Check::fail(
            what,
            format!(
                "AD refused DirSync {how}: result code {}: {}",
                r.1.rc,
                r.1.text.trim()
            ),
            format!(
                "check that [domains.{label}] base_dn is the domain's root (DirSync reads only a naming context head)"
            ),
        ),
        Err(e) => Check::fail(
            what,
            e.to_string(),
            "check the DC's LDAP service and its logs",
        ),
    }
}

/// One GetNCChanges asking for secrets, as password hash sync does.
pub async fn replication_all(label: &str, cfg: &DomainConfig, phs: &PhsSettings) -> Check {
    let what = format!("{label}: replication rights (password hash sync)");
    let Some((user, domain)) = ntlm_identity(&cfg.bind_dn) else {
        return Check::fail(
            what,
            format!("{} is not a UPN or DOMAIN\\user name", cfg.bind_dn),
            format!(
                "set [domains.{label}] bind_dn to the account's UPN (svc@corp.example.com): MS-DRSR signs in with NTLM"
            ),
        );
    };
    let Some(host) = url_host(&cfg.url) else {
        return Check::fail(
            what,
            format!("no host in {}", cfg.url),
            format!("set [domains.{label}] url"),
        );
    };
    let secret = if cfg.account == crate::source::ldap::AccountForm::Gmsa {
        crate::account::gmsa::hashes(cfg, false)
            .await
            .map_err(|e| e.to_string())
            .and_then(|h| {
                h.into_iter()
                    .next()
                    .ok_or_else(|| "no gMSA password".to_string())
            })
    } else {
        cfg.resolve_password()
            .map(|p| NtHash::from_password(p.expose()))
            .map_err(|e| e.to_string())
    };
    let nt_hash = match secret {
        Ok(h) => h,
        Err(e) => {
            return Check::fail(
                what,
                e,
                format!(
                    "make [domains.{label}] password_file (or host_password_file for a gMSA) readable by the agent's user"
                ),
            );
        }
    };
    let creds = Credentials {
        user,
        domain,
        nt_hash,
    };
    match probe(&host, &cfg.base(), &creds, phs).await {
        Ok(()) => Check::ok(
            what,
            "an MS-DRSR replication of password hashes is allowed (Replicating Directory Changes All)",
        ),
        Err(e @ DrsrError::Ntlm(_)) => Check::fail(
            what,
            e.to_string(),
            format!(
                "check bind_dn ({}) and its password: the DC refused the NTLM sign-in MS-DRSR uses",
                cfg.bind_dn
            ),
        ),
        Err(e) if e.is_access_denied() => Check::fail(
            what,
            format!("the DC refused to replicate password hashes: {e}"),
            replication_all_fix(&cfg.dns_name, &cfg.bind_dn),
        ),
        Err(e @ (DrsrError::Io(_) | DrsrError::Timeout(_) | DrsrError::NoEndpoint)) => Check::fail(
            what,
            e.to_string(),
            format!(
                "open TCP port 135 and the DC's DRSUAPI port (or set [phs] drsr_port) from this host to {host}"
            ),
        ),
        Err(e) => Check::fail(
            what,
            e.to_string(),
            "check the DC's log for the MS-DRSR call",
        ),
    }
}

async fn probe(
    host: &str,
    nc_dn: &str,
    creds: &Credentials,
    phs: &PhsSettings,
) -> Result<(), DrsrError> {
    let timeout = phs.timeout();
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => tokio::time::timeout(timeout, tokio::net::lookup_host((host, 135)))
            .await
            .map_err(|_| DrsrError::Timeout(timeout))??
            .next()
            .map(|a| a.ip())
            .ok_or(DrsrError::NoEndpoint)?,
    };
    let port = match phs.drsr_port {
        Some(p) => p,
        None => epm::resolve(ip, DRSUAPI_INTERFACE, timeout).await?,
    };
    let mut conn = Connection::connect(
        SocketAddr::new(ip, port),
        DRSUAPI_INTERFACE,
        Some(creds),
        timeout,
    )
    .await?;
    let bind = drsuapi::parse_bind_reply(
        &conn
            .call(drsuapi::OP_BIND, &drsuapi::bind_request())
            .await?,
    )?;
    let stub = getncchanges::encode_request(&Request {
        handle: &bind.handle,
        nc_dn,
        from: &Cookie::default(),
        flags: DRS_WRIT_REP | DRS_INIT_SYNC,
        max_objects: 1,
        max_bytes: 0,
        partial: false,
    });
    let answer = conn.call(drsuapi::OP_GET_NC_CHANGES, &stub).await;
    // Unbind either way; its failure says nothing about the rights.
    let _ = conn
        .call(drsuapi::OP_UNBIND, &drsuapi::unbind_request(&bind.handle))
        .await;
    getncchanges::decode_reply(&answer?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rights_fix_names_the_permissions_set_command() {
        let d = dirsync_fix("corp", "corp.example.test", "svc@corp.example.test");
        assert!(d.contains("object_security = true"), "{d}");
        assert!(
            d.contains("cloudsync agent permissions set --type basic-read --domain corp.example.test --config FILE"),
            "{d}"
        );
        let r = replication_all_fix("corp.example.test", "svc@corp.example.test");
        assert!(
            r.contains("cloudsync agent permissions set --type password-hash-sync --domain corp.example.test --config FILE"),
            "{r}"
        );
    }
}
