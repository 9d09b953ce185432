//! Opening and binding an LDAP connection to a domain controller, with TLS verified by default.
//!
//! `ldaps://` or `ldap://` + StartTLS; the DC certificate is verified against the configured CA file
//! only (no system roots: an AD CA is private). `insecure_skip_verify` turns verification off and is
//! logged as a warning at every connect. The service account binds with a [`BindCredential`]: a
//! password (simple bind, by UPN or DN) or an NT hash (NTLMv2 over SASL, TLS only, see
//! [`super::ntlm_bind`]); a refused bind of either form maps AD's sub-code to a [`BindFailure`].

use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::error::{BindFailure, LdapSourceError};
use super::ntlm_bind;
use crate::source::ldap::{AccountForm, BindCredential, DomainConfig};

/// Builds a rustls client configuration trusting only the certificates in `ca_file`.
pub fn tls_config(ca_file: &std::path::Path) -> Result<Arc<ClientConfig>, LdapSourceError> {
    let mut roots = rustls::RootCertStore::empty();
    let about_ca = |e: Box<dyn std::error::Error + Send + Sync>| LdapSourceError::Tls {
        ca_file: Some(ca_file.to_path_buf()),
        source: e,
    };
    let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| about_ca(e.into()))?;
    for cert in certs {
        let cert = cert.map_err(|e| about_ca(e.into()))?;
        roots.add(cert).map_err(|e| about_ca(e.into()))?;
    }
    if roots.is_empty() {
        return Err(LdapSourceError::NoCaCertificate {
            ca_file: ca_file.to_path_buf(),
        });
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapSourceError::Tls {
            ca_file: None,
            source: e.into(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connection settings a domain's configuration asks for.
pub fn settings(cfg: &DomainConfig) -> Result<LdapConnSettings, LdapSourceError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.connect_timeout())
        .set_starttls(cfg.starttls);
    let tls = cfg.uses_tls();
    if tls && cfg.insecure_skip_verify {
        tracing::warn!(
            domain = %cfg.dns_name,
            url = %cfg.url,
            "TLS certificate verification is OFF for this domain (insecure_skip_verify); use only in a lab."
        );
        settings = settings.set_no_tls_verify(true);
    } else if let Some(ca) = &cfg.ca_file {
        settings = settings.set_config(tls_config(ca)?);
    }
    if !tls {
        tracing::warn!(
            domain = %cfg.dns_name,
            url = %cfg.url,
            "LDAP without TLS: the bind password crosses the network in clear (allow_plaintext); use only in a lab."
        );
    }
    Ok(settings)
}

/// A bound connection and the per-operation timeout to apply to each request.
#[derive(Debug, Clone)]
pub struct DcConn {
    /// The ldap3 handle (cheap to clone; operations are multiplexed on one connection).
    pub ldap: Ldap,
    /// Applied to every operation (and to every wait for the next search result).
    pub timeout: Duration,
}

impl DcConn {
    /// The handle, armed with the operation timeout for the next request.
    pub fn op(&mut self) -> &mut Ldap {
        self.ldap.with_timeout(self.timeout)
    }

    /// Unbinds politely; errors are irrelevant at that point.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Connects and binds with the configured credential (`bind_method`); the connection driver runs
/// as its own task until the handle is dropped.
pub async fn connect(cfg: &DomainConfig) -> Result<DcConn, LdapSourceError> {
    if cfg.account == AccountForm::Gmsa {
        return connect_as_gmsa(cfg).await;
    }
    let credential = cfg.bind_credential().map_err(LdapSourceError::Password)?;
    connect_with(cfg, &credential).await
}

/// Binds as the gMSA with the hashes [`crate::account::gmsa::hashes`] holds, in its order (the
/// previous password first just before a change); when the DC refuses all of them (its clock ran
/// ahead of ours), the password is read again once and tried again.
async fn connect_as_gmsa(cfg: &DomainConfig) -> Result<DcConn, LdapSourceError> {
    use crate::account::gmsa;
    let mut refused = None;
    for force in [false, true] {
        let hashes = gmsa::hashes(cfg, force)
            .await
            .map_err(|e| LdapSourceError::Gmsa(Box::new(e)))?;
        match connect_with_hashes(cfg, hashes).await {
            Err(e @ LdapSourceError::Bind { .. }) => refused = Some(e),
            other => return other,
        }
        if !force {
            tracing::warn!(domain = %cfg.dns_name, "the DC refused the held gMSA password: reading it again");
        }
    }
    Err(refused.unwrap_or_else(|| LdapSourceError::Protocol("no gMSA password to present".into())))
}

/// Binds with each NT hash in turn (NTLM) until one is accepted; a refusal of all of them is the last
/// refusal, any other error ends the tries at once.
pub async fn connect_with_hashes(
    cfg: &DomainConfig,
    hashes: impl IntoIterator<Item = crate::nt_hash::NtHash>,
) -> Result<DcConn, LdapSourceError> {
    let mut refused = None;
    for hash in hashes {
        match connect_with(cfg, &BindCredential::NtHash(hash)).await {
            Err(e @ LdapSourceError::Bind { .. }) => refused = Some(e),
            other => return other,
        }
    }
    Err(refused.unwrap_or_else(|| LdapSourceError::Protocol("no NT hash to present".into())))
}

/// Connects and binds with `credential` (e.g. a gMSA's NT hash) instead of the configured one.
/// An NT hash needs TLS: on plain `ldap://` this fails before connecting.
pub async fn connect_with(
    cfg: &DomainConfig,
    credential: &BindCredential,
) -> Result<DcConn, LdapSourceError> {
    if matches!(credential, BindCredential::NtHash(_)) && !cfg.uses_tls() {
        return Err(LdapSourceError::NtlmNeedsTls {
            url: cfg.url.clone(),
        });
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings(cfg)?, &cfg.url)
        .await
        .map_err(|e| LdapSourceError::Connection {
            url: Some(cfg.url.clone()),
            source: Box::new(e),
        })?;
    ldap3::drive!(conn);
    let res = match credential {
        BindCredential::Password(password) => {
            ldap.with_timeout(cfg.operation_timeout());
            ldap.simple_bind(&cfg.bind_dn, password.expose()).await?
        }
        BindCredential::NtHash(nt_hash) => {
            let cert = ldap.get_peer_certificate().await?.ok_or_else(|| {
                LdapSourceError::Protocol(
                    "the TLS connection has no server certificate to bind the NTLM exchange to"
                        .into(),
                )
            })?;
            ntlm_bind::bind(
                &mut ldap,
                cfg.operation_timeout(),
                &cfg.bind_dn,
                nt_hash,
                &cert,
            )
            .await?
        }
    };
    match res.rc {
        0 => Ok(DcConn {
            ldap,
            timeout: cfg.operation_timeout(),
        }),
        49 => {
            let failure = BindFailure::from_diagnostic(&res.text);
            crate::metrics::bind_failed(&cfg.dns_name, &format!("{failure:?}"));
            Err(LdapSourceError::Bind {
                bind_dn: cfg.bind_dn.clone(),
                failure,
            })
        }
        _ => Err(LdapSourceError::from_result(res)),
    }
}
