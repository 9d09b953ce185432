//! DRSUAPI: the interface, IDL_DRSBind (opnum 0) and IDL_DRSUnbind (opnum 1).
//!
//! Bind sends `DRS_EXTENSIONS_INT` with cb = 48 (`dwFlags, SiteObjGuid, Pid, dwReplEpoch,
//! dwFlagsExt, ConfigObjGUID`) and asks for GetNCChanges request V8 / reply V6 and strong encryption
//! of secrets (MS-DRSR 5.39).

use super::error::DrsrError;
use super::ndr::{Guid, NdrReader, NdrWriter};

/// DRSUAPI: e3514235-4b06-11d1-ab04-00c04fc2dcd2 v4.0.
pub const DRSUAPI_INTERFACE: (Guid, u16, u16) = (
    [
        0x35, 0x42, 0x51, 0xe3, 0x06, 0x4b, 0xd1, 0x11, 0xab, 0x04, 0x00, 0xc0, 0x4f, 0xc2, 0xdc,
        0xd2,
    ],
    4,
    0,
);

/// NTDSAPI_CLIENT_GUID e24d201a-4fd6-11d1-a3da-0000f875ae0d: a client that is not a DC.
pub const NTDSAPI_CLIENT_GUID: Guid = [
    0x1a, 0x20, 0x4d, 0xe2, 0xd6, 0x4f, 0xd1, 0x11, 0xa3, 0xda, 0x00, 0x00, 0xf8, 0x75, 0xae, 0x0d,
];

/// Opnum of IDL_DRSBind.
pub const OP_BIND: u16 = 0;
/// Opnum of IDL_DRSUnbind.
pub const OP_UNBIND: u16 = 1;
/// Opnum of IDL_DRSGetNCChanges.
pub const OP_GET_NC_CHANGES: u16 = 3;

/// DRS_EXT_BASE.
pub const EXT_BASE: u32 = 0x0000_0001;
/// DRS_EXT_RESTORE_USN_OPTIMIZATION.
pub const EXT_RESTORE_USN_OPTIMIZATION: u32 = 0x0000_0040;
/// DRS_EXT_STRONG_ENCRYPTION: secrets are encrypted with MD5/RC4 under the session key.
pub const EXT_STRONG_ENCRYPTION: u32 = 0x0000_8000;
/// DRS_EXT_GETCHGREQ_V6.
pub const EXT_GETCHGREQ_V6: u32 = 0x0040_0000;
/// DRS_EXT_GETCHGREQ_V8.
pub const EXT_GETCHGREQ_V8: u32 = 0x0100_0000;
/// DRS_EXT_GETCHGREPLY_V6.
pub const EXT_GETCHGREPLY_V6: u32 = 0x0400_0000;

/// The extensions we advertise.
pub const CLIENT_EXTENSIONS: u32 = EXT_BASE
    | EXT_RESTORE_USN_OPTIMIZATION
    | EXT_STRONG_ENCRYPTION
    | EXT_GETCHGREQ_V6
    | EXT_GETCHGREQ_V8
    | EXT_GETCHGREPLY_V6;

/// A DRS context handle (20 bytes).
pub type DrsHandle = [u8; 20];

/// The IDL_DRSBind request stub.
pub fn bind_request() -> Vec<u8> {
    let mut w = NdrWriter::new();
    w.pointer();
    w.guid(&NTDSAPI_CLIENT_GUID);
    w.pointer();
    let cb = 48u32;
    w.u32(cb); // conformance
    w.u32(cb);
    w.bytes(&CLIENT_EXTENSIONS.to_le_bytes());
    w.bytes(&[0u8; 16]); // SiteObjGuid
    w.bytes(&std::process::id().to_le_bytes());
    w.bytes(&0u32.to_le_bytes()); // dwReplEpoch
    w.bytes(&0u32.to_le_bytes()); // dwFlagsExt
    w.bytes(&[0u8; 16]); // ConfigObjGUID
    w.finish()
}

/// What IDL_DRSBind returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindReply {
    /// The server's `dwFlags` extensions (0 when it sent none).
    pub server_extensions: u32,
    /// The context handle for later calls.
    pub handle: DrsHandle,
}

/// Decodes the IDL_DRSBind response stub.
pub fn parse_bind_reply(stub: &[u8]) -> Result<BindReply, DrsrError> {
    let mut r = NdrReader::new(stub, "IDL_DRSBind reply");
    let mut server_extensions = 0;
    if r.pointer()? {
        let max = r.count(10_000)?;
        let cb = r.u32()? as usize;
        r.expect_eq("cb", max, cb)?;
        let rgb = r.take(cb)?;
        if let Some(f) = rgb.get(..4) {
            server_extensions = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
        }
    }
    r.align(4)?;
    let mut handle = [0u8; 20];
    handle.copy_from_slice(r.take(20)?);
    let status = r.u32()?;
    if status != 0 {
        return Err(DrsrError::Win32 {
            call: "IDL_DRSBind",
            code: status,
        });
    }
    Ok(BindReply {
        server_extensions,
        handle,
    })
}

/// The IDL_DRSUnbind request stub.
pub fn unbind_request(handle: &DrsHandle) -> Vec<u8> {
    handle.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_request_layout() {
        let stub = bind_request();
        // ptr, guid, ptr, max_count, cb, 48 bytes of extensions.
        assert_eq!(stub.len(), 4 + 16 + 4 + 4 + 4 + 48);
        assert_eq!(&stub[4..20], &NTDSAPI_CLIENT_GUID);
        assert_eq!(&stub[24..28], &48u32.to_le_bytes());
        assert_eq!(&stub[32..36], &CLIENT_EXTENSIONS.to_le_bytes());
    }

    #[test]
    fn bind_reply_parses_and_reports_errors() {
        let mut w = NdrWriter::new();
        w.pointer();
        w.u32(4);
        w.u32(4);
        w.bytes(&0x0400_8001u32.to_le_bytes());
        w.bytes(&[7u8; 20]);
        w.u32(0);
        let ok = w.finish();
        let reply = parse_bind_reply(&ok).unwrap();
        assert_eq!(reply.server_extensions, 0x0400_8001);
        assert_eq!(reply.handle, [7u8; 20]);
        let mut denied = ok.clone();
        let n = denied.len();
        denied[n - 4..].copy_from_slice(&5u32.to_le_bytes());
        assert!(matches!(
            parse_bind_reply(&denied),
            Err(DrsrError::Win32 { code: 5, .. })
        ));
        for cut in 0..ok.len() {
            assert!(parse_bind_reply(&ok[..cut]).is_err());
        }
    }
}
