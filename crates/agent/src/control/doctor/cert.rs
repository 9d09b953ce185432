//! The DC certificate's expiry: a TLS handshake of our own (the same rustls configuration as the
//! feed's, [`conn::tls_config`]) to read the certificate's `notAfter`. Enters: the domain's CA
//! file, host and addresses, and `now`. Leaves: a [`Check`] — FAIL when expired, warn under 30
//! days — or nothing when the handshake itself fails (the TLS check that follows reports that).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::Check;
use crate::source::ldap::conn;

/// Under this many days left the check warns.
pub const WARN_DAYS: u64 = 30;

/// The expiry check of the certificate `host` presents on an `ldaps://` port.
pub async fn expiry(
    label: &str,
    ca_file: &Path,
    host: &str,
    addrs: &[SocketAddr],
    timeout: Duration,
    now: SystemTime,
) -> Option<Check> {
    let config = conn::tls_config(ca_file).ok()?;
    let name = ServerName::try_from(host.to_string()).ok()?;
    let handshake = async {
        let tcp = TcpStream::connect(addrs).await.ok()?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .ok()
    };
    let stream = tokio::time::timeout(timeout, handshake).await.ok()??;
    let der = stream.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).ok()?);
    Some(classify(label, not_after, now))
}

/// The expiry rule.
pub fn classify(label: &str, not_after: SystemTime, now: SystemTime) -> Check {
    let what = format!("{label}: certificate expiry");
    let date = time::OffsetDateTime::from(not_after).date();
    match not_after.duration_since(now) {
        Err(_) => Check::fail(
            what,
            format!("expired on {date}"),
            "renew the DC's certificate (it has expired)",
        ),
        Ok(left) => {
            let days = left.as_secs() / 86_400;
            let detail = format!("expires on {date} ({days} days)");
            if days < WARN_DAYS {
                Check::warn(
                    what,
                    detail,
                    format!("renew the DC's certificate before {date}"),
                )
            } else {
                Check::ok(what, detail)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::doctor::Status;

    #[test]
    fn thresholds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_625_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(classify("c", now + day * 31, now).status, Status::Ok);
        let soon = classify("c", now + day * 29, now);
        assert_eq!(soon.status, Status::Warn);
        assert!(soon.detail.contains("(29 days)"), "{soon}");
        assert_eq!(classify("c", now - day, now).status, Status::Fail);
    }
}
