//! The binary self-relative security descriptor of MS-DTYP 2.4.6, as AD serves it in
//! `nTSecurityDescriptor`. Enters: the attribute's bytes (network input: every length and offset is
//! checked, a hostile descriptor is a [`SdError`], never a panic). Leaves: a [`SecurityDescriptor`]
//! to edit, its bytes again ([`SecurityDescriptor::to_bytes`]) and an SDDL rendering for messages
//! and docs ([`SecurityDescriptor::sddl`]).
//!
//! Parsed: the header, the owner and group SIDs, the DACL with ACCESS_ALLOWED(_OBJECT) and
//! ACCESS_DENIED(_OBJECT) ACEs (mask, object type and inherited object type GUIDs, flags). Kept as
//! bytes and written back unchanged: the SACL and every other ACE type (audit, callback,
//! conditional, resource attribute), and any bytes an ACE carries after its SID. The parts are
//! written in the order they were read, so a descriptor without gaps round-trips byte for byte.
//!
//! Written by the project: no maintained, Apache-2.0-compatible crate parses *and* writes a whole
//! self-relative descriptor (checked on crates.io for issue 13: `windows-sddl` parses but writes only
//! one fixed descriptor and drops the SACL; `sddl` is GPL-3.0 and panics on some ACE types;
//! `ms_dtyp` is AGPL-3.0; `windows-permissions` is Windows-only). The fuzz target
//! `fuzz/fuzz_targets/security_descriptor.rs` checks parse → write → parse.

use std::fmt::{self, Write as _};

/// Why bytes are not a security descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdError {
    /// A structure does not fit in the bytes it claims.
    #[error("security descriptor: {what} at offset {offset} runs past the end ({len} bytes)")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// The descriptor's length.
        len: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("security descriptor: {0}")]
    Invalid(String),
    /// An SDDL-ish text (a SID or GUID) did not parse.
    #[error("{0:?} is not a valid {1}")]
    BadText(String, &'static str),
}

/// `SE_DACL_PRESENT`.
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// `SE_SACL_PRESENT`.
pub const SE_SACL_PRESENT: u16 = 0x0010;
/// `SE_SELF_RELATIVE`.
pub const SE_SELF_RELATIVE: u16 = 0x8000;

/// ACE type ACCESS_ALLOWED.
pub const ACCESS_ALLOWED: u8 = 0;
/// ACE type ACCESS_DENIED.
pub const ACCESS_DENIED: u8 = 1;
/// ACE type ACCESS_ALLOWED_OBJECT.
pub const ACCESS_ALLOWED_OBJECT: u8 = 5;
/// ACE type ACCESS_DENIED_OBJECT.
pub const ACCESS_DENIED_OBJECT: u8 = 6;

/// ACE flag OBJECT_INHERIT (`OI`).
pub const OBJECT_INHERIT: u8 = 0x01;
/// ACE flag CONTAINER_INHERIT (`CI`).
pub const CONTAINER_INHERIT: u8 = 0x02;
/// ACE flag INHERIT_ONLY (`IO`).
pub const INHERIT_ONLY: u8 = 0x08;
/// ACE flag INHERITED (`ID`): a copy the server made from a parent.
pub const INHERITED: u8 = 0x10;

/// `ACL_REVISION_DS`: required once an object ACE is present.
pub const ACL_REVISION_DS: u8 = 4;

/// A SID (MS-DTYP 2.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    /// Always 1 in practice; kept as read.
    pub revision: u8,
    /// The identifier authority (big-endian on the wire).
    pub authority: [u8; 6],
    /// The sub-authorities (at most 15).
    pub sub: Vec<u32>,
}

impl Sid {
    fn parse(b: &[u8], at: usize) -> Result<(Sid, usize), SdError> {
        let head = slice(b, at, 8, "SID")?;
        let n = usize::from(head[1]);
        if n > 15 {
            return Err(SdError::Invalid(format!(
                "SID at offset {at} claims {n} sub-authorities (at most 15)"
            )));
        }
        let body = slice(b, at + 8, 4 * n, "SID")?;
        let mut authority = [0u8; 6];
        authority.copy_from_slice(&head[2..8]);
        let sub = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((
            Sid {
                revision: head[0],
                authority,
                sub,
            },
            8 + 4 * n,
        ))
    }

    /// The SID's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.sub.len());
        out.push(self.revision);
        out.push(u8::try_from(self.sub.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.authority);
        for s in &self.sub {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Parses `objectSid`'s binary value (exactly one SID).
    pub fn from_bytes(b: &[u8]) -> Result<Sid, SdError> {
        let (sid, len) = Sid::parse(b, 0)?;
        if len != b.len() {
            return Err(SdError::Invalid(format!(
                "a SID of {len} bytes followed by {} more",
                b.len() - len
            )));
        }
        Ok(sid)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut a = [0u8; 8];
        a[2..].copy_from_slice(&self.authority);
        write!(f, "S-{}-{}", self.revision, u64::from_be_bytes(a))?;
        for s in &self.sub {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Sid {
    type Err = SdError;
    fn from_str(s: &str) -> Result<Sid, SdError> {
        let bad = || SdError::BadText(s.to_string(), "SID (S-1-5-21-…)");
        let mut parts = s.split('-');
        if !parts.next().is_some_and(|p| p.eq_ignore_ascii_case("S")) {
            return Err(bad());
        }
        let revision = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let auth: u64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if auth >= 1 << 48 {
            return Err(bad());
        }
        let mut authority = [0u8; 6];
        authority.copy_from_slice(&auth.to_be_bytes()[2..]);
        let sub = parts
            .map(|p| p.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        if sub.len() > 15 {
            return Err(bad());
        }
        Ok(Sid {
            revision,
            authority,
            sub,
        })
    }
}

/// A GUID, kept in its wire order (Data1..3 little-endian, Data4 as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9]
        )?;
        for x in &b[10..] {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Guid {
    type Err = SdError;
    fn from_str(s: &str) -> Result<Guid, SdError> {
        let bad = || SdError::BadText(s.to_string(), "GUID");
        let p: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if p.len() != 5
            || p.iter()
                .zip(lens)
                .any(|(x, l)| x.len() != l || !x.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(bad());
        }
        let hex = |x: &str| u64::from_str_radix(x, 16).map_err(|_| bad());
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&u32::try_from(hex(p[0])?).map_err(|_| bad())?.to_le_bytes());
        b[4..6].copy_from_slice(&u16::try_from(hex(p[1])?).map_err(|_| bad())?.to_le_bytes());
        b[6..8].copy_from_slice(&u16::try_from(hex(p[2])?).map_err(|_| bad())?.to_le_bytes());
        b[8..10].copy_from_slice(&u16::try_from(hex(p[3])?).map_err(|_| bad())?.to_be_bytes());
        b[10..16].copy_from_slice(&hex(p[4])?.to_be_bytes()[2..]);
        Ok(Guid(b))
    }
}

/// One ACE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ace {
    /// ACCESS_ALLOWED(_OBJECT) or ACCESS_DENIED(_OBJECT).
    Access(AccessAce),
    /// Any other type, kept as read (its header's type and flags, the body after the header).
    Other {
        /// The ACE type.
        ace_type: u8,
        /// The ACE flags.
        flags: u8,
        /// The bytes after the 4-byte header.
        body: Vec<u8>,
    },
}

/// An allow or deny ACE, plain or object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAce {
    /// [`ACCESS_ALLOWED`], [`ACCESS_DENIED`], [`ACCESS_ALLOWED_OBJECT`] or [`ACCESS_DENIED_OBJECT`].
    pub ace_type: u8,
    /// The ACE flags (`CI`, `IO`, `ID`, …).
    pub flags: u8,
    /// The access mask.
    pub mask: u32,
    /// The object ACE's flags field as read (object types only; 0 for plain ACEs).
    pub object_flags: u32,
    /// The object type (a property, property set, extended right or child class).
    pub object_type: Option<Guid>,
    /// The class the ACE is inherited by.
    pub inherited_object_type: Option<Guid>,
    /// The trustee.
    pub sid: Sid,
    /// Bytes inside the ACE's size after the SID (padding), kept for an exact round trip.
    pub trailing: Vec<u8>,
}

impl AccessAce {
    /// An explicit ACE; an object ACE when a GUID is given.
    pub fn new(
        allow: bool,
        flags: u8,
        mask: u32,
        object_type: Option<Guid>,
        inherited_object_type: Option<Guid>,
        sid: Sid,
    ) -> AccessAce {
        let object = object_type.is_some() || inherited_object_type.is_some();
        let ace_type = match (allow, object) {
            (true, false) => ACCESS_ALLOWED,
            (false, false) => ACCESS_DENIED,
            (true, true) => ACCESS_ALLOWED_OBJECT,
            (false, true) => ACCESS_DENIED_OBJECT,
        };
        let object_flags =
            u32::from(object_type.is_some()) | (u32::from(inherited_object_type.is_some()) << 1);
        AccessAce {
            ace_type,
            flags,
            mask,
            object_flags,
            object_type,
            inherited_object_type,
            sid,
            trailing: Vec::new(),
        }
    }

    /// Whether this is an allow ACE.
    pub fn is_allow(&self) -> bool {
        matches!(self.ace_type, ACCESS_ALLOWED | ACCESS_ALLOWED_OBJECT)
    }

    fn is_object(&self) -> bool {
        matches!(self.ace_type, ACCESS_ALLOWED_OBJECT | ACCESS_DENIED_OBJECT)
    }

    /// Whether `self` grants at least what `want` grants: same allow/deny, trustee, GUIDs and
    /// inheritance flags (the server's `ID` marker ignored), and a mask holding every bit of `want`'s.
    pub fn covers(&self, want: &AccessAce) -> bool {
        self.is_allow() == want.is_allow()
            && self.sid == want.sid
            && self.object_type == want.object_type
            && self.inherited_object_type == want.inherited_object_type
            && (self.flags & !INHERITED) == (want.flags & !INHERITED)
            && self.mask & want.mask == want.mask
    }
}

impl Ace {
    /// The ACE flags.
    pub fn flags(&self) -> u8 {
        match self {
            Ace::Access(a) => a.flags,
            Ace::Other { flags, .. } => *flags,
        }
    }

    fn parse(b: &[u8], at: usize) -> Result<(Ace, usize), SdError> {
        let head = slice(b, at, 4, "ACE header")?;
        let (ace_type, flags) = (head[0], head[1]);
        let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
        if size < 4 {
            return Err(SdError::Invalid(format!(
                "ACE at offset {at} has size {size} (less than its header)"
            )));
        }
        let body = slice(b, at + 4, size - 4, "ACE")?;
        let ace = match ace_type {
            ACCESS_ALLOWED | ACCESS_DENIED | ACCESS_ALLOWED_OBJECT | ACCESS_DENIED_OBJECT => {
                let mut p = 0;
                let mask = u32::from_le_bytes(arr4(body, p, "ACE mask")?);
                p += 4;
                let (mut object_flags, mut object_type, mut inherited) = (0, None, None);
                if matches!(ace_type, ACCESS_ALLOWED_OBJECT | ACCESS_DENIED_OBJECT) {
                    object_flags = u32::from_le_bytes(arr4(body, p, "object ACE flags")?);
                    p += 4;
                    if object_flags & 1 != 0 {
                        object_type = Some(guid_at(body, p)?);
                        p += 16;
                    }
                    if object_flags & 2 != 0 {
                        inherited = Some(guid_at(body, p)?);
                        p += 16;
                    }
                }
                let (sid, n) = Sid::parse(body, p)?;
                p += n;
                Ace::Access(AccessAce {
                    ace_type,
                    flags,
                    mask,
                    object_flags,
                    object_type,
                    inherited_object_type: inherited,
                    sid,
                    trailing: body[p..].to_vec(),
                })
            }
            _ => Ace::Other {
                ace_type,
                flags,
                body: body.to_vec(),
            },
        };
        Ok((ace, size))
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), SdError> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let (ace_type, flags) = match self {
            Ace::Access(a) => {
                out.extend_from_slice(&a.mask.to_le_bytes());
                if a.is_object() {
                    // The presence bits follow the GUIDs held; the other bits stay as read.
                    let of = (a.object_flags & !3)
                        | u32::from(a.object_type.is_some())
                        | (u32::from(a.inherited_object_type.is_some()) << 1);
                    out.extend_from_slice(&of.to_le_bytes());
                    for g in [a.object_type, a.inherited_object_type]
                        .into_iter()
                        .flatten()
                    {
                        out.extend_from_slice(&g.0);
                    }
                }
                out.extend_from_slice(&a.sid.to_bytes());
                out.extend_from_slice(&a.trailing);
                (a.ace_type, a.flags)
            }
            Ace::Other {
                ace_type,
                flags,
                body,
            } => {
                out.extend_from_slice(body);
                (*ace_type, *flags)
            }
        };
        let size = u16::try_from(out.len() - start)
            .map_err(|_| SdError::Invalid("an ACE longer than 65535 bytes".into()))?;
        out[start] = ace_type;
        out[start + 1] = flags;
        out[start + 2..start + 4].copy_from_slice(&size.to_le_bytes());
        Ok(())
    }
}

/// A parsed DACL (MS-DTYP 2.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// 2, or 4 ([`ACL_REVISION_DS`]) with object ACEs.
    pub revision: u8,
    /// The ACEs in order.
    pub aces: Vec<Ace>,
    /// Bytes inside `AclSize` after the last ACE, kept for an exact round trip.
    pub slack: Vec<u8>,
}

impl Acl {
    fn parse(b: &[u8], at: usize) -> Result<(Acl, usize), SdError> {
        let head = slice(b, at, 8, "ACL header")?;
        let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let count = usize::from(u16::from_le_bytes([head[4], head[5]]));
        if size < 8 {
            return Err(SdError::Invalid(format!(
                "ACL at offset {at} has size {size} (less than its header)"
            )));
        }
        let body = slice(b, at, size, "ACL")?;
        let mut p = 8;
        let mut aces = Vec::with_capacity(count.min(body.len() / 8));
        for _ in 0..count {
            let (ace, n) = Ace::parse(body, p)?;
            aces.push(ace);
            p += n;
        }
        Ok((
            Acl {
                revision: head[0],
                aces,
                slack: body[p..].to_vec(),
            },
            size,
        ))
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), SdError> {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        for ace in &self.aces {
            ace.write(out)?;
        }
        out.extend_from_slice(&self.slack);
        let size = u16::try_from(out.len() - start)
            .map_err(|_| SdError::Invalid("an ACL longer than 65535 bytes".into()))?;
        let count = u16::try_from(self.aces.len())
            .map_err(|_| SdError::Invalid("more than 65535 ACEs".into()))?;
        out[start] = self.revision;
        out[start + 2..start + 4].copy_from_slice(&size.to_le_bytes());
        out[start + 4..start + 6].copy_from_slice(&count.to_le_bytes());
        Ok(())
    }

    /// Adds `ace` unless an explicit ACE already [covers](AccessAce::covers) it: after the explicit
    /// ACEs, before the first inherited one (canonical order). Returns whether it was added.
    pub fn add(&mut self, ace: AccessAce) -> bool {
        let present = self.aces.iter().any(|a| match a {
            Ace::Access(a) => a.flags & INHERITED == 0 && a.covers(&ace),
            Ace::Other { .. } => false,
        });
        if present {
            return false;
        }
        if ace.is_object() {
            self.revision = self.revision.max(ACL_REVISION_DS);
        }
        let at = self
            .aces
            .iter()
            .position(|a| a.flags() & INHERITED != 0)
            .unwrap_or(self.aces.len());
        self.aces.insert(at, Ace::Access(ace));
        true
    }

    /// Whether any ACE (explicit or inherited) covers `want`.
    pub fn grants(&self, want: &AccessAce) -> bool {
        self.aces.iter().any(|a| match a {
            Ace::Access(a) => a.covers(want),
            Ace::Other { .. } => false,
        })
    }
}

/// Which part of the descriptor came where, for writing them back in the order read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Owner,
    Group,
    Sacl,
    Dacl,
}

/// A self-relative security descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// The header's revision (1).
    pub revision: u8,
    /// The header's Sbz1 (resource-manager control bits), kept as read.
    pub sbz1: u8,
    /// The control flags (`SE_*`).
    pub control: u16,
    /// The owner, when present.
    pub owner: Option<Sid>,
    /// The group, when present.
    pub group: Option<Sid>,
    /// The SACL's bytes as read (never edited here).
    pub sacl: Option<Vec<u8>>,
    /// The DACL, when present.
    pub dacl: Option<Acl>,
    order: Vec<Part>,
}

impl SecurityDescriptor {
    /// A descriptor holding only what is given (for a write under SD_FLAGS naming those parts).
    pub fn new(owner: Option<Sid>, group: Option<Sid>, dacl: Option<Acl>) -> SecurityDescriptor {
        SecurityDescriptor {
            revision: 1,
            sbz1: 0,
            control: SE_SELF_RELATIVE | if dacl.is_some() { SE_DACL_PRESENT } else { 0 },
            owner,
            group,
            sacl: None,
            dacl,
            order: Vec::new(),
        }
    }

    /// Parses a self-relative descriptor.
    pub fn parse(b: &[u8]) -> Result<SecurityDescriptor, SdError> {
        let h = slice(b, 0, 20, "header")?;
        if h[0] != 1 {
            return Err(SdError::Invalid(format!("revision {} (expected 1)", h[0])));
        }
        let control = u16::from_le_bytes([h[2], h[3]]);
        if control & SE_SELF_RELATIVE == 0 {
            return Err(SdError::Invalid(
                "not self-relative (SE_SELF_RELATIVE unset)".into(),
            ));
        }
        let off = |i: usize| {
            usize::try_from(u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]))
                .unwrap_or(usize::MAX)
        };
        let (o_owner, o_group, o_sacl, o_dacl) = (off(4), off(8), off(12), off(16));
        for (what, o) in [
            ("owner", o_owner),
            ("group", o_group),
            ("SACL", o_sacl),
            ("DACL", o_dacl),
        ] {
            if o != 0 && o < 20 {
                return Err(SdError::Invalid(format!(
                    "{what} offset {o} points into the header"
                )));
            }
        }
        let owner = match o_owner {
            0 => None,
            o => Some(Sid::parse(b, o)?.0),
        };
        let group = match o_group {
            0 => None,
            o => Some(Sid::parse(b, o)?.0),
        };
        let sacl = match o_sacl {
            0 => None,
            o => {
                let head = slice(b, o, 8, "SACL header")?;
                let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
                if size < 8 {
                    return Err(SdError::Invalid(format!("SACL size {size}")));
                }
                Some(slice(b, o, size, "SACL")?.to_vec())
            }
        };
        let dacl = match o_dacl {
            0 => None,
            o => Some(Acl::parse(b, o)?.0),
        };
        let mut parts: Vec<(usize, Part)> = [
            (o_owner, Part::Owner),
            (o_group, Part::Group),
            (o_sacl, Part::Sacl),
            (o_dacl, Part::Dacl),
        ]
        .into_iter()
        .filter(|(o, _)| *o != 0)
        .collect();
        parts.sort_by_key(|(o, _)| *o);
        Ok(SecurityDescriptor {
            revision: h[0],
            sbz1: h[1],
            control,
            owner,
            group,
            sacl,
            dacl,
            order: parts.into_iter().map(|(_, p)| p).collect(),
        })
    }

    /// The descriptor's bytes: the header, then each part present in the order read (new parts
    /// last), with the offsets and sizes recomputed. The control flags are written as held.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SdError> {
        let mut out = vec![0u8; 20];
        out[0] = self.revision;
        out[1] = self.sbz1;
        let mut order = self.order.clone();
        for p in [Part::Owner, Part::Group, Part::Sacl, Part::Dacl] {
            if !order.contains(&p) {
                order.push(p);
            }
        }
        let control = self.control | SE_SELF_RELATIVE;
        let mut offsets = [0u32; 4];
        for p in order {
            let at = u32::try_from(out.len())
                .map_err(|_| SdError::Invalid("a descriptor over 4 GiB".into()))?;
            let slot = match p {
                Part::Owner => self.owner.as_ref().map(|s| {
                    out.extend_from_slice(&s.to_bytes());
                    0
                }),
                Part::Group => self.group.as_ref().map(|s| {
                    out.extend_from_slice(&s.to_bytes());
                    1
                }),
                Part::Sacl => self.sacl.as_ref().map(|s| {
                    out.extend_from_slice(s);
                    2
                }),
                Part::Dacl => match &self.dacl {
                    Some(acl) => {
                        acl.write(&mut out)?;
                        Some(3)
                    }
                    None => None,
                },
            };
            if let Some(i) = slot {
                offsets[i] = at;
            }
        }
        out[2..4].copy_from_slice(&control.to_le_bytes());
        for (i, o) in offsets.iter().enumerate() {
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&o.to_le_bytes());
        }
        Ok(out)
    }

    /// The descriptor in SDDL (MS-DTYP 2.5.1), SIDs numeric; the SACL is summarised, not rendered.
    pub fn sddl(&self) -> String {
        let mut s = String::new();
        if let Some(o) = &self.owner {
            let _ = write!(s, "O:{o}");
        }
        if let Some(g) = &self.group {
            let _ = write!(s, "G:{g}");
        }
        if let Some(d) = &self.dacl {
            s.push_str("D:");
            for (bit, name) in [(0x1000, "P"), (0x0100, "AR"), (0x0400, "AI")] {
                if self.control & bit != 0 {
                    s.push_str(name);
                }
            }
            for ace in &d.aces {
                s.push_str(&ace_sddl(ace));
            }
        }
        if let Some(sacl) = &self.sacl {
            let _ = write!(s, "S:<{} bytes>", sacl.len());
        }
        s
    }
}

/// One ACE in SDDL: `(OA;CIIO;RPWP;<object>;<inherited object>;<SID>)`.
pub fn ace_sddl(ace: &Ace) -> String {
    match ace {
        Ace::Access(a) => {
            let kind = match a.ace_type {
                ACCESS_ALLOWED => "A",
                ACCESS_DENIED => "D",
                ACCESS_ALLOWED_OBJECT => "OA",
                _ => "OD",
            };
            let g = |g: Option<Guid>| g.map(|g| g.to_string()).unwrap_or_default();
            format!(
                "({kind};{};{};{};{};{})",
                flags_sddl(a.flags),
                mask_sddl(a.mask),
                g(a.object_type),
                g(a.inherited_object_type),
                a.sid
            )
        }
        Ace::Other { ace_type, body, .. } => {
            format!("(<ACE type 0x{ace_type:02x}, {} bytes>)", body.len() + 4)
        }
    }
}

fn flags_sddl(f: u8) -> String {
    let mut s = String::new();
    for (bit, n) in [
        (0x01, "OI"),
        (0x02, "CI"),
        (0x04, "NP"),
        (0x08, "IO"),
        (0x10, "ID"),
        (0x40, "SA"),
        (0x80, "FA"),
    ] {
        if f & bit != 0 {
            s.push_str(n);
        }
    }
    s
}

/// An access mask in SDDL's two-letter rights, or hex when a bit has no name.
pub fn mask_sddl(m: u32) -> String {
    const NAMES: [(u32, &str); 19] = [
        (0x1000_0000, "GA"),
        (0x8000_0000, "GR"),
        (0x4000_0000, "GW"),
        (0x2000_0000, "GX"),
        (0x1, "CC"),
        (0x2, "DC"),
        (0x4, "LC"),
        (0x8, "SW"),
        (0x10, "RP"),
        (0x20, "WP"),
        (0x40, "DT"),
        (0x80, "LO"),
        (0x100, "CR"),
        (0x1_0000, "SD"),
        (0x2_0000, "RC"),
        (0x4_0000, "WD"),
        (0x8_0000, "WO"),
        (0x100_0000, "AS"),
        (0x200_0000, "MA"),
    ];
    let named = NAMES.iter().fold(0, |acc, (b, _)| acc | b);
    if m & !named != 0 {
        return format!("0x{m:x}");
    }
    NAMES
        .iter()
        .filter(|(b, _)| m & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn slice<'a>(b: &'a [u8], at: usize, n: usize, what: &'static str) -> Result<&'a [u8], SdError> {
    at.checked_add(n)
        .and_then(|end| b.get(at..end))
        .ok_or(SdError::Truncated {
            what,
            offset: at,
            len: b.len(),
        })
}

fn arr4(b: &[u8], at: usize, what: &'static str) -> Result<[u8; 4], SdError> {
    let s = slice(b, at, 4, what)?;
    Ok([s[0], s[1], s[2], s[3]])
}

fn guid_at(b: &[u8], at: usize) -> Result<Guid, SdError> {
    let mut g = [0u8; 16];
    g.copy_from_slice(slice(b, at, 16, "GUID")?);
    Ok(Guid(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    /// A descriptor built by hand from MS-DTYP 2.4.6 (not by the writer under test): owner BA,
    /// group SY, DACL rev 4 with one plain allow ACE for AU (RP) and one object ACE.
    fn hand_built() -> Vec<u8> {
        let mut b = vec![
            1, 0, 0x04, 0x80, // revision, sbz1, control = DACL_PRESENT | SELF_RELATIVE
            20, 0, 0, 0, // owner at 20
            36, 0, 0, 0, // group at 36
            0, 0, 0, 0, // no SACL
            48, 0, 0, 0, // DACL at 48
        ];
        // S-1-5-32-544
        b.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0]);
        // S-1-5-18
        b.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]);
        // ACL: rev 4, size 8 + 20 + 40, 2 ACEs
        b.extend_from_slice(&[4, 0, 68, 0, 2, 0, 0, 0]);
        // (A;;RP;;;AU) = S-1-5-11
        b.extend_from_slice(&[0, 0, 20, 0, 0x10, 0, 0, 0]);
        b.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0]);
        // (OA;CIIO;CR;00299570-246d-11d0-a768-00aa006e0529;;AU)
        b.extend_from_slice(&[5, 0x0a, 40, 0, 0, 1, 0, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[
            0x70, 0x95, 0x29, 0x00, 0x6d, 0x24, 0xd0, 0x11, 0xa7, 0x68, 0x00, 0xaa, 0x00, 0x6e,
            0x05, 0x29,
        ]);
        b.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0]);
        b
    }

    #[test]
    fn parses_a_hand_built_descriptor_and_writes_it_back_byte_for_byte() {
        let b = hand_built();
        let sd = SecurityDescriptor::parse(&b).unwrap();
        assert_eq!(
            sd.sddl(),
            "O:S-1-5-32-544G:S-1-5-18D:(A;;RP;;;S-1-5-11)\
             (OA;CIIO;CR;00299570-246d-11d0-a768-00aa006e0529;;S-1-5-11)"
        );
        assert_eq!(sd.to_bytes().unwrap(), b);
    }

    #[test]
    fn guids_and_sids_parse_and_print() {
        let g: Guid = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2".parse().unwrap();
        assert_eq!(&g.0[..4], &[0xaa, 0xf6, 0x31, 0x11]);
        assert_eq!(&g.0[8..], &[0xf7, 0x9f, 0x00, 0xc0, 0x4f, 0xc2, 0xdc, 0xd2]);
        assert_eq!(g.to_string(), "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2");
        assert!(
            "1131f6aa-9c07-11d1-f79f-00c04fc2dcdz"
                .parse::<Guid>()
                .is_err()
        );
        let s = sid("S-1-5-21-1-2-3-1104");
        assert_eq!(s.to_string(), "S-1-5-21-1-2-3-1104");
        assert_eq!(Sid::from_bytes(&s.to_bytes()).unwrap(), s);
        assert!("S-1-x".parse::<Sid>().is_err());
    }

    #[test]
    fn add_is_idempotent_and_keeps_inherited_aces_last() {
        let mut sd = SecurityDescriptor::parse(&hand_built()).unwrap();
        let acl = sd.dacl.as_mut().unwrap();
        // Make the second ACE an inherited copy.
        if let Ace::Access(a) = &mut acl.aces[1] {
            a.flags |= INHERITED;
        }
        let me = sid("S-1-5-21-1-2-3-1104");
        let get_changes = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2".parse().unwrap();
        let ace = AccessAce::new(true, 0, 0x100, Some(get_changes), None, me);
        assert!(acl.add(ace.clone()));
        assert!(!acl.add(ace.clone()), "a second add must find it");
        assert_eq!(acl.aces.len(), 3);
        assert_eq!(acl.aces[1], Ace::Access(ace.clone()));
        assert!(acl.aces[2].flags() & INHERITED != 0);
        let again = SecurityDescriptor::parse(&sd.to_bytes().unwrap()).unwrap();
        assert_eq!(again, sd);
        assert!(again.dacl.unwrap().grants(&ace));
    }

    #[test]
    fn hostile_descriptors_are_errors() {
        let b = hand_built();
        for n in 0..b.len() {
            assert!(
                SecurityDescriptor::parse(&b[..n]).is_err(),
                "truncated at {n}"
            );
        }
        let mut huge = b.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SecurityDescriptor::parse(&huge).is_err());
        let mut count = b.clone();
        count[52] = 0xff; // ACE count 255 in a 68-byte ACL
        assert!(SecurityDescriptor::parse(&count).is_err());
        let mut ace0 = b.clone();
        ace0[58] = 0; // first ACE size 0
        assert!(SecurityDescriptor::parse(&ace0).is_err());
        let mut subs = b.clone();
        subs[21] = 200; // owner with 200 sub-authorities
        assert!(SecurityDescriptor::parse(&subs).is_err());
    }

    /// The fuzz target's property over its corpus and every one-byte change of it (a deterministic
    /// stand-in for `cargo fuzz run security_descriptor`).
    #[test]
    fn corpus_and_its_one_byte_mutants_round_trip() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/security_descriptor");
        let mut seeds = 0;
        let mut parsed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let seed = std::fs::read(entry.unwrap().path()).unwrap();
            seeds += 1;
            for i in 0..seed.len() {
                for v in [0u8, 1, 0x7f, 0x80, 0xff, seed[i] ^ 0x10] {
                    let mut m = seed.clone();
                    m[i] = v;
                    if let Ok(sd) = SecurityDescriptor::parse(&m) {
                        parsed += 1;
                        if let Ok(bytes) = sd.to_bytes() {
                            let again = SecurityDescriptor::parse(&bytes).unwrap();
                            assert_eq!(again, sd, "mutant {i}={v:#x}");
                            assert_eq!(again.to_bytes().unwrap(), bytes);
                        }
                    }
                }
            }
        }
        assert!(seeds >= 3 && parsed > 0, "{seeds} seeds, {parsed} parsed");
    }

    #[test]
    fn unknown_aces_and_sacl_round_trip_unchanged() {
        let mut b = hand_built();
        // Append a SACL (rev 2, one audit ACE of 20 bytes) after the DACL and point at it.
        let at = b.len() as u32;
        b.extend_from_slice(&[2, 0, 28, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[2, 0xc0, 20, 0, 0xff, 0, 0, 0]);
        b.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        b[12..16].copy_from_slice(&at.to_le_bytes());
        b[2] |= 0x10;
        let sd = SecurityDescriptor::parse(&b).unwrap();
        assert_eq!(sd.sacl.as_ref().unwrap().len(), 28);
        assert_eq!(sd.to_bytes().unwrap(), b);
    }
}
