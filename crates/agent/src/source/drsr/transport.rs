//! DCE/RPC over TCP (`ncacn_ip_tcp`): connect, bind (plain or NTLM packet privacy), calls with
//! request fragmentation and response reassembly.
//!
//! Sealed requests: each fragment carries `stub part | pad to 4 | sec_trailer | signature`; only the
//! last fragment may need padding, so every other fragment's stub part is a multiple of 16 bytes.
//! Responses: each fragment is unsealed and its signature verified on its own (own sequence number),
//! then the stub parts are concatenated until `LAST_FRAG`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::DrsrError;
use super::ndr::Guid;
use super::ntlm::{self, Credentials, Nonces, Session};
use super::pdu::{self, SecTrailer};

/// Largest fragment we offer to send and receive.
pub const MAX_FRAG: u16 = 5840;
/// Largest reassembled response stub we accept (a GetNCChanges page is far below this).
pub const MAX_STUB: usize = 256 * 1024 * 1024;
/// Security context id we use (any value the server echoes).
const AUTH_CONTEXT_ID: u32 = 79231;

/// An open, bound DCE/RPC connection.
pub struct Connection {
    stream: TcpStream,
    call_id: u32,
    max_xmit: u16,
    session: Option<Session>,
    /// No call has succeeded since the NTLM bind: a fault now means the credentials were refused.
    unproven: bool,
    timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("call_id", &self.call_id)
            .field("max_xmit", &self.max_xmit)
            .field("sealed", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` and binds `interface`; with `creds`, authenticates with NTLM at packet privacy.
    pub async fn connect(
        addr: std::net::SocketAddr,
        interface: (Guid, u16, u16),
        creds: Option<&Credentials>,
        timeout: Duration,
    ) -> Result<Connection, DrsrError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| DrsrError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            call_id: 1,
            max_xmit: MAX_FRAG,
            session: None,
            unproven: false,
            timeout,
        };
        let trailer = SecTrailer {
            auth_type: pdu::AUTHN_WINNT,
            auth_level: pdu::AUTHN_LEVEL_PKT_PRIVACY,
            pad_len: 0,
            context_id: AUTH_CONTEXT_ID,
        };
        let negotiate = ntlm::negotiate();
        let auth = creds.map(|_| (trailer, negotiate.as_slice()));
        let bind = pdu::bind(conn.call_id, MAX_FRAG, interface, auth);
        conn.write(&bind).await?;
        let ack = pdu::parse_bind_ack(&conn.read_fragment().await?)?;
        if ack.result != 0 {
            return Err(DrsrError::BindRejected(u32::from(ack.reason)));
        }
        conn.max_xmit = ack.max_recv.clamp(1024, MAX_FRAG);
        if let Some(creds) = creds {
            let challenge = ntlm::parse_challenge(&ack.auth_value)?;
            let (authenticate, session) = ntlm::authenticate(creds, &challenge, &Nonces::random())?;
            conn.write(&pdu::auth3(conn.call_id, trailer, &authenticate))
                .await?;
            conn.session = Some(session);
            conn.unproven = true;
        }
        conn.call_id += 1;
        Ok(conn)
    }

    /// The NTLM exported session key, when the connection is sealed.
    pub fn session_key(&self) -> Option<&[u8; 16]> {
        self.session.as_ref().map(Session::session_key)
    }

    /// Calls `opnum` with an NDR stub and returns the response stub.
    pub async fn call(&mut self, opnum: u16, stub: &[u8]) -> Result<Vec<u8>, DrsrError> {
        let call_id = self.call_id;
        self.call_id = self.call_id.wrapping_add(1);
        let fragments =
            request_fragments(call_id, opnum, stub, self.max_xmit, self.session.as_mut());
        for fragment in fragments {
            self.write(&fragment).await?;
        }
        let mut out = Vec::new();
        loop {
            let mut fragment = self.read_fragment().await?;
            let (last, part) = match open_response(&mut fragment, call_id, self.session.as_mut()) {
                // Samba answers the first call after a refused AUTH3 with a protocol-error fault,
                // Windows with access denied.
                Err(DrsrError::Fault(code @ (5 | 0x1c01_000b))) if self.unproven => {
                    return Err(DrsrError::Ntlm(format!(
                        "the domain controller refused the credentials (fault {code:#x}): check the \
                         account name, domain and password"
                    )));
                }
                other => other?,
            };
            self.unproven = false;
            if out.len() + part.len() > MAX_STUB {
                return Err(DrsrError::malformed(
                    "response",
                    "reassembled stub exceeds 256 MiB",
                ));
            }
            out.extend_from_slice(part);
            if last {
                return Ok(out);
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), DrsrError> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| DrsrError::Timeout(self.timeout))??;
        Ok(())
    }

    async fn read_fragment(&mut self) -> Result<Vec<u8>, DrsrError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            let mut header = [0u8; pdu::HEADER_LEN];
            self.stream.read_exact(&mut header).await?;
            let h = pdu::Header::parse(&header)?;
            let mut fragment = vec![0u8; usize::from(h.frag_len)];
            fragment[..pdu::HEADER_LEN].copy_from_slice(&header);
            self.stream
                .read_exact(&mut fragment[pdu::HEADER_LEN..])
                .await?;
            Ok(fragment)
        })
        .await
        .map_err(|_| DrsrError::Timeout(timeout))?
    }
}

/// Splits and (when sealed) seals a request into fragments.
pub fn request_fragments(
    call_id: u32,
    opnum: u16,
    stub: &[u8],
    max_xmit: u16,
    mut session: Option<&mut Session>,
) -> Vec<Vec<u8>> {
    let overhead = pdu::REQUEST_HEADER_LEN
        + if session.is_some() {
            pdu::SEC_TRAILER_LEN + 16 + 15
        } else {
            0
        };
    let room = usize::from(max_xmit).saturating_sub(overhead).max(16) & !15;
    let alloc_hint = u32::try_from(stub.len()).unwrap_or(u32::MAX);
    let chunks: Vec<&[u8]> = if stub.is_empty() {
        vec![&[]]
    } else {
        stub.chunks(room).collect()
    };
    let n = chunks.len();
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut flags = 0;
        if i == 0 {
            flags |= pdu::FIRST_FRAG;
        }
        if i + 1 == n {
            flags |= pdu::LAST_FRAG;
        }
        let mut body = Vec::with_capacity(8 + chunk.len() + 16);
        body.extend_from_slice(&alloc_hint.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes()); // presentation context 0
        body.extend_from_slice(&opnum.to_le_bytes());
        body.extend_from_slice(chunk);
        let Some(session) = session.as_deref_mut() else {
            out.push(pdu::assemble(pdu::REQUEST, flags, call_id, &body, None));
            continue;
        };
        let pad = (4 - chunk.len() % 4) % 4;
        body.resize(body.len() + pad, 0);
        let trailer = SecTrailer {
            auth_type: pdu::AUTHN_WINNT,
            auth_level: pdu::AUTHN_LEVEL_PKT_PRIVACY,
            pad_len: pad as u8,
            context_id: AUTH_CONTEXT_ID,
        };
        let mut fragment = pdu::assemble(
            pdu::REQUEST,
            flags,
            call_id,
            &body,
            Some((trailer, &[0; 16])),
        );
        let signed_len = fragment.len() - 16;
        let stub_range = pdu::REQUEST_HEADER_LEN..pdu::REQUEST_HEADER_LEN + chunk.len() + pad;
        let sig = session.seal(&mut fragment[..signed_len], stub_range);
        fragment[signed_len..].copy_from_slice(&sig);
        out.push(fragment);
    }
    out
}

/// Unseals one response fragment in place and returns (last fragment?, stub part).
pub fn open_response<'a>(
    fragment: &'a mut [u8],
    call_id: u32,
    session: Option<&mut Session>,
) -> Result<(bool, &'a [u8]), DrsrError> {
    let (header, body_len, auth) = {
        let s = pdu::split(fragment)?;
        let auth = s.auth.map(|(t, v)| (t, v.len()));
        (s.header, s.body.len(), auth)
    };
    if header.ptype == pdu::FAULT {
        let s = pdu::split(fragment)?;
        return Err(DrsrError::Fault(pdu::fault_status(s.body)?));
    }
    if header.ptype != pdu::RESPONSE {
        return Err(DrsrError::UnexpectedPdu {
            got: header.ptype,
            expected: "response",
        });
    }
    if header.call_id != call_id {
        return Err(DrsrError::malformed(
            "response",
            format!("call id {} for call {call_id}", header.call_id),
        ));
    }
    if body_len < 8 {
        return Err(DrsrError::malformed("response", "shorter than its header"));
    }
    let stub_start = pdu::REQUEST_HEADER_LEN;
    let stub_end = pdu::HEADER_LEN + body_len;
    match (session, auth) {
        (Some(session), Some((trailer, auth_len))) => {
            if trailer.auth_level != pdu::AUTHN_LEVEL_PKT_PRIVACY {
                return Err(DrsrError::malformed(
                    "response",
                    format!("auth level {} on a sealed connection", trailer.auth_level),
                ));
            }
            let signed_len = fragment.len() - auth_len;
            let (signed, sig) = fragment.split_at_mut(signed_len);
            let sealed = stub_start..stub_end + usize::from(trailer.pad_len);
            session.unseal(signed, sealed, sig)?;
        }
        (Some(_), None) => {
            return Err(DrsrError::malformed(
                "response",
                "unsigned PDU on a sealed connection",
            ));
        }
        (None, _) => {}
    }
    Ok((
        header.flags & pdu::LAST_FRAG != 0,
        &fragment[stub_start..stub_end],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [0x5a; 16];

    fn stub(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn sealed_requests_fragment_and_the_peer_reassembles_them() {
        let mut client = Session::for_fuzzing(&KEY).unwrap();
        let mut server = Session::server_role(&KEY).unwrap();
        let original = stub(20_003);
        let fragments = request_fragments(7, 3, &original, 1024, Some(&mut client));
        assert!(fragments.len() >= 20);
        let mut joined = Vec::new();
        for (i, mut f) in fragments.clone().into_iter().enumerate() {
            assert!(f.len() <= 1024);
            let (header, body_len, trailer) = {
                let s = pdu::split(&f).unwrap();
                (s.header, s.body.len(), s.auth.unwrap().0)
            };
            assert_eq!(header.flags & pdu::FIRST_FRAG != 0, i == 0);
            assert_eq!(header.flags & pdu::LAST_FRAG != 0, i + 1 == fragments.len());
            assert_eq!(header.call_id, 7);
            let sig_at = f.len() - 16;
            let (signed, sig) = f.split_at_mut(sig_at);
            let end = pdu::HEADER_LEN + body_len;
            server
                .unseal(signed, 24..end + usize::from(trailer.pad_len), sig)
                .unwrap();
            joined.extend_from_slice(&signed[24..end]);
        }
        assert_eq!(joined, original);
    }

    /// Builds sealed response fragments the way a server does.
    fn responses(server: &mut Session, call_id: u32, stub: &[u8], room: usize) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = stub.chunks(room).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                let flags = if i == 0 { pdu::FIRST_FRAG } else { 0 }
                    | if i + 1 == n { pdu::LAST_FRAG } else { 0 };
                let pad = (4 - chunk.len() % 4) % 4;
                let mut body = vec![0u8; 8];
                body.extend_from_slice(chunk);
                body.resize(body.len() + pad, 0);
                let trailer = SecTrailer {
                    auth_type: pdu::AUTHN_WINNT,
                    auth_level: pdu::AUTHN_LEVEL_PKT_PRIVACY,
                    pad_len: pad as u8,
                    context_id: 1,
                };
                let mut f = pdu::assemble(
                    pdu::RESPONSE,
                    flags,
                    call_id,
                    &body,
                    Some((trailer, &[0; 16])),
                );
                let sig_at = f.len() - 16;
                let sig = server.seal(&mut f[..sig_at], 24..24 + chunk.len() + pad);
                f[sig_at..].copy_from_slice(&sig);
                f
            })
            .collect()
    }

    #[test]
    fn sealed_responses_reassemble_and_tampering_is_caught() {
        let mut client = Session::for_fuzzing(&KEY).unwrap();
        let mut server = Session::server_role(&KEY).unwrap();
        let original = stub(9_999);
        let mut joined = Vec::new();
        let mut last_seen = false;
        for mut f in responses(&mut server, 4, &original, 1000) {
            let (last, part) = open_response(&mut f, 4, Some(&mut client)).unwrap();
            joined.extend_from_slice(part);
            last_seen = last;
        }
        assert!(last_seen);
        assert_eq!(joined, original);

        let mut f = responses(&mut server, 5, b"secret stub", 100).remove(0);
        f[30] ^= 1;
        assert!(matches!(
            open_response(&mut f, 5, Some(&mut client)),
            Err(DrsrError::BadSignature)
        ));
        let mut f = responses(&mut server, 6, b"x", 100).remove(0);
        assert!(open_response(&mut f, 99, Some(&mut client)).is_err());
        let mut fault = pdu::assemble(
            pdu::FAULT,
            3,
            8,
            &[0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0],
            None,
        );
        assert!(matches!(
            open_response(&mut fault, 8, Some(&mut client)),
            Err(DrsrError::Fault(5))
        ));
    }
}
