//! Checks of one domain, each step only once the one before passed: DNS name resolution of the DC
//! host, TCP reachability of the LDAP port, TLS and a bind as the configured account (through
//! [`conn::connect`], so the doctor sees exactly what the feed sees), a read of the domain root,
//! the rights the feed and password hash sync need ([`super::rights`]), and the clock against the
//! rootDSE's `currentTime`. Enters: the domain's configuration and
//! `now`. Leaves: [`Check`]s.

use std::time::SystemTime;

use ldap3::{Scope, SearchEntry};
use tokio::net::TcpStream;

use super::{Check, skew};
use crate::source::ldap::conn::{self, DcConn};
use crate::source::ldap::error::{BindFailure, LdapSourceError};
use crate::source::ldap::{DomainConfig, SyncMode};
use crate::source::phs::{PhsSettings, PhsSourceKind};

/// Host and port of an `ldap://` / `ldaps://` URL (default ports 389 / 636).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = if scheme.eq_ignore_ascii_case("ldaps") {
        636
    } else {
        389
    };
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None if !authority.is_empty() => Some((authority.to_string(), default)),
        None => None,
    }
}

/// Every check of the domain `label`; with `phs` (the `[phs]` section), the replication right
/// password hash sync needs.
pub async fn check(
    label: &str,
    cfg: &DomainConfig,
    phs: Option<&PhsSettings>,
    now: SystemTime,
) -> Vec<Check> {
    let mut out = Vec::new();
    let Some((host, port)) = host_port(&cfg.url) else {
        out.push(Check::fail(
            format!("{label}: url"),
            format!("cannot read a host from {}", cfg.url),
            format!("set [domains.{label}] url to ldaps://dc.example:636"),
        ));
        return out;
    };
    let timeout = cfg.connect_timeout();
    let what = format!("{label}: DNS {host}");
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
        .await
    {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            out.push(Check::fail(what, e.to_string(), format!("check the host in [domains.{label}] url and this host's DNS resolver (/etc/resolv.conf); it must resolve the DC")));
            return out;
        }
        Err(_) => {
            out.push(Check::fail(
                what,
                "timed out",
                "check this host's DNS resolver (/etc/resolv.conf)",
            ));
            return out;
        }
    };
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    out.push(Check::ok(what, shown.join(", ")));

    let what = format!("{label}: TCP {host}:{port}");
    match tokio::time::timeout(timeout, TcpStream::connect(addrs.as_slice())).await {
        Ok(Ok(_)) => out.push(Check::ok(what, "reachable")),
        Ok(Err(e)) => {
            out.push(Check::fail(what, format!("unreachable: {e}"), format!("start the DC's LDAP service or open TCP port {port} from this host to {host} (firewall)")));
            return out;
        }
        Err(_) => {
            out.push(Check::fail(what, format!("no answer within {}s", timeout.as_secs()), format!("open TCP port {port} from this host to {host} (firewall), or check the DC is up")));
            return out;
        }
    }

    let ldaps = cfg.url.to_ascii_lowercase().starts_with("ldaps://");
    if (ldaps || cfg.starttls)
        && !cfg.insecure_skip_verify
        && let Some(ca) = &cfg.ca_file
        && let Some(c) = super::cert::expiry(label, ca, &host, &addrs, !ldaps, timeout, now).await
    {
        out.push(c);
    }
    let tls = ldaps || cfg.starttls;
    let tls_what = format!("{label}: TLS");
    let mut dc = match conn::connect(cfg).await {
        Ok(dc) => dc,
        Err(e) => {
            out.push(explain_connect(label, &tls_what, cfg, tls, e));
            return out;
        }
    };
    out.push(if !tls {
        Check::warn(
            tls_what,
            "no TLS: the bind password crosses the network in clear",
            format!("use ldaps:// or starttls = true in [domains.{label}]"),
        )
    } else if cfg.insecure_skip_verify {
        Check::warn(
            tls_what,
            "certificate verification is off (insecure_skip_verify)",
            format!("set [domains.{label}] ca_file and remove insecure_skip_verify"),
        )
    } else {
        Check::ok(
            tls_what,
            "the DC's certificate is verified against ca_file and names the host",
        )
    });
    out.push(Check::ok(
        format!("{label}: bind"),
        format!("bound as {}", cfg.bind_dn),
    ));

    let base = cfg.base();
    out.push(read_root(label, &mut dc, &base).await);
    if cfg.mode == SyncMode::Dirsync {
        out.push(super::rights::dirsync(label, cfg, &mut dc).await);
    }
    out.push(dc_clock(label, &mut dc, now).await);
    dc.close().await;
    if let Some(phs) = phs.filter(|p| p.enabled && p.source == PhsSourceKind::Drsr) {
        out.push(super::rights::replication_all(label, cfg, phs).await);
    }
    out
}

/// Turns a failed connect (TCP already known good) into the TLS or bind check that failed.
fn explain_connect(
    label: &str,
    tls_what: &str,
    cfg: &DomainConfig,
    tls: bool,
    e: LdapSourceError,
) -> Check {
    let ca_fix = format!(
        "set [domains.{label}] ca_file to a PEM file holding the CA that issued the DC's certificate"
    );
    match e {
        LdapSourceError::Tls { .. } | LdapSourceError::NoCaCertificate { .. } => {
            Check::fail(tls_what, e.to_string(), ca_fix)
        }
        LdapSourceError::Password(_) => Check::fail(
            format!("{label}: bind"),
            e.to_string(),
            format!("make [domains.{label}] password_file readable by the agent's user"),
        ),
        LdapSourceError::Bind { failure, .. } => Check::fail(
            format!("{label}: bind"),
            e.to_string(),
            bind_fix(failure, &cfg.bind_dn),
        ),
        LdapSourceError::Connection { .. } if tls => {
            let text = format!("{e} {}", source_chain(&e));
            let fix = if text.contains("NotValidForName") {
                format!("put a host name the DC's certificate names in [domains.{label}] url")
            } else if text.contains("Expired") {
                "renew the DC's certificate (it has expired)".to_string()
            } else {
                ca_fix
            };
            Check::fail(tls_what, text.trim().to_string(), fix)
        }
        other => Check::fail(
            format!("{label}: LDAP"),
            other.to_string(),
            "check the DC's LDAP service and its logs",
        ),
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(format!("{s:?}"));
        cur = s.source();
    }
    parts.join(": ")
}

/// The fix for a refused bind (the reason itself is [`BindFailure::message`]).
pub fn bind_fix(failure: BindFailure, account: &str) -> String {
    match failure {
        BindFailure::NoSuchUser | BindFailure::BadCredentials | BindFailure::Other => {
            format!("check bind_dn ({account}) and its password (password_file)")
        }
        BindFailure::PasswordExpired | BindFailure::MustChangePassword => {
            format!(
                "set a new password for {account} in AD and reconfigure with the new credentials"
            )
        }
        BindFailure::LockedOut => {
            format!("unlock {account} in AD (or wait for the lockout to end)")
        }
        BindFailure::Disabled => format!("enable {account} in AD"),
        BindFailure::AccountExpired => format!("extend {account}'s account expiry in AD"),
        BindFailure::LogonHours => format!("allow {account} to log on at all hours in AD"),
        BindFailure::Workstation => {
            format!("allow {account} to log on from this host (Log On To…) in AD")
        }
    }
}

async fn read_root(label: &str, dc: &mut DcConn, base: &str) -> Check {
    let what = format!("{label}: read {base}");
    match dc
        .op()
        .search(base, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
        .await
    {
        Ok(r) => match r.success() {
            Ok((entries, _)) if !entries.is_empty() => Check::ok(what, "readable"),
            Ok(_) => Check::fail(
                what,
                "no entry returned",
                "grant the service account read access to the domain root (Authenticated Users have it by default)",
            ),
            Err(e) => Check::fail(
                what,
                e.to_string(),
                "check base_dn, and grant the service account read access to the domain root",
            ),
        },
        Err(e) => Check::fail(
            what,
            e.to_string(),
            "check the DC's LDAP service and its logs",
        ),
    }
}

async fn dc_clock(label: &str, dc: &mut DcConn, now: SystemTime) -> Check {
    let what = format!("{label}: clock");
    let entry = match dc
        .op()
        .search("", Scope::Base, "(objectClass=*)", vec!["currentTime"])
        .await
    {
        Ok(r) => r.success().ok().and_then(|(e, _)| e.into_iter().next()),
        Err(_) => None,
    };
    let current = entry
        .map(SearchEntry::construct)
        .and_then(|e| e.attrs.get("currentTime").and_then(|v| v.first().cloned()));
    match current.as_deref().and_then(skew::parse_generalized_time) {
        Some(dc_time) => skew::check(&what, "the DC", now, dc_time),
        None => Check::warn(
            what,
            "the rootDSE has no readable currentTime",
            "check the clock by hand: compare `date -u` here and on the DC",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            host_port("ldaps://dc1.corp:6360"),
            Some(("dc1.corp".into(), 6360))
        );
        assert_eq!(
            host_port("ldap://127.0.0.5"),
            Some(("127.0.0.5".into(), 389))
        );
        assert_eq!(host_port("LDAPS://dc/"), Some(("dc".into(), 636)));
        assert_eq!(host_port("ldaps://[::1]:1636"), Some(("::1".into(), 1636)));
        assert_eq!(host_port("dc1"), None);
    }
}
