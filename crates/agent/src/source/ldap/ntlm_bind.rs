//! The LDAP bind from an NT hash: NTLMSSP (NTLMv2) inside SASL `GSS-SPNEGO`, over TLS only.
//!
//! Enters: a TLS-protected, unbound [`ldap3::Ldap`], the account (`DOMAIN\user` or a UPN) and its
//! [`NtHash`]. Leaves: the server's final [`ldap3::LdapResult`] (rc 0 = bound; rc 49 carries AD's
//! sub-code, mapped by the caller as for the simple bind).
//!
//! Why: a group managed service account's password is 256 random bytes that need not be valid
//! UTF-16, so no API taking a password string (simple bind, ldap3's `sasl_ntlm_bind`) can carry it;
//! the NT hash is all NTLMv2 needs.
//!
//! The exchange (two SASL rounds through the vendored ldap3's `Ldap::sasl_bind_step`):
//! 1. `GSS-SPNEGO` with a raw NTLMSSP NEGOTIATE (no SPNEGO wrapper: Samba and AD both fall back to
//!    NTLMSSP by its signature) → rc 14 `saslBindInProgress` and a CHALLENGE.
//! 2. `GSS-SPNEGO` with the AUTHENTICATE → rc 0, or 49 with the reason.
//!
//! The NEGOTIATE asks for neither SIGN nor SEAL: over TLS, Samba answers `unwillingToPerform` ("Sign or
//! Seal are not allowed if TLS is used") and Windows refuses them too; and ldap3 cannot wrap an LDAP
//! stream in NTLM sealing, so plain `ldap://` is refused before connecting. The NTLMv2 response
//! carries MsvAvChannelBindings for RFC 5929 `tls-server-end-point` (the hash of the server's DER
//! certificate), which Samba 4.21+ requires by default and Windows requires under
//! `LdapEnforceChannelBinding = 2`.

use ldap3::{Ldap, LdapResult};
use sha2::Digest;

use super::error::LdapSourceError;
use crate::nt_hash::NtHash;
use crate::ntlmssp::{
    self, EXTENDED_SESSIONSECURITY, Identity, KEY_EXCH, NEGOTIATE_56, NEGOTIATE_128, NTLM, Nonces,
    REQUEST_TARGET, TARGET_INFO, UNICODE,
};

/// The SASL mechanism: raw NTLMSSP under `GSS-SPNEGO` (Windows does not advertise `NTLM`).
pub const MECHANISM: &str = "GSS-SPNEGO";

/// LDAP result code `saslBindInProgress`.
const SASL_BIND_IN_PROGRESS: u32 = 14;

/// The flags the LDAP bind offers: NTLMv2 with extended session security, no SIGN or SEAL.
pub const LDAP_FLAGS: u32 = UNICODE
    | REQUEST_TARGET
    | NTLM
    | EXTENDED_SESSIONSECURITY
    | TARGET_INFO
    | NEGOTIATE_128
    | KEY_EXCH
    | NEGOTIATE_56;

/// The flags the server must grant (anything less would not be NTLMv2 with Unicode names).
const REQUIRED: u32 = UNICODE | EXTENDED_SESSIONSECURITY;

/// The NTLM user and domain for a bind name: `DOMAIN\user` → (`user`, `DOMAIN`); a UPN
/// `user@corp.example.test` → (`user`, `corp.example.test`), the DNS domain standing for the NetBIOS
/// one. (Sent whole with an empty domain, Samba 4.17 resolves the UPN for a good password but
/// answers a bad one with `data 490` instead of 52e and does not count it towards lockout; so the
/// UPN's suffix must be the domain's DNS name, else use `DOMAIN\user`.) A DN cannot be used: NTLM
/// has no way to name an account by DN.
pub fn ntlm_identity(bind_dn: &str) -> Result<(&str, &str), LdapSourceError> {
    let pair = match bind_dn.split_once('\\') {
        Some((domain, user)) => Some((user, domain)),
        None if !bind_dn.contains('=') => bind_dn.split_once('@'),
        None => None,
    };
    match pair {
        Some((user, domain)) if !user.is_empty() && !domain.is_empty() => Ok((user, domain)),
        _ => Err(LdapSourceError::NtlmBindName(bind_dn.to_string())),
    }
}

/// RFC 5929 `tls-server-end-point` application data: `"tls-server-end-point:"` followed by the
/// hash of the DER certificate, the hash being the certificate's signature hash, with SHA-256 for
/// MD5 and SHA-1 (§4.1).
pub fn tls_server_end_point(cert_der: &[u8]) -> Result<Vec<u8>, LdapSourceError> {
    let bad = |detail: String| {
        LdapSourceError::Protocol(format!(
            "cannot compute TLS channel bindings from the server certificate: {detail}"
        ))
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| bad(e.to_string()))?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let hash: Vec<u8> = match oid.as_str() {
        // md5/sha1/sha224/sha256 with RSA; ecdsa with sha1/sha224/sha256; dsa with sha1/sha224/sha256.
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.14"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.1"
        | "1.2.840.10045.4.3.2"
        | "1.2.840.10040.4.3"
        | "2.16.840.1.101.3.4.3.1"
        | "2.16.840.1.101.3.4.3.2" => sha2::Sha256::digest(cert_der).to_vec(),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert_der).to_vec(),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert_der).to_vec(),
        other => {
            return Err(bad(format!(
                "signature algorithm {other} has no tls-server-end-point hash defined"
            )));
        }
    };
    let mut data = b"tls-server-end-point:".to_vec();
    data.extend_from_slice(&hash);
    Ok(data)
}

/// Runs the two-round NTLM bind on a TLS connection whose server certificate is `cert_der`.
pub async fn bind(
    ldap: &mut Ldap,
    timeout: std::time::Duration,
    bind_name: &str,
    nt_hash: &NtHash,
    cert_der: &[u8],
) -> Result<LdapResult, LdapSourceError> {
    let (user, domain) = ntlm_identity(bind_name)?;
    let bindings = ntlmssp::channel_bindings_hash(&tls_server_end_point(cert_der)?);
    let (res, token) = ldap
        .with_timeout(timeout)
        .sasl_bind_step(MECHANISM, &ntlmssp::negotiate(LDAP_FLAGS))
        .await?;
    if res.rc != SASL_BIND_IN_PROGRESS {
        return Ok(res);
    }
    let token = token.ok_or_else(|| {
        LdapSourceError::Protocol("the NTLM bind got no CHALLENGE from the server".into())
    })?;
    let challenge =
        ntlmssp::parse_challenge(&token).map_err(|e| LdapSourceError::Protocol(e.to_string()))?;
    if challenge.flags & REQUIRED != REQUIRED {
        return Err(LdapSourceError::Protocol(format!(
            "the server's NTLM CHALLENGE does not grant Unicode and extended session security \
             (flags {:#010x})",
            challenge.flags
        )));
    }
    let id = Identity {
        user,
        domain,
        nt_hash,
    };
    let authenticate = ntlmssp::authenticate(
        id,
        &challenge,
        &Nonces::random(),
        LDAP_FLAGS,
        Some(&bindings),
    )
    .map_err(|e| LdapSourceError::Protocol(e.to_string()))?;
    let (res, _) = ldap
        .with_timeout(timeout)
        .sasl_bind_step(MECHANISM, &authenticate)
        .await?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_names_for_ntlm() {
        assert_eq!(
            ntlm_identity("CORP\\svc-sync").unwrap(),
            ("svc-sync", "CORP")
        );
        assert_eq!(
            ntlm_identity("svc@corp.example.test").unwrap(),
            ("svc", "corp.example.test")
        );
        for bad in [
            "CN=svc,CN=Users,DC=corp",
            "\\svc",
            "CORP\\",
            "svc",
            "@corp",
            "svc@",
        ] {
            let err = ntlm_identity(bad).unwrap_err();
            assert!(matches!(err, LdapSourceError::NtlmBindName(_)), "{bad}");
            assert!(err.to_string().contains("DOMAIN\\user"), "{err}");
        }
    }

    #[test]
    fn ldap_profile_never_asks_for_sign_or_seal() {
        assert_eq!(LDAP_FLAGS & (ntlmssp::SIGN | ntlmssp::SEAL), 0);
        let msg = ntlmssp::negotiate(LDAP_FLAGS);
        assert_eq!(
            u32::from_le_bytes(msg[12..16].try_into().unwrap()) & 0x30,
            0
        );
    }

    /// A self-signed certificate from rcgen (ECDSA P-256 with SHA-256) hashes with SHA-256; the
    /// expected value is computed here with `sha2` over the DER, independently of the OID table.
    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let cert = rcgen::generate_simple_self_signed(vec!["dc1.corp.example.test".into()])
            .unwrap()
            .cert;
        let der = cert.der().to_vec();
        let data = tls_server_end_point(&der).unwrap();
        let (prefix, hash) = data.split_at(21);
        assert_eq!(prefix, b"tls-server-end-point:");
        assert_eq!(hash, &sha2::Sha256::digest(&der)[..]);
        assert!(tls_server_end_point(b"not a certificate").is_err());

        // ECDSA P-384 with SHA-384: the hash is SHA-384.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let params = rcgen::CertificateParams::new(vec!["dc1".into()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let data = tls_server_end_point(&der).unwrap();
        assert_eq!(&data[21..], &sha2::Sha384::digest(&der)[..]);
    }
}
