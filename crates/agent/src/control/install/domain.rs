//! "Connect Active Directory": one domain checked before it is added. Enters: the DNS name the
//! admin typed, the DC's URL and CA, the domain administrator's credentials (memory only, never
//! written) and the service account's. Leaves: a [`CheckedDomain`] (its naming context), or a
//! [`DomainError`] in words an administrator can act on.
//!
//! The steps: the name is well-formed; the DC's host name resolves; a bind as the domain
//! administrator succeeds (AD's `data 52e/530/531/532/533/701/773/775` sub-codes as messages: an
//! expired or must-change password asks to reconfigure with the new credentials); the DC's rootDSE
//! `defaultNamingContext` is the naming context of the name typed (a typo in the name is caught
//! here: `corp.exmaple.test` against a DC of `corp.example.test`); and an existing service account
//! binds (an account the install makes is proven by [`super::account`] instead).

use std::path::PathBuf;

use ldap3::{Scope, SearchEntry};

use crate::control::doctor::domain::host_port;
use crate::secret::Secret;
use crate::source::ldap::conn::{DcConn, connect};
use crate::source::ldap::{BindFailure, DomainConfig, LdapSourceError};

/// One domain as the admin gave it.
#[derive(Debug, Clone)]
pub struct DomainTarget {
    /// The DNS name, e.g. `corp.example.test`.
    pub dns_name: String,
    /// The DC, `ldaps://host:636` (default: `ldaps://{dns_name}`).
    pub url: String,
    /// The CA that signs the DC's certificate (else the system roots).
    pub ca_file: Option<PathBuf>,
}

/// A domain that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedDomain {
    /// The target as given.
    pub target: DomainTarget,
    /// The DC's `defaultNamingContext`, e.g. `DC=corp,DC=example,DC=test`.
    pub naming_context: String,
}

/// Why a domain was not added.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The name is not a DNS name.
    #[error("{0:?} is not a DNS domain name (e.g. corp.example.com)")]
    BadName(String),
    /// The URL is not `ldap://` or `ldaps://` with a host.
    #[error("{0:?} is not an LDAP URL (ldaps://dc1.corp.example.com)")]
    BadUrl(String),
    /// The DC's host name does not resolve.
    #[error(
        "cannot resolve {host}: {detail}; check the spelling of the domain name, or give the DC's address"
    )]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's answer.
        detail: String,
    },
    /// The bind was refused; the message is AD's sub-code in words.
    #[error("{account} cannot sign in to {domain}: {message}")]
    Bind {
        /// The domain.
        domain: String,
        /// The account.
        account: String,
        /// What to do.
        message: String,
        /// AD's reason.
        failure: BindFailure,
    },
    /// The DC serves another domain than the name typed.
    #[error(
        "the DC at {url} serves {served} ({naming_context}), not {typed}: check the spelling of the domain name"
    )]
    NameMismatch {
        /// The name typed.
        typed: String,
        /// The DC's URL.
        url: String,
        /// Its naming context.
        naming_context: String,
        /// The DNS name of that naming context.
        served: String,
    },
    /// The DC could not be reached or answered with an error.
    #[error("{domain}: {source}")]
    Ldap {
        /// The domain.
        domain: String,
        /// What failed.
        #[source]
        source: LdapSourceError,
    },
}

/// The message for a refused bind of `account`: what AD's sub-code means and what to do.
pub fn bind_message(failure: BindFailure, account: &str) -> String {
    match failure {
        BindFailure::PasswordExpired | BindFailure::MustChangePassword => format!(
            "the password of {account} has expired or must be changed at next logon (AD 532/773): set a new one in AD, then reconfigure with the new credentials"
        ),
        BindFailure::LockedOut => format!(
            "{account} is locked out (AD 775): unlock it in AD or wait for the lockout to end"
        ),
        BindFailure::Disabled => {
            format!("{account} is disabled (AD 533): enable it in AD or use another account")
        }
        BindFailure::AccountExpired => {
            format!("{account} has expired (AD 701): extend its expiry in AD")
        }
        BindFailure::LogonHours => {
            format!("{account} may not log on at this time (AD 530): allow all logon hours")
        }
        BindFailure::Workstation => {
            format!("{account} may not log on from this host (AD 531): allow it in Log On To…")
        }
        BindFailure::NoSuchUser | BindFailure::BadCredentials | BindFailure::Other => format!(
            "wrong password, or no such account (AD 52e): check the account name ({account}) and its password"
        ),
    }
}

/// `DC=a,DC=b` of `a.b`.
pub fn naming_context_of(dns_name: &str) -> String {
    dns_name
        .split('.')
        .map(|p| format!("DC={p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `a.b` of `DC=a,DC=b` (other RDNs are kept as they are).
fn dns_name_of(naming_context: &str) -> String {
    naming_context
        .split(',')
        .map(|rdn| {
            let rdn = rdn.trim();
            match rdn.get(..3) {
                Some(p) if p.eq_ignore_ascii_case("dc=") => rdn[3..].to_string(),
                _ => rdn.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether `name` is a DNS name of two or more labels (letters, digits, `-`).
pub fn valid_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The `[domains.*]` table of `target` bound as `account` (the password is not in it).
pub fn domain_table(target: &DomainTarget, account: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("dns_name".into(), target.dns_name.clone().into());
    t.insert("url".into(), target.url.clone().into());
    t.insert("bind_dn".into(), account.into());
    if let Some(ca) = &target.ca_file {
        t.insert("ca_file".into(), ca.display().to_string().into());
    }
    t
}

/// The [`DomainConfig`] the agent would use for `target` bound as `account`.
pub fn domain_config(
    target: &DomainTarget,
    account: &str,
    password: &str,
) -> Result<DomainConfig, DomainError> {
    let mut cfg: DomainConfig = toml::Value::Table(domain_table(target, account))
        .try_into()
        .map_err(|e: toml::de::Error| DomainError::BadUrl(format!("{}: {e}", target.url)))?;
    cfg.password = Some(Secret::new(password.to_string()));
    Ok(cfg)
}

/// Binds as `account`; a refusal becomes [`DomainError::Bind`].
async fn bind(target: &DomainTarget, account: &str, password: &str) -> Result<DcConn, DomainError> {
    connect(&domain_config(target, account, password)?)
        .await
        .map_err(|e| match e {
            LdapSourceError::Bind { failure, .. } => DomainError::Bind {
                domain: target.dns_name.clone(),
                account: account.to_string(),
                message: bind_message(failure, account),
                failure,
            },
            source => DomainError::Ldap {
                domain: target.dns_name.clone(),
                source,
            },
        })
}

/// Runs every check of the module doc.
pub async fn check_domain(
    target: &DomainTarget,
    domain_admin: (&str, &str),
    service_account: Option<(&str, &str)>,
) -> Result<CheckedDomain, DomainError> {
    let name = target
        .dns_name
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !valid_dns_name(&name) {
        return Err(DomainError::BadName(target.dns_name.clone()));
    }
    let target = DomainTarget {
        dns_name: name,
        ..target.clone()
    };
    let (host, port) =
        host_port(&target.url).ok_or_else(|| DomainError::BadUrl(target.url.clone()))?;
    if host.parse::<std::net::IpAddr>().is_err() {
        let resolved = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if let Err(detail) = resolved {
            return Err(DomainError::Resolve { host, detail });
        }
    }
    let mut dc = bind(&target, domain_admin.0, domain_admin.1).await?;
    let ldap_err = |e: ldap3::LdapError| DomainError::Ldap {
        domain: target.dns_name.clone(),
        source: LdapSourceError::from(e),
    };
    let (entries, _) = dc
        .op()
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["defaultNamingContext"],
        )
        .await
        .map_err(ldap_err)?
        .success()
        .map_err(ldap_err)?;
    dc.close().await;
    let naming_context = entries
        .into_iter()
        .next()
        .map(SearchEntry::construct)
        .and_then(|e| e.attrs.get("defaultNamingContext")?.first().cloned())
        .unwrap_or_default();
    if !naming_context.eq_ignore_ascii_case(&naming_context_of(&target.dns_name)) {
        return Err(DomainError::NameMismatch {
            typed: target.dns_name.clone(),
            url: target.url.clone(),
            served: dns_name_of(&naming_context),
            naming_context,
        });
    }
    if let Some((account, password)) = service_account {
        let svc = bind(&target, account, password).await?;
        svc.close().await;
    }
    Ok(CheckedDomain {
        target,
        naming_context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_naming_contexts() {
        assert!(valid_dns_name("corp.example.test"));
        assert!(!valid_dns_name("corp"));
        assert!(!valid_dns_name("corp..test"));
        assert!(!valid_dns_name("corp_x.test"));
        assert_eq!(
            naming_context_of("corp.example.test"),
            "DC=corp,DC=example,DC=test"
        );
        assert_eq!(
            dns_name_of("DC=corp,DC=Example,dc=test"),
            "corp.Example.test"
        );
    }

    #[test]
    fn expired_and_must_change_ask_for_new_credentials() {
        for f in [
            BindFailure::PasswordExpired,
            BindFailure::MustChangePassword,
        ] {
            assert!(bind_message(f, "a@b.c").contains("reconfigure with the new credentials"));
        }
        assert!(bind_message(BindFailure::LockedOut, "a@b.c").contains("locked out"));
        assert!(bind_message(BindFailure::Disabled, "a@b.c").contains("disabled"));
        assert!(bind_message(BindFailure::BadCredentials, "a@b.c").contains("wrong password"));
    }
}
