//! Readers for the structures inside a GetNCChanges reply: DSNAME, the prefix table, the
//! up-to-dateness vector, and the REPLENTINFLIST entries (ENTINF, ATTRBLOCK, ATTRVALBLOCK,
//! PROPERTY_META_DATA_EXT_VECTOR), reduced to what password hash sync needs.
//!
//! Every count is checked against a limit and against the bytes left before anything is allocated.

use zeroize::Zeroizing;

use super::cookie::Cursor;
use super::error::DrsrError;
use super::ndr::{Guid, NdrReader};
use super::prefix::{PrefixEntry, PrefixTable};

/// Limits on what a reply may claim, to keep a hostile server from making us allocate without bound.
const MAX_ATTRS: u32 = 1 << 20;
const MAX_VALUES: u32 = 1 << 20;
const MAX_VALUE_LEN: u32 = 16 << 20;
const MAX_CURSORS: u32 = 100_000;
const MAX_PREFIXES: u32 = 1 << 16;
const MAX_NAME: u32 = 1 << 16;

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

pub(super) struct EntryScalars {
    has_name: bool,
    attr_count: u32,
    has_attrs: bool,
    has_parent: bool,
    has_meta: bool,
}

pub(super) struct Wanted {
    pub(super) unicode_pwd: u32,
    pub(super) object_sid: u32,
    pub(super) user_account_control: u32,
}

/// Reads a DSNAME; returns (guid, sid bytes, dn).
pub(super) fn read_dsname(r: &mut NdrReader<'_>) -> Result<(Guid, Vec<u8>, String), DrsrError> {
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

pub(super) fn read_prefix_table(
    r: &mut NdrReader<'_>,
    count: u32,
) -> Result<PrefixTable, DrsrError> {
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

pub(super) fn read_utd_v2(r: &mut NdrReader<'_>) -> Result<Vec<Cursor>, DrsrError> {
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

pub(super) fn read_attrs(
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

pub(super) fn read_entry_scalars(r: &mut NdrReader<'_>) -> Result<(bool, EntryScalars), DrsrError> {
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

pub(super) fn read_entry_buffers(
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

#[cfg(test)]
mod tests {
    use super::*;

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
