//! The DC certificate's expiry: a TLS handshake of our own (the same rustls configuration as the
//! feed's, [`conn::tls_config`]) to read the certificate's `notAfter` — on an `ldaps://` port
//! directly, or on `ldap://` after a StartTLS extended operation ([`starttls`], RFC 4511 §4.14.1)
//! for `starttls = true`. Enters: the domain's CA file, host and addresses, whether to StartTLS,
//! and `now`. Leaves: a [`Check`] — FAIL when expired, warn under 30 days — or nothing when the
//! handshake itself fails (the TLS check that follows reports that).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Check;
use crate::source::ldap::ber::{self, Reader};
use crate::source::ldap::conn;

/// The StartTLS extended operation's OID.
const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// The largest StartTLS answer read (an ExtendedResponse is a few dozen bytes; a referral more).
const MAX_ANSWER: usize = 16 * 1024;

/// Under this many days left the check warns.
pub const WARN_DAYS: u64 = 30;

/// The expiry check of the certificate `host` presents on an `ldaps://` port, or after StartTLS on
/// an `ldap://` port when `starttls`.
pub async fn expiry(
    label: &str,
    ca_file: &Path,
    host: &str,
    addrs: &[SocketAddr],
    starttls: bool,
    timeout: Duration,
    now: SystemTime,
) -> Option<Check> {
    let config = conn::tls_config(ca_file).ok()?;
    let name = ServerName::try_from(host.to_string()).ok()?;
    let handshake = async {
        let mut tcp = TcpStream::connect(addrs).await.ok()?;
        if starttls {
            start_tls(&mut tcp).await.ok()?;
        }
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

/// The StartTLS extended request (message id 1) as BER.
fn starttls_request() -> Vec<u8> {
    let mut ext = Vec::new();
    ber::write_tlv(&mut ext, 0x80, STARTTLS_OID.as_bytes()); // requestName [0]
    let mut msg = Vec::new();
    ber::write_integer(&mut msg, 1);
    ber::write_tlv(&mut msg, 0x77, &ext); // ExtendedRequest [APPLICATION 23]
    let mut out = Vec::new();
    ber::write_tlv(&mut out, ber::TAG_SEQUENCE, &msg);
    out
}

/// The result code of an ExtendedResponse LDAPMessage.
fn starttls_result(message: &[u8]) -> Result<i64, ber::BerError> {
    let mut outer = Reader::new(message);
    let mut seq = outer.sequence()?;
    let _id = seq.integer()?;
    let response = seq.expect(0x78)?; // ExtendedResponse [APPLICATION 24]
    let code = Reader::new(response.value).expect(0x0a)?; // resultCode ENUMERATED
    ber::decode_integer(code.value)
}

/// Asks for StartTLS on `tcp` and reads the answer; `Err` unless the server says success (0).
async fn start_tls(tcp: &mut TcpStream) -> std::io::Result<()> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    tcp.write_all(&starttls_request()).await?;
    // Tag and first length octet, then the long-form length octets, then the content.
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await?;
    let mut message = head.to_vec();
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err(bad(format!("StartTLS answer has a {n}-octet length")));
        }
        let mut octets = vec![0u8; n];
        tcp.read_exact(&mut octets).await?;
        message.extend_from_slice(&octets);
        octets
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if len > MAX_ANSWER {
        return Err(bad(format!("StartTLS answer of {len} bytes")));
    }
    let mut content = vec![0u8; len];
    tcp.read_exact(&mut content).await?;
    message.extend_from_slice(&content);
    match starttls_result(&message) {
        Ok(0) => Ok(()),
        Ok(code) => Err(bad(format!("StartTLS refused with result code {code}"))),
        Err(e) => Err(bad(format!("StartTLS answer: {e}"))),
    }
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
    fn starttls_request_is_the_rfc_4511_extended_request() {
        // SEQUENCE { INTEGER 1, [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } }
        let mut want = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
        want.extend_from_slice(b"1.3.6.1.4.1.1466.20037");
        assert_eq!(starttls_request(), want);
        // A success answer, and a protocolError (2) one.
        let ok = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(starttls_result(&ok).ok(), Some(0));
        let refused = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(starttls_result(&refused).ok(), Some(2));
        assert!(starttls_result(&[0x30, 0x03, 0x02, 0x01]).is_err());
    }

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
