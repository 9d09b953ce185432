//! Security identifiers: the binary `objectSid` layout to the `S-1-5-21-…` text form.
//!
//! Binary layout (MS-DTYP 2.4.2.2): revision `u8`, sub-authority count `u8`, identifier authority 6 bytes
//! big-endian, then `count` sub-authorities as little-endian `u32`.

/// Renders a binary SID as text; `None` unless the length matches the sub-authority count (at most 15).
pub fn sid_to_string(bytes: &[u8]) -> Option<String> {
    let (&revision, rest) = bytes.split_first()?;
    let (&count, rest) = rest.split_first()?;
    let count = usize::from(count);
    if count > 15 || rest.len() != 6 + 4 * count {
        return None;
    }
    let (auth, subs) = rest.split_at(6);
    let authority = auth.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = String::with_capacity(8 + 11 * count);
    out.push_str("S-");
    push_decimal(&mut out, u64::from(revision));
    if authority >= 1 << 32 {
        out.push_str(&format!("-0x{authority:012X}"));
    } else {
        out.push('-');
        push_decimal(&mut out, authority);
    }
    for sub in subs.chunks_exact(4) {
        out.push('-');
        push_decimal(
            &mut out,
            u64::from(u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]])),
        );
    }
    Some(out)
}

/// Appends `v` in decimal (without the formatting machinery: SIDs are rendered once per upsert).
pub(super) fn push_decimal(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut n = digits.len();
    loop {
        n -= 1;
        digits[n] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if let Ok(text) = std::str::from_utf8(&digits[n..]) {
        out.push_str(text);
    }
}

/// The relative identifier (last sub-authority) of a binary SID, e.g. 512 for Domain Admins.
pub fn rid(bytes: &[u8]) -> Option<u32> {
    sid_to_string(bytes)?;
    let tail = bytes.get(bytes.len().checked_sub(4)?..)?;
    Some(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the binary form independently of the parser: the layout written out by hand.
    fn sid_bytes(authority: u8, subs: &[u32]) -> Vec<u8> {
        let mut b = vec![1, subs.len() as u8, 0, 0, 0, 0, 0, authority];
        for s in subs {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b
    }

    #[test]
    fn well_known_sids() {
        // MS-DTYP 2.4.2.4 well-known SIDs.
        assert_eq!(
            sid_to_string(&sid_bytes(1, &[0])).as_deref(),
            Some("S-1-1-0")
        );
        assert_eq!(
            sid_to_string(&sid_bytes(5, &[32, 544])).as_deref(),
            Some("S-1-5-32-544")
        );
        let domain_user = sid_bytes(5, &[21, 3_623_811_015, 3_361_044_348, 30_300_820, 1013]);
        assert_eq!(
            sid_to_string(&domain_user).as_deref(),
            Some("S-1-5-21-3623811015-3361044348-30300820-1013")
        );
        assert_eq!(rid(&domain_user), Some(1013));
        // The same SID as the literal bytes of MS-DTYP's example encoding of S-1-5-32-544.
        let literal = [1u8, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 2, 0, 0];
        assert_eq!(sid_to_string(&literal).as_deref(), Some("S-1-5-32-544"));
    }

    #[test]
    fn malformed_sids_are_refused() {
        assert_eq!(sid_to_string(&[]), None);
        assert_eq!(sid_to_string(&[1, 2, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0]), None);
        assert_eq!(sid_to_string(&[1, 16]), None);
        assert_eq!(rid(&[1]), None);
    }
}
