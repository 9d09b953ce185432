//! DCE/RPC connection-oriented PDUs (C706 §12.6, MS-RPCE §2.2.2): framing, bind, auth3, request,
//! response, fault, and the security trailer.
//!
//! Common header (16 bytes, little-endian data representation):
//! ```text
//! u8 rpc_vers = 5 | u8 rpc_vers_minor = 0 | u8 ptype | u8 pfc_flags | u8[4] drep = 10 00 00 00
//! u16 frag_length | u16 auth_length | u32 call_id
//! ```
//! With authentication, a PDU ends in `stub | pad | sec_trailer (8) | auth_value (auth_length)`.

use super::error::DrsrError;
use super::ndr::Guid;

/// PDU type: request.
pub const REQUEST: u8 = 0;
/// PDU type: response.
pub const RESPONSE: u8 = 2;
/// PDU type: fault.
pub const FAULT: u8 = 3;
/// PDU type: bind.
pub const BIND: u8 = 11;
/// PDU type: bind_ack.
pub const BIND_ACK: u8 = 12;
/// PDU type: bind_nak.
pub const BIND_NAK: u8 = 13;
/// PDU type: auth3.
pub const AUTH3: u8 = 16;

/// First fragment flag.
pub const FIRST_FRAG: u8 = 0x01;
/// Last fragment flag.
pub const LAST_FRAG: u8 = 0x02;

/// Header length.
pub const HEADER_LEN: usize = 16;
/// Request/response header length (common header + alloc_hint, context id, opnum / cancel count).
pub const REQUEST_HEADER_LEN: usize = 24;
/// Security trailer length.
pub const SEC_TRAILER_LEN: usize = 8;

/// Authentication service: NTLM (`RPC_C_AUTHN_WINNT`).
pub const AUTHN_WINNT: u8 = 10;
/// Authentication level: packet privacy (sign and seal).
pub const AUTHN_LEVEL_PKT_PRIVACY: u8 = 6;

/// The NDR 2.0 transfer syntax.
pub const NDR_SYNTAX: (Guid, u16, u16) = (
    [
        0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48,
        0x60,
    ],
    2,
    0,
);

/// A parsed common header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// PDU type.
    pub ptype: u8,
    /// `pfc_flags`.
    pub flags: u8,
    /// Length of the whole fragment.
    pub frag_len: u16,
    /// Length of the auth value.
    pub auth_len: u16,
    /// Call id.
    pub call_id: u32,
}

impl Header {
    /// Decodes and validates a common header.
    pub fn parse(b: &[u8]) -> Result<Header, DrsrError> {
        let b: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| DrsrError::malformed("PDU header", "shorter than 16 bytes"))?;
        if b[0] != 5 || b[1] != 0 {
            return Err(DrsrError::malformed(
                "PDU header",
                format!("RPC version {}.{}, expected 5.0", b[0], b[1]),
            ));
        }
        if b[4] & 0xf0 != 0x10 {
            return Err(DrsrError::malformed(
                "PDU header",
                "big-endian data representation is not supported",
            ));
        }
        let h = Header {
            ptype: b[2],
            flags: b[3],
            frag_len: u16::from_le_bytes([b[8], b[9]]),
            auth_len: u16::from_le_bytes([b[10], b[11]]),
            call_id: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        };
        let min = HEADER_LEN
            + if h.auth_len > 0 {
                SEC_TRAILER_LEN + usize::from(h.auth_len)
            } else {
                0
            };
        if usize::from(h.frag_len) < min {
            return Err(DrsrError::malformed(
                "PDU header",
                format!("frag_length {} below {min}", h.frag_len),
            ));
        }
        Ok(h)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[5, 0, self.ptype, self.flags, 0x10, 0, 0, 0]);
        out.extend_from_slice(&self.frag_len.to_le_bytes());
        out.extend_from_slice(&self.auth_len.to_le_bytes());
        out.extend_from_slice(&self.call_id.to_le_bytes());
    }
}

/// The 8-byte security trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecTrailer {
    /// Authentication service.
    pub auth_type: u8,
    /// Authentication level.
    pub auth_level: u8,
    /// Bytes of padding before the trailer.
    pub pad_len: u8,
    /// Security context id.
    pub context_id: u32,
}

impl SecTrailer {
    /// Encodes the trailer.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.auth_type, self.auth_level, self.pad_len, 0]);
        out.extend_from_slice(&self.context_id.to_le_bytes());
    }

    fn parse(b: &[u8]) -> Result<SecTrailer, DrsrError> {
        let b: &[u8; 8] = b
            .try_into()
            .map_err(|_| DrsrError::malformed("security trailer", "not 8 bytes"))?;
        Ok(SecTrailer {
            auth_type: b[0],
            auth_level: b[1],
            pad_len: b[2],
            context_id: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// A PDU split into its parts (borrowing the fragment).
#[derive(Debug)]
pub struct Split<'a> {
    /// The header.
    pub header: Header,
    /// Bytes between the common header and the padding (type-specific header + stub).
    pub body: &'a [u8],
    /// Trailer and auth value, when authenticated.
    pub auth: Option<(SecTrailer, &'a [u8])>,
}

/// Splits one complete fragment (exactly `frag_len` bytes).
pub fn split(pdu: &[u8]) -> Result<Split<'_>, DrsrError> {
    let header = Header::parse(pdu)?;
    if pdu.len() != usize::from(header.frag_len) {
        return Err(DrsrError::malformed(
            "PDU",
            format!("{} bytes for frag_length {}", pdu.len(), header.frag_len),
        ));
    }
    if header.auth_len == 0 {
        return Ok(Split {
            header,
            body: &pdu[HEADER_LEN..],
            auth: None,
        });
    }
    let auth_start = pdu.len() - usize::from(header.auth_len);
    let trailer_start = auth_start - SEC_TRAILER_LEN;
    let trailer = SecTrailer::parse(&pdu[trailer_start..auth_start])?;
    let body_end = trailer_start
        .checked_sub(usize::from(trailer.pad_len))
        .filter(|&e| e >= HEADER_LEN)
        .ok_or_else(|| DrsrError::malformed("PDU", "auth padding longer than the body"))?;
    Ok(Split {
        header,
        body: &pdu[HEADER_LEN..body_end],
        auth: Some((trailer, &pdu[auth_start..])),
    })
}

/// Encodes a bind PDU for one interface with the NDR transfer syntax.
pub fn bind(
    call_id: u32,
    max_frag: u16,
    interface: (Guid, u16, u16),
    auth: Option<(SecTrailer, &[u8])>,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&max_frag.to_le_bytes());
    body.extend_from_slice(&max_frag.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // assoc_group_id: new
    body.extend_from_slice(&[1, 0, 0, 0]); // one context element
    body.extend_from_slice(&0u16.to_le_bytes()); // context id 0
    body.extend_from_slice(&[1, 0]); // one transfer syntax
    body.extend_from_slice(&interface.0);
    body.extend_from_slice(&interface.1.to_le_bytes());
    body.extend_from_slice(&interface.2.to_le_bytes());
    body.extend_from_slice(&NDR_SYNTAX.0);
    body.extend_from_slice(&u32::from(NDR_SYNTAX.1).to_le_bytes());
    assemble(BIND, FIRST_FRAG | LAST_FRAG, call_id, &body, auth)
}

/// Encodes an auth3 PDU (the third NTLM leg).
pub fn auth3(call_id: u32, trailer: SecTrailer, auth_value: &[u8]) -> Vec<u8> {
    assemble(
        AUTH3,
        FIRST_FRAG | LAST_FRAG,
        call_id,
        &[0u8; 4],
        Some((trailer, auth_value)),
    )
}

/// Header + body + (trailer, auth value), with frag and auth lengths filled in. The body must already
/// carry its padding (see `trailer.pad_len`).
pub fn assemble(
    ptype: u8,
    flags: u8,
    call_id: u32,
    body: &[u8],
    auth: Option<(SecTrailer, &[u8])>,
) -> Vec<u8> {
    let auth_len = auth.map_or(0, |(_, v)| v.len());
    let frag_len = HEADER_LEN + body.len() + auth.map_or(0, |_| SEC_TRAILER_LEN) + auth_len;
    let mut out = Vec::with_capacity(frag_len);
    Header {
        ptype,
        flags,
        frag_len: u16::try_from(frag_len).unwrap_or(u16::MAX),
        auth_len: u16::try_from(auth_len).unwrap_or(u16::MAX),
        call_id,
    }
    .encode(&mut out);
    out.extend_from_slice(body);
    if let Some((trailer, value)) = auth {
        trailer.encode(&mut out);
        out.extend_from_slice(value);
    }
    out
}

/// The parts of a bind_ack we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAck {
    /// Largest fragment the server receives.
    pub max_recv: u16,
    /// Presentation context result (0 = acceptance).
    pub result: u16,
    /// Rejection reason when `result != 0`.
    pub reason: u16,
    /// The server's auth token (the NTLM CHALLENGE), if any.
    pub auth_value: Vec<u8>,
}

/// Decodes a bind_ack (or returns the bind_nak reason as an error).
pub fn parse_bind_ack(pdu: &[u8]) -> Result<BindAck, DrsrError> {
    let s = split(pdu)?;
    match s.header.ptype {
        BIND_ACK => {}
        BIND_NAK => {
            let reason = s
                .body
                .get(..2)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
            return Err(DrsrError::BindRejected(u32::from(reason)));
        }
        FAULT => return Err(DrsrError::Fault(fault_status(s.body)?)),
        got => {
            return Err(DrsrError::UnexpectedPdu {
                got,
                expected: "bind_ack",
            });
        }
    }
    let b = s.body;
    let bad = || DrsrError::malformed("bind_ack", "truncated");
    let word = |at: usize| {
        b.get(at..at + 2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .ok_or_else(bad)
    };
    let max_recv = word(2)?;
    let addr_len = usize::from(word(8)?);
    // Secondary address then padding to 4 from the PDU start (HEADER_LEN is a multiple of 4).
    let mut at = 10 + addr_len;
    at += (4 - at % 4) % 4;
    let n_results = *b.get(at).ok_or_else(bad)?;
    if n_results == 0 {
        return Err(DrsrError::malformed("bind_ack", "no context results"));
    }
    let result = word(at + 4)?;
    let reason = word(at + 6)?;
    Ok(BindAck {
        max_recv,
        result,
        reason,
        auth_value: s.auth.map(|(_, v)| v.to_vec()).unwrap_or_default(),
    })
}

/// The status of a fault PDU body (after the common header).
pub fn fault_status(body: &[u8]) -> Result<u32, DrsrError> {
    body.get(8..12)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| DrsrError::malformed("fault PDU", "truncated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        let pdu = assemble(REQUEST, 3, 7, &[0u8; 8], None);
        let h = Header::parse(&pdu).unwrap();
        assert_eq!(
            (h.ptype, h.flags, h.frag_len, h.call_id),
            (REQUEST, 3, 24, 7)
        );
        assert!(Header::parse(&[4, 0, 0, 0]).is_err());
        let mut bad = pdu.clone();
        bad[0] = 4;
        assert!(Header::parse(&bad).is_err());
        let mut short = pdu.clone();
        short[8] = 10; // frag_length below the header
        assert!(Header::parse(&short).is_err());
    }

    #[test]
    fn bind_matches_the_c706_layout() {
        let iface = ([0x11; 16], 4, 0);
        let pdu = bind(1, 5840, iface, None);
        assert_eq!(pdu.len(), 72);
        assert_eq!(&pdu[..4], &[5, 0, BIND, 3]);
        assert_eq!(u16::from_le_bytes([pdu[8], pdu[9]]), 72);
        assert_eq!(&pdu[32..48], &[0x11; 16]);
        assert_eq!(&pdu[52..68], &NDR_SYNTAX.0);
    }

    #[test]
    fn split_finds_padding_trailer_and_auth_value() {
        let trailer = SecTrailer {
            auth_type: AUTHN_WINNT,
            auth_level: AUTHN_LEVEL_PKT_PRIVACY,
            pad_len: 3,
            context_id: 9,
        };
        let pdu = assemble(
            RESPONSE,
            3,
            1,
            &[1, 2, 3, 4, 5, 0, 0, 0],
            Some((trailer, &[0xaa; 16])),
        );
        let s = split(&pdu).unwrap();
        assert_eq!(s.body, &[1, 2, 3, 4, 5]);
        assert_eq!(s.auth.unwrap().0, trailer);
        assert_eq!(s.auth.unwrap().1, &[0xaa; 16]);
        let mut evil = pdu.clone();
        evil[HEADER_LEN + 8 + 2] = 200; // pad_len beyond the body
        assert!(split(&evil).is_err());
    }
}
