//! Errors of the LDAP source, classified for the retry loop, and AD's bind sub-codes.

use std::path::{Path, PathBuf};

use ldap3::{LdapError, LdapResult};

use super::ber::BerError;
use super::entry::EntryError;
use crate::source::SinkError;

/// Why a bind was refused, from AD's `AcceptSecurityContext error, data XXX` diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailure {
    /// 525: the account does not exist.
    NoSuchUser,
    /// 52e: wrong password (or unknown user on some servers).
    BadCredentials,
    /// 530: logon not permitted at this time.
    LogonHours,
    /// 531: logon not permitted from this workstation.
    Workstation,
    /// 532: the password has expired.
    PasswordExpired,
    /// 533: the account is disabled.
    Disabled,
    /// 701: the account has expired.
    AccountExpired,
    /// 773: the password must be changed before the first logon.
    MustChangePassword,
    /// 775: the account is locked out.
    LockedOut,
    /// Result 49 without a known sub-code.
    Other,
}

impl BindFailure {
    /// Extracts the sub-code from the server's diagnostic text (`…, data 52e, v1db1`).
    pub fn from_diagnostic(text: &str) -> BindFailure {
        let lower = text.to_ascii_lowercase();
        let code = lower.split("data ").nth(1).map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect::<String>()
        });
        match code.as_deref() {
            Some("525") => BindFailure::NoSuchUser,
            Some("52e") => BindFailure::BadCredentials,
            Some("530") => BindFailure::LogonHours,
            Some("531") => BindFailure::Workstation,
            Some("532") => BindFailure::PasswordExpired,
            Some("533") => BindFailure::Disabled,
            Some("701") => BindFailure::AccountExpired,
            Some("773") => BindFailure::MustChangePassword,
            Some("775") => BindFailure::LockedOut,
            _ => BindFailure::Other,
        }
    }

    /// A message an administrator can act on.
    pub fn message(self) -> &'static str {
        match self {
            BindFailure::NoSuchUser => "the service account does not exist (525)",
            BindFailure::BadCredentials => {
                "bad credentials: wrong password or unknown bind name (52e)"
            }
            BindFailure::LogonHours => "logon is not permitted at this time (530)",
            BindFailure::Workstation => "logon is not permitted from this host (531)",
            BindFailure::PasswordExpired => {
                "the service account's password has expired; set a new one (532)"
            }
            BindFailure::Disabled => "the service account is disabled (533)",
            BindFailure::AccountExpired => "the service account has expired (701)",
            BindFailure::MustChangePassword => {
                "the service account must change its password before it can bind (773)"
            }
            BindFailure::LockedOut => {
                "the service account is locked out; unlock it or wait for the lockout to end (775)"
            }
            BindFailure::Other => "invalid credentials (49)",
        }
    }
}

/// What went wrong while reading a domain.
#[derive(Debug, thiserror::Error)]
pub enum LdapSourceError {
    /// The TCP/TLS connection could not be made or broke (incl. timeouts); retry with backoff.
    #[error("LDAP connection failed: {}{source}{}", prefix(.url.as_deref()), hint(source))]
    Connection {
        /// The server's URL, when connecting to it failed (not a later operation).
        url: Option<String>,
        /// What ldap3 reported (boxed: it is large and this error travels in every `Result`).
        #[source]
        source: Box<LdapError>,
    },
    /// TLS could not be set up from the configuration (CA file unreadable or not PEM, a certificate
    /// rustls refuses, no protocol version the crypto provider offers).
    #[error("TLS setup failed: {}{source}", prefix(.ca_file.as_deref().map(Path::display)))]
    Tls {
        /// The CA file, when the failure is about it.
        ca_file: Option<PathBuf>,
        /// What the PEM reader or rustls reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The CA file holds no certificate.
    #[error("TLS setup failed: {} holds no certificate", .ca_file.display())]
    NoCaCertificate {
        /// The CA file.
        ca_file: PathBuf,
    },
    /// The bind password could not be read (`password_file`).
    #[error("cannot read the bind password: {0}")]
    Password(#[source] std::io::Error),
    /// The server refused the bind.
    #[error("bind as {bind_dn} refused: {}", failure.message())]
    Bind {
        /// The bind name that was used.
        bind_dn: String,
        /// The decoded reason.
        failure: BindFailure,
    },
    /// An NTLM bind was asked for on a connection without TLS.
    #[error(
        "the NTLM bind to {url} needs TLS: use ldaps:// or set starttls = true \
         (without TLS the session would have to be NTLM-sealed, which is not supported)"
    )]
    NtlmNeedsTls {
        /// The configured URL.
        url: String,
    },
    /// The bind name cannot be used for NTLM.
    #[error(
        "bind_dn {0:?} cannot be used for an NTLM bind: give the account as DOMAIN\\user or as a UPN \
         (svc@corp.example.test), not as a DN"
    )]
    NtlmBindName(String),
    /// The gMSA's password could not be read (the host is not allowed, the gMSA is missing, …).
    #[error(transparent)]
    Gmsa(Box<crate::account::gmsa::GmsaError>),
    /// The server refused the stored DirSync cookie; a full resync is needed.
    #[error("the server rejected the DirSync cookie: {0}")]
    CookieRejected(String),
    /// The account lacks the right to use DirSync (use the uSNChanged mode or grant Get-Changes).
    #[error("DirSync not permitted for this account: {0}")]
    DirSyncDenied(String),
    /// The server returned a non-success result code.
    #[error("LDAP operation failed with result {rc}: {text}")]
    Server {
        /// The LDAP result code.
        rc: u32,
        /// The server's diagnostic text.
        text: String,
    },
    /// The server's reply does not have the shape a step expects (what is missing or wrong, in
    /// words).
    #[error("malformed reply from the server: {0}")]
    Protocol(String),
    /// A BER value in the server's reply (a control's value) does not decode.
    #[error("malformed reply from the server: {0}")]
    Ber(#[from] BerError),
    /// An entry in the server's reply does not decode.
    #[error("malformed reply from the server: {0}")]
    Entry(#[from] EntryError),
    /// The journal refused the events.
    #[error("journal append failed: {0}")]
    Sink(#[from] SinkError),
}

impl LdapSourceError {
    /// Maps a non-success `LdapResult`.
    pub fn from_result(res: LdapResult) -> LdapSourceError {
        LdapSourceError::Server {
            rc: res.rc,
            text: res.text,
        }
    }

    /// True when waiting and reconnecting may help (network, server busy or restarting).
    pub fn is_retriable(&self) -> bool {
        match self {
            LdapSourceError::Connection { .. }
            | LdapSourceError::Protocol(_)
            | LdapSourceError::Ber(_)
            | LdapSourceError::Entry(_) => true,
            // busy, unavailable, unwillingToPerform during start-up, timeLimitExceeded, other.
            LdapSourceError::Server { rc, .. } => matches!(rc, 1 | 3 | 51 | 52 | 53 | 80 | 81),
            LdapSourceError::Bind { failure, .. } => *failure == BindFailure::LockedOut,
            LdapSourceError::Sink(e) => e.is_retriable(),
            // A DC unreachable while reading the password is worth retrying; a refusal is not.
            LdapSourceError::Gmsa(e) => match e.as_ref() {
                crate::account::gmsa::GmsaError::Ldap { source, .. } => source.is_retriable(),
                _ => false,
            },
            LdapSourceError::Tls { .. }
            | LdapSourceError::NoCaCertificate { .. }
            | LdapSourceError::Password(_)
            | LdapSourceError::NtlmNeedsTls { .. }
            | LdapSourceError::NtlmBindName(_)
            | LdapSourceError::CookieRejected(_)
            | LdapSourceError::DirSyncDenied(_) => false,
        }
    }
}

impl From<LdapError> for LdapSourceError {
    fn from(err: LdapError) -> Self {
        match err {
            LdapError::LdapResult { result } => LdapSourceError::from_result(result),
            other => LdapSourceError::Connection {
                url: None,
                source: Box::new(other),
            },
        }
    }
}

/// What an administrator should read into ldap3's terse transport errors (`timeout: deadline has
/// elapsed`, `op send error: channel closed`), found by the fault campaign (tests/fault_campaign.rs):
/// a DC frozen or overloaded, a DC that stopped or dropped the connection, nothing listening.
fn hint(source: &LdapError) -> &'static str {
    match source {
        LdapError::Timeout { .. } => {
            " (the domain controller did not answer within the configured timeout, connect_timeout_secs or operation_timeout_secs: it is overloaded, frozen or unreachable)"
        }
        LdapError::OpSend { .. } | LdapError::ResultRecv { .. } | LdapError::EndOfStream => {
            " (the connection to the domain controller was closed: it stopped, restarted or dropped the connection)"
        }
        LdapError::Io { source } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            " (nothing listens at that address: is the domain controller running?)"
        }
        _ => "",
    }
}

/// `"{context}: "`, or nothing without a context.
fn prefix(context: Option<impl std::fmt::Display>) -> String {
    context.map_or_else(String::new, |c| format!("{c}: "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_say_what_they_mean_for_the_dc() {
        let timeout = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        let text = LdapSourceError::from(LdapError::from(timeout)).to_string();
        assert!(
            text.starts_with("LDAP connection failed: timeout: deadline has elapsed (the domain controller did not answer within the configured timeout"),
            "{text}"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = LdapSourceError::from(LdapError::from(refused)).to_string();
        assert!(
            text.ends_with("(nothing listens at that address: is the domain controller running?)"),
            "{text}"
        );
        // Other errors keep ldap3's text alone.
        let other = std::io::Error::other("boom");
        assert_eq!(
            LdapSourceError::from(LdapError::from(other)).to_string(),
            "LDAP connection failed: I/O error: boom"
        );
    }

    #[test]
    fn ad_sub_codes_map_to_failures() {
        // Diagnostics as Samba and AD print them.
        let cases = [
            (
                "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 52e, v3839",
                BindFailure::BadCredentials,
            ),
            (
                "AcceptSecurityContext error, data 775, v1db1",
                BindFailure::LockedOut,
            ),
            (
                "AcceptSecurityContext error, data 532, v1db1",
                BindFailure::PasswordExpired,
            ),
            (
                "AcceptSecurityContext error, data 773, v1db1",
                BindFailure::MustChangePassword,
            ),
            (
                "AcceptSecurityContext error, data 533, v1db1",
                BindFailure::Disabled,
            ),
            (
                "AcceptSecurityContext error, data 701, v1db1",
                BindFailure::AccountExpired,
            ),
            (
                "AcceptSecurityContext error, data 525, v1db1",
                BindFailure::NoSuchUser,
            ),
            ("invalid credentials", BindFailure::Other),
        ];
        for (text, want) in cases {
            assert_eq!(BindFailure::from_diagnostic(text), want, "{text}");
        }
    }

    fn reset() -> LdapError {
        LdapError::Io {
            source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
        }
    }

    #[test]
    fn wrapped_errors_keep_their_source_and_their_text() {
        use std::error::Error;
        let conn = LdapSourceError::from(reset());
        assert!(
            conn.source()
                .is_some_and(|s| s.to_string() == "I/O error: reset")
        );
        assert_eq!(conn.to_string(), "LDAP connection failed: I/O error: reset");
        let at = LdapSourceError::Connection {
            url: Some("ldaps://dc1".into()),
            source: Box::new(reset()),
        };
        assert_eq!(
            at.to_string(),
            "LDAP connection failed: ldaps://dc1: I/O error: reset"
        );
        let tls = LdapSourceError::Tls {
            ca_file: Some(PathBuf::from("/etc/ca.pem")),
            source: Box::new(std::io::Error::other("denied")),
        };
        assert_eq!(tls.to_string(), "TLS setup failed: /etc/ca.pem: denied");
        assert!(tls.source().is_some());
        let none = LdapSourceError::NoCaCertificate {
            ca_file: PathBuf::from("/etc/ca.pem"),
        };
        assert_eq!(
            none.to_string(),
            "TLS setup failed: /etc/ca.pem holds no certificate"
        );
        let password = LdapSourceError::Password(std::io::Error::other("no such file"));
        assert_eq!(
            password.to_string(),
            "cannot read the bind password: no such file"
        );
        assert!(password.source().is_some());
        let ber = LdapSourceError::from(BerError::Truncated);
        assert!(ber.is_retriable() && ber.source().is_some());
        assert!(
            ber.to_string()
                .starts_with("malformed reply from the server: ")
        );
    }

    #[test]
    fn classification() {
        assert!(LdapSourceError::from(reset()).is_retriable());
        assert!(
            LdapSourceError::Server {
                rc: 51,
                text: String::new()
            }
            .is_retriable()
        );
        assert!(
            !LdapSourceError::Server {
                rc: 50,
                text: String::new()
            }
            .is_retriable()
        );
        let bind = LdapSourceError::Bind {
            bind_dn: "svc".into(),
            failure: BindFailure::BadCredentials,
        };
        assert!(!bind.is_retriable());
        assert!(bind.to_string().contains("52e"));
    }
}
