//! One value's encoding inside an object blob: varints, and the value header that says whether the value
//! ends in or starts with a [`Shared`] part (layout in [`super`]'s doc, "The object blob").
//!
//! Enters: a raw attribute value (bytes) and the shared-part table, or a blob's bytes and a position.
//! Leaves: the encoded value appended to a buffer, or the decoded value (borrowed when it has no shared
//! part) and the position after it. Malformed bytes decode as `None`, never a panic.

use std::borrow::Cow;

use super::shared::Shared;

/// Appends `v` as an LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `at` and moves past it; `None` when the bytes end or it overflows.
#[inline]
pub(super) fn get_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
    // The usual case: one byte.
    let first = *bytes.get(*at)?;
    if first < 0x80 {
        *at += 1;
        return Some(usize::from(first));
    }
    let mut v = 0usize;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Value mode 0: the value is its own bytes.
pub(super) const MODE_PLAIN: usize = 0;
/// Value mode 1: the bytes, then a shared part (a mail domain).
pub(super) const MODE_SUFFIX: usize = 1;
/// Value mode 2: a shared part (a domain SID), then the bytes (the RID).
pub(super) const MODE_PREFIX: usize = 2;

/// Where a value splits into its own bytes and a shared part: `(mode, split)`.
fn shared_split(v: &[u8]) -> Option<(usize, usize)> {
    // A SID (revision 1) of a domain account: the domain SID is everything but the last sub-authority.
    if v.len() >= 24 && v[0] == 1 && v[1] >= 4 && v.len() == 8 + 4 * usize::from(v[1]) {
        return Some((MODE_PREFIX, v.len() - 4));
    }
    // Text with a mail domain: from the last `@` on.
    let at = v.iter().rposition(|b| *b == b'@')?;
    (at > 0 && v.len() - at >= 4 && v.len() - at <= 255).then_some((MODE_SUFFIX, at))
}

/// Appends `v`, splitting off its shared part when it has one and the table has room.
pub(super) fn encode_value(out: &mut Vec<u8>, v: &[u8], shared: &mut Shared) {
    if let Some((mode, split)) = shared_split(v) {
        let (own, part) = match mode {
            MODE_SUFFIX => (&v[..split], &v[split..]),
            _ => (&v[split..], &v[..split]),
        };
        if let Some(id) = shared.intern(part) {
            put_varint(out, own.len() << 2 | mode);
            put_varint(out, id);
            out.extend_from_slice(own);
            return;
        }
    }
    put_varint(out, v.len() << 2 | MODE_PLAIN);
    out.extend_from_slice(v);
}

/// Reads one value at `at`; `None` when the blob is malformed (impossible unless memory is corrupt).
pub(super) fn decode_value<'a>(
    b: &'a [u8],
    at: &mut usize,
    shared: &Shared,
) -> Option<Cow<'a, [u8]>> {
    let h = get_varint(b, at)?;
    let part = match h & 3 {
        MODE_PLAIN => None,
        _ => Some(shared.get(get_varint(b, at)?)?),
    };
    let own = b.get(*at..at.checked_add(h >> 2)?)?;
    *at += h >> 2;
    Some(match (h & 3, part) {
        (MODE_SUFFIX, Some(p)) => Cow::Owned([own, p].concat()),
        (_, Some(p)) => Cow::Owned([p, own].concat()),
        _ => Cow::Borrowed(own),
    })
}

/// Skips one value at `at`.
pub(super) fn skip_value(b: &[u8], at: &mut usize) -> Option<()> {
    let h = get_varint(b, at)?;
    if h & 3 != MODE_PLAIN {
        get_varint(b, at)?;
    }
    *at = at.checked_add(h >> 2)?;
    (*at <= b.len()).then_some(())
}
