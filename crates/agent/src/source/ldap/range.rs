//! Ranged attribute values: parsing `;range=low-high` options and fetching the rest of a ranged attribute.
//!
//! AD returns at most MaxValRange (1500) values of a multi-valued attribute at once, as
//! `member;range=0-1499`; the client asks for `member;range=1500-*` and so on until the server answers
//! with an open end (`*`). Samba does not enforce the limit but honours explicit ranges, which is how the
//! tests exercise this path. In a DirSync reply with incremental values, `range=1-1` and `range=0-0`
//! mean "added" and "removed" instead (see [`ValueRange::incremental`]).

use ldap3::{Scope, SearchOptions};

use super::conn::DcConn;

use super::entry::{RawEntry, parse_entry};
use super::error::LdapSourceError;

/// Values a client asks for per ranged request.
pub const DEFAULT_RANGE_STEP: u32 = 1500;
/// A guard against servers that never close a range.
const MAX_RANGE_ROUNDS: usize = 100_000;

/// A `;range=start-end` option; `end` is `None` for `*` (the last chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueRange {
    /// Index of the first value in this chunk.
    pub start: u32,
    /// Index of the last value, or `None` when this is the final chunk (`*`).
    pub end: Option<u32>,
}

/// What a range option means in a DirSync reply with `INCREMENTAL_VALUES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incremental {
    /// `;range=1-1`: the values were added.
    Added,
    /// `;range=0-0`: the values were removed.
    Removed,
}

impl ValueRange {
    /// Splits `member;range=0-1499` into (`member`, range); other options are kept in the name.
    pub fn split_description(desc: &str) -> (&str, Option<ValueRange>) {
        let lower = desc.to_ascii_lowercase();
        let Some(pos) = lower.find(";range=") else {
            return (desc, None);
        };
        let spec = &desc[pos + ";range=".len()..];
        // Only a trailing range option is understood; anything after it makes the option opaque.
        match ValueRange::parse(spec) {
            Some(range) => (&desc[..pos], Some(range)),
            None => (desc, None),
        }
    }

    /// Parses `low-high` or `low-*`.
    pub fn parse(spec: &str) -> Option<ValueRange> {
        let (low, high) = spec.split_once('-')?;
        let start = low.parse().ok()?;
        let end = if high == "*" {
            None
        } else {
            let end: u32 = high.parse().ok()?;
            if end < start {
                return None;
            }
            Some(end)
        };
        Some(ValueRange { start, end })
    }

    /// The DirSync incremental meaning of this option, if it is one of the two markers.
    pub fn incremental(self) -> Option<Incremental> {
        match (self.start, self.end) {
            (1, Some(1)) => Some(Incremental::Added),
            (0, Some(0)) => Some(Incremental::Removed),
            _ => None,
        }
    }

    /// The start of the next chunk, or `None` when this was the last one.
    pub fn next_start(self) -> Option<u32> {
        self.end.and_then(|e| e.checked_add(1))
    }
}

/// The attribute description asking for `count` values from `start` (`count` 0 means to the end).
pub fn range_request(attr: &str, start: u32, count: u32) -> String {
    if count == 0 {
        format!("{attr};range={start}-*")
    } else {
        format!(
            "{attr};range={start}-{}",
            start.saturating_add(count).saturating_sub(1)
        )
    }
}

/// Reads every value of `attr` on the object `dn` chunk by chunk, starting at `start`, asking for
/// `step` values per request (0: let the server choose). Returns the values in server order.
pub async fn fetch_ranged(
    conn: &mut DcConn,
    dn: &str,
    attr: &str,
    start: u32,
    step: u32,
) -> Result<Vec<Vec<u8>>, LdapSourceError> {
    let mut values = Vec::new();
    let mut next = Some(start);
    let mut rounds = 0;
    while let Some(from) = next {
        rounds += 1;
        if rounds > MAX_RANGE_ROUNDS {
            return Err(LdapSourceError::Protocol(format!(
                "ranged retrieval of {attr} on {dn} did not terminate"
            )));
        }
        let want = range_request(attr, from, step);
        let entry = read_base(conn, dn, &[want.as_str()]).await?;
        let chunk = entry.and_then(|e| {
            e.attrs
                .into_iter()
                .find(|a| a.name.eq_ignore_ascii_case(attr))
        });
        let Some(chunk) = chunk else {
            break;
        };
        let got = chunk.values.len();
        values.extend(chunk.values);
        next = match chunk.range {
            // A server that answers without a range option sent everything that was left.
            None => None,
            Some(_) if got == 0 => None,
            Some(range) => range.next_start(),
        };
    }
    Ok(values)
}

/// A base-scope read of one object, decoded with the non-panicking entry parser.
pub async fn read_base(
    conn: &mut DcConn,
    dn: &str,
    attrs: &[&str],
) -> Result<Option<RawEntry>, LdapSourceError> {
    let mut stream = conn
        .op()
        .streaming_search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await?;
    let mut found = None;
    while let Some(re) = stream.next().await? {
        if re.is_ref() || re.is_intermediate() {
            continue;
        }
        found = Some(parse_entry(re.0)?);
    }
    let res = stream.finish().await;
    match res.rc {
        0 => Ok(found),
        32 => Ok(None),
        _ => Err(LdapSourceError::from_result(res)),
    }
}

/// Search options for reads that must not hit a server-side limit.
pub fn unlimited() -> SearchOptions {
    SearchOptions::new().sizelimit(0).timelimit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_split_into_name_and_range() {
        assert_eq!(
            ValueRange::split_description("member;range=1500-*"),
            (
                "member",
                Some(ValueRange {
                    start: 1500,
                    end: None
                })
            )
        );
        assert_eq!(
            ValueRange::split_description("Member;Range=0-1499"),
            (
                "Member",
                Some(ValueRange {
                    start: 0,
                    end: Some(1499)
                })
            )
        );
        assert_eq!(ValueRange::split_description("member"), ("member", None));
        assert_eq!(
            ValueRange::split_description("member;range=9-1"),
            ("member;range=9-1", None)
        );
        assert_eq!(
            ValueRange::split_description("member;range=x-*"),
            ("member;range=x-*", None)
        );
    }

    #[test]
    fn incremental_markers_and_continuation() {
        let added = ValueRange::parse("1-1").unwrap();
        let removed = ValueRange::parse("0-0").unwrap();
        assert_eq!(added.incremental(), Some(Incremental::Added));
        assert_eq!(removed.incremental(), Some(Incremental::Removed));
        assert_eq!(ValueRange::parse("0-1499").unwrap().incremental(), None);
        assert_eq!(
            ValueRange::parse("0-1499").unwrap().next_start(),
            Some(1500)
        );
        assert_eq!(ValueRange::parse("1500-*").unwrap().next_start(), None);
        assert_eq!(
            range_request("member", 1500, 1500),
            "member;range=1500-2999"
        );
        assert_eq!(range_request("member", 3000, 0), "member;range=3000-*");
    }
}
