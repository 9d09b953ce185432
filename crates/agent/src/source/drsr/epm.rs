//! The endpoint mapper (port 135): `ept_map` finds the TCP port of an RPC interface.
//!
//! A tower (C706 appendix L) is `u16 floor_count` then floors `u16 lhs_len | lhs | u16 rhs_len | rhs`:
//! interface UUID+version, transfer syntax, protocol 0x0b (connection-oriented), 0x07 TCP port
//! (big-endian), 0x09 IPv4 address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::error::DrsrError;
use super::ndr::{Guid, NdrReader, NdrWriter};
use super::pdu::NDR_SYNTAX;
use super::transport::Connection;

/// The endpoint mapper interface: e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0.
pub const EPM_INTERFACE: (Guid, u16, u16) = (
    [
        0x08, 0x83, 0xaf, 0xe1, 0x1f, 0x5d, 0xc9, 0x11, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0,
        0xfa,
    ],
    3,
    0,
);
const EPT_MAP: u16 = 3;
/// Largest tower we accept.
const MAX_TOWER: u32 = 4096;

fn floor(out: &mut Vec<u8>, lhs: &[u8], rhs: &[u8]) {
    out.extend_from_slice(&(lhs.len() as u16).to_le_bytes());
    out.extend_from_slice(lhs);
    out.extend_from_slice(&(rhs.len() as u16).to_le_bytes());
    out.extend_from_slice(rhs);
}

fn uuid_floor(out: &mut Vec<u8>, (uuid, major, minor): (Guid, u16, u16)) {
    let mut lhs = vec![0x0d];
    lhs.extend_from_slice(&uuid);
    lhs.extend_from_slice(&major.to_le_bytes());
    floor(out, &lhs, &minor.to_le_bytes());
}

/// The tower asking for `interface` over TCP/IP.
pub fn tower(interface: (Guid, u16, u16)) -> Vec<u8> {
    let mut t = 5u16.to_le_bytes().to_vec();
    uuid_floor(&mut t, interface);
    uuid_floor(&mut t, (NDR_SYNTAX.0, NDR_SYNTAX.1, NDR_SYNTAX.2));
    floor(&mut t, &[0x0b], &[0, 0]);
    floor(&mut t, &[0x07], &[0, 0]);
    floor(&mut t, &[0x09], &[0, 0, 0, 0]);
    t
}

/// The `ept_map` request stub.
pub fn map_request(interface: (Guid, u16, u16)) -> Vec<u8> {
    let t = tower(interface);
    let mut w = NdrWriter::new();
    w.null(); // object UUID
    w.pointer(); // map_tower
    w.u32(t.len() as u32); // conformance
    w.u32(t.len() as u32); // tower_length
    w.bytes(&t);
    w.align(4);
    w.bytes(&[0u8; 20]); // entry_handle
    w.u32(4); // max_towers
    w.finish()
}

/// Decodes an `ept_map` response and returns the first TCP port found.
pub fn parse_map_response(stub: &[u8]) -> Result<u16, DrsrError> {
    let mut r = NdrReader::new(stub, "ept_map response");
    r.take(20)?; // entry_handle
    let num_towers = r.u32()?;
    let max = r.count(1024)?;
    let offset = r.u32()? as usize;
    let actual = r.count_of(1024, 4)?;
    if offset != 0 || actual > max || num_towers as usize != actual {
        return Err(DrsrError::malformed(
            "ept_map response",
            "inconsistent tower array bounds",
        ));
    }
    let mut present = Vec::with_capacity(actual);
    for _ in 0..actual {
        present.push(r.pointer()?);
    }
    let mut port = None;
    for p in present {
        if !p {
            continue;
        }
        let len = r.count(MAX_TOWER)?;
        let tower_len = r.u32()? as usize;
        r.expect_eq("tower_length", len, tower_len)?;
        let t = r.take(len)?;
        if port.is_none() {
            port = tcp_port(t)?;
        }
    }
    let status = r.u32()?;
    if status != 0 {
        return Err(DrsrError::NoEndpoint);
    }
    port.ok_or(DrsrError::NoEndpoint)
}

/// The TCP port floor of a tower, if any.
pub fn tcp_port(t: &[u8]) -> Result<Option<u16>, DrsrError> {
    let mut r = NdrReader::new(t, "tower");
    let floors = u16::from_le_bytes([r.take(1)?[0], r.take(1)?[0]]);
    let mut port = None;
    for _ in 0..floors {
        let lhs_len = usize::from(u16::from_le_bytes([r.take(1)?[0], r.take(1)?[0]]));
        let lhs = r.take(lhs_len)?;
        let rhs_len = usize::from(u16::from_le_bytes([r.take(1)?[0], r.take(1)?[0]]));
        let rhs = r.take(rhs_len)?;
        if lhs == [0x07] && rhs.len() == 2 {
            port = Some(u16::from_be_bytes([rhs[0], rhs[1]]));
        }
    }
    Ok(port)
}

/// Asks the endpoint mapper on `ip:135` for the TCP port of `interface`.
pub async fn resolve(
    ip: IpAddr,
    interface: (Guid, u16, u16),
    timeout: Duration,
) -> Result<u16, DrsrError> {
    let mut conn =
        Connection::connect(SocketAddr::from((ip, 135)), EPM_INTERFACE, None, timeout).await?;
    let stub = conn.call(EPT_MAP, &map_request(interface)).await?;
    parse_map_response(&stub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tower_has_five_floors_and_the_port_floor_parses() {
        let t = tower(([1; 16], 4, 0));
        assert_eq!(&t[..2], &[5, 0]);
        assert_eq!(
            t.len(),
            2 + 2 * (2 + 19 + 2 + 2) + 2 * (2 + 1 + 2 + 2) + (2 + 1 + 2 + 4)
        );
        let mut with_port = t.clone();
        // The TCP floor's rhs (2 bytes) sits 2 + 4 bytes before the end (IP floor: 2+1+2+4).
        let at = t.len() - 9 - 2;
        with_port[at..at + 2].copy_from_slice(&49153u16.to_be_bytes());
        assert_eq!(tcp_port(&with_port).unwrap(), Some(49153));
    }

    #[test]
    fn response_parser_reads_the_port_and_rejects_garbage() {
        let t = {
            let mut t = tower(([1; 16], 4, 0));
            let at = t.len() - 11;
            t[at..at + 2].copy_from_slice(&49153u16.to_be_bytes());
            t
        };
        let mut w = NdrWriter::new();
        w.bytes(&[0; 20]);
        w.u32(1);
        w.u32(4);
        w.u32(0);
        w.u32(1);
        w.pointer();
        w.u32(t.len() as u32);
        w.u32(t.len() as u32);
        w.bytes(&t);
        w.align(4);
        w.u32(0);
        let stub = w.finish();
        assert_eq!(parse_map_response(&stub).unwrap(), 49153);
        for cut in 0..stub.len() {
            assert!(parse_map_response(&stub[..cut]).is_err());
        }
    }
}
