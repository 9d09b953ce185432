//! Distinguished names: splitting into RDNs (RFC 4514 escapes), a canonical form for comparisons and
//! the subtree test that OU scoping uses.

/// One relative distinguished name: attribute type and value, the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn {
    /// The attribute type as written (`CN`, `OU`, `DC`, …).
    pub attr: String,
    /// The value with RFC 4514 escapes (`\,`, `\2C`, …) resolved.
    pub value: String,
}

/// Splits `dn` into RDNs, leftmost first. `None` when an RDN has no `=` or an escape is malformed.
/// Multi-valued RDNs (`a=1+b=2`) are kept whole in `value` of their first type; AD does not create them.
pub fn split(dn: &str) -> Option<Vec<Rdn>> {
    let mut out = Vec::new();
    if dn.trim().is_empty() {
        return Some(out);
    }
    let mut raw = String::new();
    let mut chars = dn.chars().peekable();
    let mut parts: Vec<String> = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push('\\');
                raw.push(chars.next()?);
            }
            ',' | ';' => parts.push(std::mem::take(&mut raw)),
            c => raw.push(c),
        }
    }
    parts.push(raw);
    for part in parts {
        let (attr, value) = part.split_once('=')?;
        let attr = attr.trim();
        if attr.is_empty() {
            return None;
        }
        out.push(Rdn {
            attr: attr.to_string(),
            value: unescape(value.trim())?,
        });
    }
    Some(out)
}

fn unescape(v: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let n = chars.next()?;
        if n.is_ascii_hexdigit() {
            let m = chars.next()?;
            let hex: String = [n, m].iter().collect();
            bytes.push(u8::from_str_radix(&hex, 16).ok()?);
        } else {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(bytes).ok()
}

/// A canonical form for comparing DNs: RDNs re-joined with `,`, types and values lower-cased (per character,
/// no context-dependent rules), spaces around separators removed, escapes resolved and `,` `+` `=` `\` `;`
/// re-escaped. Falls back to the trimmed lower-case text when the DN does not parse.
pub fn canonical(dn: &str) -> String {
    fast_canonical(dn).unwrap_or_else(|| slow_canonical(dn))
}

/// Splits `dn` at its first unescaped `,` into the leftmost RDN and the parent's text, both exactly as
/// written (no trimming), so that `rdn + "," + parent` gives `dn` back; the parent is `""` at the top.
/// Since the canonical form is built RDN by RDN, `canonical(dn)` is `canonical(rdn) + "," + canonical(parent)`
/// whenever the parent is not empty.
pub fn split_first(dn: &str) -> (&str, &str) {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return (&dn[..i], &dn[i + 1..]),
            _ => i += 1,
        }
    }
    (dn, "")
}

/// FNV-1a (64 bit) of `canonical(dn)`'s UTF-8 bytes, built without the string in the common case. Stable
/// across runs and platforms.
pub fn canonical_hash(dn: &str) -> u64 {
    if let Some(h) = ascii_canonical_hash(dn) {
        return h;
    }
    let mut h = FNV_OFFSET;
    let mut buf = [0u8; 4];
    let fast = fast_canonical_with(dn, &mut |c| {
        if c.is_ascii() {
            h = (h ^ u64::from(c as u8)).wrapping_mul(FNV_PRIME);
        } else {
            for b in c.encode_utf8(&mut buf).bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        }
    });
    match fast {
        Some(()) => h,
        None => fnv1a(canonical(dn).as_bytes()),
    }
}

/// [`canonical_hash`] for the commonest DNs — ASCII, no escapes, quotes, `;` or `+`, no `=` in values —
/// byte by byte; `None` when the DN is not such a one.
fn ascii_canonical_hash(dn: &str) -> Option<u64> {
    if !dn.is_ascii() || dn.bytes().any(|b| matches!(b, b'\\' | b'"' | b';' | b'+')) {
        return None;
    }
    if dn.trim().is_empty() {
        return None;
    }
    let mut h = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME);
        }
    };
    for (i, rdn) in dn.split(',').enumerate() {
        let (attr, value) = rdn.split_once('=')?;
        let (attr, value) = (attr.trim(), value.trim());
        if attr.is_empty() || value.contains('=') {
            return None;
        }
        if i > 0 {
            feed(b",");
        }
        feed(attr.as_bytes());
        feed(b"=");
        feed(value.as_bytes());
    }
    Some(h)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a (64 bit) of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

fn push_lower(push: &mut impl FnMut(char), s: &str) {
    for c in s.chars() {
        if c.is_ascii() {
            push(c.to_ascii_lowercase());
        } else {
            c.to_lowercase().for_each(&mut *push);
        }
    }
}

/// The common case — no escapes, quotes, `;` or `+`, and no `=` inside values — in one pass.
fn fast_canonical(dn: &str) -> Option<String> {
    let mut out = String::with_capacity(dn.len());
    fast_canonical_with(dn, &mut |c| out.push(c))?;
    Some(out)
}

/// The fast path's characters, fed to `push`; `None` (possibly after some output) when it does not apply.
fn fast_canonical_with(dn: &str, push: &mut impl FnMut(char)) -> Option<()> {
    if dn.contains(['\\', '"', ';', '+']) || dn.trim().is_empty() {
        return None;
    }
    for (i, rdn) in dn.split(',').enumerate() {
        let (attr, value) = rdn.split_once('=')?;
        let (attr, value) = (attr.trim(), value.trim());
        if attr.is_empty() || value.contains('=') {
            return None;
        }
        if i > 0 {
            push(',');
        }
        push_lower(push, attr);
        push('=');
        push_lower(push, value);
    }
    Some(())
}

fn slow_canonical(dn: &str) -> String {
    match split(dn) {
        Some(rdns) => rdns
            .iter()
            .map(|r| {
                let mut lower = String::with_capacity(r.value.len());
                push_lower(&mut |c| lower.push(c), &r.value);
                let mut v = String::with_capacity(lower.len());
                for c in lower.chars() {
                    if matches!(c, ',' | '+' | '=' | '\\' | ';') {
                        v.push('\\');
                    }
                    v.push(c);
                }
                let mut attr = String::new();
                push_lower(&mut |c| attr.push(c), &r.attr);
                format!("{attr}={v}")
            })
            .collect::<Vec<_>>()
            .join(","),
        None => {
            let mut out = String::new();
            push_lower(&mut |c| out.push(c), dn.trim());
            out
        }
    }
}

/// Whether canonical DN `dn` equals or lies below canonical DN `base`.
pub fn is_within(dn_canonical: &str, base_canonical: &str) -> bool {
    dn_canonical == base_canonical
        || (dn_canonical.len() > base_canonical.len()
            && dn_canonical.ends_with(base_canonical)
            && dn_canonical[..dn_canonical.len() - base_canonical.len()].ends_with(','))
            && !dn_canonical[..dn_canonical.len() - base_canonical.len()].ends_with("\\,")
}

/// The parent of `dn` (everything after the first unescaped comma), or `None` at the top.
pub fn parent(dn: &str) -> Option<String> {
    let rdns = split(dn)?;
    if rdns.len() < 2 {
        return None;
    }
    Some(
        rdns[1..]
            .iter()
            .map(|r| format!("{}={}", r.attr, escape_value(&r.value)))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ',' | '+' | '=' | '\\' | ';' | '"' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass form agrees with the full parse wherever it applies.
        #[test]
        fn fast_path_agrees_with_the_full_parse(parts in proptest::collection::vec(
            ("[a-zA-Z]{1,3}", "[ a-zA-ZÀ-ÿΣσ0-9=_-]{0,8}"), 1..5)) {
            let dn = parts.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(",");
            if let Some(fast) = fast_canonical(&dn) {
                prop_assert_eq!(&fast, &slow_canonical(&dn));
            }
            prop_assert_eq!(canonical_hash(&dn), fnv1a(slow_canonical(&dn).as_bytes()));
        }
    }

    proptest! {
        /// The canonical form composes RDN by RDN, which the state's DN index relies on.
        #[test]
        fn canonical_composes_at_the_first_rdn(parts in proptest::collection::vec(
            ("[a-zA-Z]{1,3}", r"[ a-zA-ZÀ-ÿΣσ0-9=_,\\+-]{0,8}"), 1..5)) {
            let dn = parts.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(",");
            let (rdn, parent) = split_first(&dn);
            let joined = format!("{rdn},{parent}");
            prop_assert_eq!(joined.trim_end_matches(','), dn.trim_end_matches(','));
            if split(&dn).is_some() && !parent.is_empty() && split(parent).is_some() {
                prop_assert_eq!(canonical(&dn), format!("{},{}", canonical(rdn), canonical(parent)));
            }
            prop_assert_eq!(canonical_hash(&dn), fnv1a(canonical(&dn).as_bytes()));
        }
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo): "" and "a".
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn first_rdn_split_honours_escapes() {
        assert_eq!(
            split_first(r"CN=Doe\, John,OU=Sales,DC=x"),
            (r"CN=Doe\, John", "OU=Sales,DC=x")
        );
        assert_eq!(split_first("DC=x"), ("DC=x", ""));
        assert_eq!(split_first(r"CN=a\\,DC=x"), (r"CN=a\\", "DC=x"));
    }

    #[test]
    fn splits_with_escapes() {
        let rdns = split(r"CN=Doe\, John,OU=Sales , DC=corp,DC=example").unwrap();
        assert_eq!(rdns.len(), 4);
        assert_eq!(rdns[0].value, "Doe, John");
        assert_eq!(rdns[1].attr, "OU");
        assert_eq!(rdns[1].value, "Sales");
        assert_eq!(split(r"CN=Caf\C3\A9,DC=x").unwrap()[0].value, "Café");
        assert_eq!(split("CN=a,junk"), None);
        assert_eq!(split(r"CN=a\"), None);
    }

    #[test]
    fn canonical_and_subtree() {
        let base = canonical("OU=Sales,DC=Corp,DC=Example");
        assert_eq!(base, "ou=sales,dc=corp,dc=example");
        assert!(is_within(
            &canonical("CN=A, OU=sales,DC=corp,DC=example"),
            &base
        ));
        assert!(is_within(&base, &base));
        assert!(!is_within(
            &canonical("CN=A,OU=Presales,DC=corp,DC=example"),
            &base
        ));
        assert!(!is_within(
            &canonical(r"CN=x\,ou=sales,DC=corp,DC=example"),
            &canonical("DC=corp,DC=example").replacen("dc=corp", "ou=sales,dc=corp", 1)
        ));
        assert_eq!(
            parent("CN=A,OU=Sales,DC=x").as_deref(),
            Some("OU=Sales,DC=x")
        );
        assert_eq!(parent("DC=x"), None);
    }
}
