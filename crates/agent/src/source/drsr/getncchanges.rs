//! IDL_DRSGetNCChanges (opnum 3): the V8 request and the V6 reply (MS-DRSR 4.1.10).
//!
//! Request: replicate the domain NC from the cookie's high-water mark, with the cookie's
//! up-to-dateness vector, no partial attribute set (so every attribute comes back and the server
//! needs no prefix table from us). Reply: the objects of one page, the new high-water mark, `fMoreData`,
//! and (on the last page) the server's up-to-dateness vector.
//!
//! NDR notes that matter (NDR32): a union's discriminant is a plain `u32` (no union alignment), the
//! arm and every structure holding a hyper start 8-aligned, but no padding follows their last member
//! (trailer alignment is NDR64 only, MS-RPCE 2.2.5.3.4.1); pointers embedded in the REPLENTINFLIST linked list
//! are deferred per entry, so the scalars of all entries come first (each entry's `pNextEntInf`
//! referent is the next entry) and their buffers follow from the **last** entry back to the first.

use super::cookie::{Cookie, Cursor, UsnVector};
use super::drsuapi::DrsHandle;
use super::error::DrsrError;
use super::ndr::{Guid, NdrReader, NdrWriter};
use super::prefix::{self, PrefixTable};
use super::replentinf::{
    Object, Wanted, read_dsname, read_entry_buffers, read_entry_scalars, read_prefix_table,
    read_utd_v2,
};

/// DRS_WRIT_REP: replicate a writable NC.
pub const DRS_WRIT_REP: u32 = 0x0000_0010;
/// DRS_INIT_SYNC: the first replication of a cycle.
pub const DRS_INIT_SYNC: u32 = 0x0000_0020;
/// DRS_GET_ANC: send parents before children.
pub const DRS_GET_ANC: u32 = 0x0000_0800;

/// Most objects one reply page may hold.
const MAX_OBJECTS: usize = 100_000;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The bind handle.
    pub handle: &'a DrsHandle,
    /// The naming context's DN (e.g. `DC=corp,DC=example,DC=test`).
    pub nc_dn: &'a str,
    /// Where to start (the stored cookie, or default for a full replication).
    pub from: &'a Cookie,
    /// `ulFlags`.
    pub flags: u32,
    /// `cMaxObjects` per page.
    pub max_objects: u32,
    /// `cMaxBytes` per page (0 = server default).
    pub max_bytes: u32,
    /// Ask only for the attributes password hash sync needs (a partial attribute set).
    pub partial: bool,
}

/// The partial attribute set, ascending attids under our prefix table (index 9 = 1.2.840.113556.1.4):
/// userAccountControl, unicodePwd, objectSid.
pub const PAS_ATTIDS: [u32; 3] = [
    OUR_AD_INDEX << 16 | prefix::USER_ACCOUNT_CONTROL as u32,
    OUR_AD_INDEX << 16 | prefix::UNICODE_PWD as u32,
    OUR_AD_INDEX << 16 | prefix::OBJECT_SID as u32,
];
/// The index our prefix table gives `1.2.840.113556.1.4`.
const OUR_AD_INDEX: u32 = 9;

fn write_dsname(w: &mut NdrWriter, dn: &str) {
    let name: Vec<u16> = dn.encode_utf16().collect();
    let n = name.len() as u32;
    w.u32(n + 1); // conformance
    w.u32(56 + 2 * (n + 1)); // structLen
    w.u32(0); // SidLen
    w.bytes(&[0u8; 16]); // Guid
    w.bytes(&[0u8; 28]); // Sid
    w.u32(n); // NameLen
    for c in name {
        w.u16(c);
    }
    w.u16(0);
}

/// Encodes the request stub.
pub fn encode_request(req: &Request<'_>) -> Vec<u8> {
    let mut w = NdrWriter::new();
    w.bytes(req.handle);
    w.u32(8); // dwInVersion
    w.u32(8); // union discriminant
    w.align(8);
    w.bytes(&[0u8; 16]); // uuidDsaObjDest
    w.bytes(&req.from.invocation_id); // uuidInvocIdSrc
    w.pointer(); // pNC
    w.u64(req.from.hwm.high_obj_update);
    w.u64(req.from.hwm.reserved);
    w.u64(req.from.hwm.high_prop_update);
    let has_utd = !req.from.cursors.is_empty();
    if has_utd {
        w.pointer();
    } else {
        w.null();
    }
    w.u32(req.flags);
    w.u32(req.max_objects);
    w.u32(req.max_bytes);
    w.u32(0); // ulExtendedOp: none
    w.u64(0); // liFsmoInfo
    if req.partial {
        w.pointer(); // pPartialAttrSet
    } else {
        w.null();
    }
    w.null(); // pPartialAttrSetEx
    if req.partial {
        // Our prefix table: the AD attribute prefix, then the schemaInfo entry, which Samba requires
        // as the last element whenever a partial attribute set is sent (0xFF + 20 bytes).
        w.u32(2);
        w.pointer();
    } else {
        w.u32(0); // PrefixTableDest.PrefixCount
        w.null(); // PrefixTableDest.pPrefixEntry
    }
    write_dsname(&mut w, req.nc_dn);
    if has_utd {
        let n = req.from.cursors.len() as u32;
        w.u32(n); // conformance
        w.align(8);
        w.u32(1); // dwVersion
        w.u32(0);
        w.u32(n);
        w.u32(0);
        for c in &req.from.cursors {
            w.bytes(&c.dsa);
            w.u64(c.usn);
        }
    }
    if req.partial {
        let n = PAS_ATTIDS.len() as u32;
        w.u32(n); // conformance
        w.u32(1); // dwVersion
        w.u32(0); // dwReserved1
        w.u32(n);
        for attid in PAS_ATTIDS {
            w.u32(attid);
        }
        let mut schema_info = vec![0xff];
        schema_info.extend_from_slice(&[0u8; 20]);
        let entries: [(u32, &[u8]); 2] = [
            (OUR_AD_INDEX, prefix::AD_ATTRIBUTE_PREFIX),
            (0, &schema_info),
        ];
        w.u32(entries.len() as u32); // conformance
        for (index, oid) in entries {
            w.u32(index);
            w.u32(oid.len() as u32);
            w.pointer();
        }
        for (_, oid) in entries {
            w.u32(oid.len() as u32);
            w.bytes(oid);
        }
    }
    w.finish()
}

/// One page of a GetNCChanges reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The source DC's invocation id.
    pub invocation_id: Guid,
    /// The high-water mark to continue from.
    pub usn_to: UsnVector,
    /// The server's up-to-dateness vector (last page only).
    pub cursors: Option<Vec<Cursor>>,
    /// Whether more pages follow.
    pub more_data: bool,
    /// The objects of this page.
    pub objects: Vec<Object>,
    /// `cNumObjects` as the server reported it.
    pub num_objects: u32,
}

fn read_usn_vector(r: &mut NdrReader<'_>) -> Result<UsnVector, DrsrError> {
    Ok(UsnVector {
        high_obj_update: r.u64()?,
        reserved: r.u64()?,
        high_prop_update: r.u64()?,
    })
}

/// Decodes the reply stub (level 6).
pub fn decode_reply(stub: &[u8]) -> Result<Reply, DrsrError> {
    let status = stub
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes([stub[at], stub[at + 1], stub[at + 2], stub[at + 3]]))
        .ok_or_else(|| DrsrError::malformed("GetNCChanges reply", "empty"))?;
    if status != 0 {
        return Err(DrsrError::Win32 {
            call: "IDL_DRSGetNCChanges",
            code: status,
        });
    }
    let mut r = NdrReader::new(stub, "GetNCChanges reply");
    let out_version = r.u32()?;
    let level = r.u32()?;
    if out_version != 6 || level != 6 {
        return Err(DrsrError::malformed(
            "GetNCChanges reply",
            format!("reply version {out_version}/{level}, expected 6"),
        ));
    }
    r.align(8)?;
    let _dsa = r.guid()?;
    let invocation_id = r.guid()?;
    let has_nc = r.pointer()?;
    let _usn_from = read_usn_vector(&mut r)?;
    let usn_to = read_usn_vector(&mut r)?;
    let has_utd = r.pointer()?;
    let prefix_count = r.u32()?;
    let has_prefixes = r.pointer()?;
    let _extended_ret = r.u32()?;
    let num_objects = r.u32()?;
    let _num_bytes = r.u32()?;
    let has_objects = r.pointer()?;
    let more_data = r.u32()? != 0;
    let _nc_objects = r.u32()?;
    let _nc_values = r.u32()?;
    let _num_values = r.u32()?;
    let _has_values = r.pointer()?;
    let drs_error = r.u32()?;
    if drs_error != 0 {
        return Err(DrsrError::Win32 {
            call: "IDL_DRSGetNCChanges",
            code: drs_error,
        });
    }
    if has_nc {
        read_dsname(&mut r)?;
    }
    let cursors = if has_utd {
        Some(read_utd_v2(&mut r)?)
    } else {
        None
    };
    let table = if has_prefixes {
        read_prefix_table(&mut r, prefix_count)?
    } else {
        PrefixTable::default()
    };
    let mut objects = Vec::new();
    if has_objects {
        let wanted = Wanted {
            unicode_pwd: table.ad_attid(prefix::UNICODE_PWD)?,
            object_sid: table.ad_attid(prefix::OBJECT_SID)?,
            user_account_control: table.ad_attid(prefix::USER_ACCOUNT_CONTROL)?,
        };
        let mut scalars = Vec::new();
        loop {
            let (has_next, s) = read_entry_scalars(&mut r)?;
            scalars.push(s);
            if scalars.len() > MAX_OBJECTS {
                return Err(DrsrError::malformed(
                    "GetNCChanges reply",
                    "more than 100,000 objects in one page",
                ));
            }
            if !has_next {
                break;
            }
        }
        objects = scalars
            .iter()
            .rev()
            .map(|s| read_entry_buffers(&mut r, s, &wanted))
            .collect::<Result<Vec<_>, _>>()?;
        objects.reverse();
    }
    Ok(Reply {
        invocation_id,
        usn_to,
        cursors,
        more_data,
        objects,
        num_objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_8_aligned_and_carries_the_cookie() {
        let cookie = Cookie {
            invocation_id: [3; 16],
            hwm: UsnVector {
                high_obj_update: 10,
                reserved: 0,
                high_prop_update: 11,
            },
            cursors: vec![Cursor {
                dsa: [4; 16],
                usn: 12,
            }],
        };
        let stub = encode_request(&Request {
            handle: &[9; 20],
            nc_dn: "DC=a",
            from: &cookie,
            flags: DRS_WRIT_REP,
            max_objects: 1000,
            max_bytes: 0,
            partial: false,
        });
        assert_eq!(&stub[..20], &[9; 20]);
        assert_eq!(&stub[20..24], &8u32.to_le_bytes());
        assert_eq!(&stub[24..28], &8u32.to_le_bytes());
        // V8 at 32: dest(16) src invocation id(16) pNC(4) pad(4) usn vector at 72.
        assert_eq!(&stub[48..64], &[3; 16]);
        assert_eq!(&stub[72..80], &10u64.to_le_bytes());
        assert_eq!(&stub[88..96], &11u64.to_le_bytes());
        // Ends with the UTD vector's one cursor.
        assert_eq!(&stub[stub.len() - 8..], &12u64.to_le_bytes());
        assert_eq!(&stub[stub.len() - 24..stub.len() - 8], &[4; 16]);
    }
}
