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

use zeroize::Zeroizing;

use super::cookie::{Cookie, Cursor, UsnVector};
use super::drsuapi::DrsHandle;
use super::error::DrsrError;
use super::ndr::{Guid, NdrReader, NdrWriter};
use super::prefix::{self, PrefixEntry, PrefixTable};

/// DRS_WRIT_REP: replicate a writable NC.
pub const DRS_WRIT_REP: u32 = 0x0000_0010;
/// DRS_INIT_SYNC: the first replication of a cycle.
pub const DRS_INIT_SYNC: u32 = 0x0000_0020;
/// DRS_GET_ANC: send parents before children.
pub const DRS_GET_ANC: u32 = 0x0000_0800;

/// Limits on what a reply may claim, to keep a hostile server from making us allocate without bound.
const MAX_OBJECTS: usize = 100_000;
const MAX_ATTRS: u32 = 1 << 20;
const MAX_VALUES: u32 = 1 << 20;
const MAX_VALUE_LEN: u32 = 16 << 20;
const MAX_CURSORS: u32 = 100_000;
const MAX_PREFIXES: u32 = 1 << 16;
const MAX_NAME: u32 = 1 << 16;

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

/// One replicated object, reduced to what password hash sync needs.
#[derive(Clone)]
pub struct Object {
    /// objectGUID.
    pub guid: Guid,
    /// The RID (last sub-authority of objectSid), when the object has a SID.
    pub rid: Option<u32>,
    /// The DN.
    pub dn: String,
    /// The encrypted unicodePwd value, when replicated in this page.
    pub unicode_pwd: Option<Zeroizing<Vec<u8>>>,
    /// userAccountControl, when replicated in this page.
    pub user_account_control: Option<u32>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("dn", &self.dn)
            .field("rid", &self.rid)
            .field("has_unicode_pwd", &self.unicode_pwd.is_some())
            .finish_non_exhaustive()
    }
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

struct EntryScalars {
    has_name: bool,
    attr_count: u32,
    has_attrs: bool,
    has_parent: bool,
    has_meta: bool,
}

struct Wanted {
    unicode_pwd: u32,
    object_sid: u32,
    user_account_control: u32,
}

fn read_usn_vector(r: &mut NdrReader<'_>) -> Result<UsnVector, DrsrError> {
    Ok(UsnVector {
        high_obj_update: r.u64()?,
        reserved: r.u64()?,
        high_prop_update: r.u64()?,
    })
}

/// Reads a DSNAME; returns (guid, sid bytes, dn).
fn read_dsname(r: &mut NdrReader<'_>) -> Result<(Guid, Vec<u8>, String), DrsrError> {
    let max = r.count(MAX_NAME)?;
    let _struct_len = r.u32()?;
    let sid_len = r.u32()? as usize;
    let guid = r.guid()?;
    let sid = r.take(28)?;
    let name_len = r.u32()? as usize;
    if name_len + 1 != max && name_len != max {
        return Err(DrsrError::malformed(
            "DSNAME",
            format!(
                "NameLen {name_len} for {max} characters at offset {}",
                r.position()
            ),
        ));
    }
    let raw = r.take(2 * max)?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take(name_len)
        .collect();
    let dn = String::from_utf16_lossy(&units);
    Ok((guid, sid[..sid_len.min(28)].to_vec(), dn))
}

/// The RID of a binary SID (last sub-authority), if well-formed.
pub fn rid_of(sid: &[u8]) -> Option<u32> {
    let count = usize::from(*sid.get(1)?);
    if count == 0 || sid.len() < 8 + 4 * count {
        return None;
    }
    let at = 8 + 4 * (count - 1);
    Some(u32::from_le_bytes([
        sid[at],
        sid[at + 1],
        sid[at + 2],
        sid[at + 3],
    ]))
}

fn read_prefix_table(r: &mut NdrReader<'_>, count: u32) -> Result<PrefixTable, DrsrError> {
    let max = r.count_of(MAX_PREFIXES, 12)?;
    r.expect_eq("PrefixCount", max, count as usize)?;
    let mut heads = Vec::with_capacity(max);
    for _ in 0..max {
        let index = r.u32()?;
        let len = r.u32()?;
        let present = r.pointer()?;
        heads.push((index, len, present));
    }
    let mut entries = Vec::with_capacity(max);
    for (index, len, present) in heads {
        let prefix = if present {
            let n = r.count(1024)?;
            r.expect_eq("OID length", n, len as usize)?;
            r.take(n)?.to_vec()
        } else {
            Vec::new()
        };
        entries.push(PrefixEntry { index, prefix });
    }
    Ok(PrefixTable { entries })
}

fn read_utd_v2(r: &mut NdrReader<'_>) -> Result<Vec<Cursor>, DrsrError> {
    let max = r.count_of(MAX_CURSORS, 32)?;
    r.align(8)?;
    let _version = r.u32()?;
    let _reserved = r.u32()?;
    let n = r.u32()? as usize;
    let _reserved2 = r.u32()?;
    r.expect_eq("cNumCursors", max, n)?;
    let mut cursors = Vec::with_capacity(n);
    for _ in 0..n {
        let dsa = r.guid()?;
        let usn = r.u64()?;
        let _time = r.u64()?;
        cursors.push(Cursor { dsa, usn });
    }
    Ok(cursors)
}

fn read_attrs(
    r: &mut NdrReader<'_>,
    count: u32,
    wanted: &Wanted,
    object: &mut Object,
) -> Result<(), DrsrError> {
    let max = r.count_of(MAX_ATTRS, 12)?;
    r.expect_eq("attrCount", max, count as usize)?;
    let mut heads = Vec::with_capacity(max);
    for _ in 0..max {
        let attid = r.u32()?;
        let val_count = r.u32()?;
        let present = r.pointer()?;
        heads.push((attid, val_count, present));
    }
    for (attid, val_count, present) in heads {
        if !present {
            continue;
        }
        let n = r.count_of(MAX_VALUES, 8)?;
        r.expect_eq("valCount", n, val_count as usize)?;
        let mut lens = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.u32()?;
            lens.push((len, r.pointer()?));
        }
        for (i, (len, present)) in lens.into_iter().enumerate() {
            if !present {
                continue;
            }
            let m = r.count(MAX_VALUE_LEN)?;
            r.expect_eq("valLen", m, len as usize)?;
            let value = r.take(m)?;
            if i != 0 {
                continue;
            }
            if attid == wanted.unicode_pwd {
                object.unicode_pwd = Some(Zeroizing::new(value.to_vec()));
            } else if attid == wanted.object_sid && object.rid.is_none() {
                object.rid = rid_of(value);
            } else if attid == wanted.user_account_control && value.len() == 4 {
                object.user_account_control =
                    Some(u32::from_le_bytes([value[0], value[1], value[2], value[3]]));
            }
        }
    }
    Ok(())
}

fn read_entry_scalars(r: &mut NdrReader<'_>) -> Result<(bool, EntryScalars), DrsrError> {
    let has_next = r.pointer()?;
    let has_name = r.pointer()?;
    let _flags = r.u32()?;
    let attr_count = r.u32()?;
    let has_attrs = r.pointer()?;
    let _is_nc_prefix = r.u32()?;
    let has_parent = r.pointer()?;
    let has_meta = r.pointer()?;
    Ok((
        has_next,
        EntryScalars {
            has_name,
            attr_count,
            has_attrs,
            has_parent,
            has_meta,
        },
    ))
}

fn read_entry_buffers(
    r: &mut NdrReader<'_>,
    s: &EntryScalars,
    wanted: &Wanted,
) -> Result<Object, DrsrError> {
    let mut object = Object {
        guid: [0; 16],
        rid: None,
        dn: String::new(),
        unicode_pwd: None,
        user_account_control: None,
    };
    if s.has_name {
        let (guid, sid, dn) = read_dsname(r)?;
        object.guid = guid;
        object.rid = rid_of(&sid);
        object.dn = dn;
    }
    if s.has_attrs {
        read_attrs(r, s.attr_count, wanted, &mut object)?;
    }
    if s.has_parent {
        r.guid()?;
    }
    if s.has_meta {
        let max = r.count(MAX_ATTRS)?;
        r.align(8)?;
        let n = r.u32()? as usize;
        r.expect_eq("cNumProps", max, n)?;
        for _ in 0..n {
            r.align(8)?; // PROPERTY_META_DATA_EXT holds hypers: 8-aligned
            r.u32()?;
            r.u64()?;
            r.guid()?;
            r.u64()?;
        }
    }
    Ok(object)
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

    #[test]
    fn rid_of_reads_the_last_sub_authority() {
        // S-1-5-21-1-2-3-1102
        let mut sid = vec![1, 5, 0, 0, 0, 0, 0, 5];
        for v in [21u32, 1, 2, 3, 1102] {
            sid.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(rid_of(&sid), Some(1102));
        assert_eq!(rid_of(&sid[..20]), None);
        assert_eq!(rid_of(&[]), None);
    }
}
