//! OData query options for the Graph-shaped reads: `$filter` (eq, startswith, and), `$select`, `$top`,
//! `$skiptoken`, and the percent-encoding helpers the paging links need.

use serde_json::Value;

use super::error::ApiError;

/// Properties `$filter` accepts.
pub const FILTERABLE: &[&str] = &["userPrincipalName", "onPremisesImmutableId", "displayName"];

/// One filter clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// `prop eq 'value'` (case-insensitive, as Graph compares these properties).
    Eq(String, String),
    /// `startswith(prop,'value')` (case-insensitive).
    StartsWith(String, String),
}

/// A parsed `$filter`: clauses joined by `and`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter(pub Vec<Clause>);

impl Filter {
    /// Parses a `$filter` expression.
    pub fn parse(input: &str, resource: &str) -> Result<Filter, ApiError> {
        let mut clauses = Vec::new();
        let mut rest = input.trim();
        loop {
            let (clause, tail) = parse_clause(rest, resource)?;
            clauses.push(clause);
            let tail = tail.trim_start();
            if tail.is_empty() {
                return Ok(Filter(clauses));
            }
            rest = strip_keyword(tail, "and").ok_or_else(|| invalid(input))?;
        }
    }

    /// Whether a Graph JSON object satisfies every clause.
    pub fn matches(&self, object: &serde_json::Map<String, Value>) -> bool {
        self.0.iter().all(|clause| {
            let (prop, want, starts) = match clause {
                Clause::Eq(p, v) => (p, v, false),
                Clause::StartsWith(p, v) => (p, v, true),
            };
            let Some(have) = object.get(prop).and_then(Value::as_str) else {
                return false;
            };
            let (have, want) = (have.to_lowercase(), want.to_lowercase());
            if starts {
                have.starts_with(&want)
            } else {
                have == want
            }
        })
    }
}

fn invalid(input: &str) -> ApiError {
    ApiError::BadRequest(format!("Invalid filter clause: {input}"))
}

fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    let tail = s.get(keyword.len()..)?;
    (head.eq_ignore_ascii_case(keyword) && tail.starts_with(char::is_whitespace))
        .then(|| tail.trim_start())
}

fn check_property(prop: &str, resource: &str) -> Result<String, ApiError> {
    FILTERABLE
        .iter()
        .find(|p| p.eq_ignore_ascii_case(prop))
        .map(|p| (*p).to_owned())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'."
            ))
        })
}

/// Parses a quoted literal with `''` as the escaped quote; returns it and the rest.
fn parse_literal(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some((out, s.get(i + 1..)?));
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn parse_clause<'a>(s: &'a str, resource: &str) -> Result<(Clause, &'a str), ApiError> {
    if let Some(inner) = s
        .get(..11)
        .filter(|h| h.eq_ignore_ascii_case("startswith("))
        .and_then(|_| s.get(11..))
    {
        let (prop, rest) = inner.split_once(',').ok_or_else(|| invalid(s))?;
        let prop = check_property(prop.trim(), resource)?;
        let (value, rest) = parse_literal(rest.trim_start()).ok_or_else(|| invalid(s))?;
        let rest = rest
            .trim_start()
            .strip_prefix(')')
            .ok_or_else(|| invalid(s))?;
        return Ok((Clause::StartsWith(prop, value), rest));
    }
    let (prop, rest) = s
        .split_once(char::is_whitespace)
        .ok_or_else(|| invalid(s))?;
    let prop = check_property(prop, resource)?;
    let rest = strip_keyword(rest.trim_start(), "eq").ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Only 'eq' and 'startswith' are supported in filter clause: {s}"
        ))
    })?;
    let (value, rest) = parse_literal(rest).ok_or_else(|| invalid(s))?;
    Ok((Clause::Eq(prop, value), rest))
}

/// Collection-valued properties: Graph shows an unset one as `[]`.
const COLLECTIONS: &[&str] = &[
    "businessPhones",
    "proxyAddresses",
    "otherMails",
    "imAddresses",
];

/// Keeps only the selected properties (plus `id` and OData annotations). A selected property the object
/// does not have is shown as Graph shows it: `null`, or `[]` for a collection.
pub fn select(
    object: serde_json::Map<String, Value>,
    fields: Option<&[String]>,
) -> serde_json::Map<String, Value> {
    match fields {
        None => object,
        Some(fields) => {
            let mut out: serde_json::Map<String, Value> = object
                .into_iter()
                .filter(|(k, _)| {
                    k == "id"
                        || k.starts_with("@odata")
                        || fields.iter().any(|f| f.eq_ignore_ascii_case(k))
                })
                .collect();
            for f in fields {
                if f.is_empty() || out.keys().any(|k| k.eq_ignore_ascii_case(f)) {
                    continue;
                }
                let unset = match COLLECTIONS.iter().find(|c| c.eq_ignore_ascii_case(f)) {
                    Some(c) => (c.to_string(), Value::Array(Vec::new())),
                    None => (f.clone(), Value::Null),
                };
                out.insert(unset.0, unset.1);
            }
            out
        }
    }
}

/// Decodes `%XX` escapes and `+` (as space, form style).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query value (unreserved characters stay).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'$') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits a raw query string into decoded (name, value) pairs.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(upn: &str, name: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("userPrincipalName".into(), upn.into());
        m.insert("displayName".into(), name.into());
        m
    }

    #[test]
    fn parses_eq_startswith_and_and() {
        let f = Filter::parse(
            "startswith(displayName,'Ann') and userPrincipalName eq 'o''neil@x.com'",
            "User",
        )
        .unwrap();
        assert_eq!(
            f.0,
            vec![
                Clause::StartsWith("displayName".into(), "Ann".into()),
                Clause::Eq("userPrincipalName".into(), "o'neil@x.com".into()),
            ]
        );
        assert!(f.matches(&obj("O'Neil@x.com", "anne")));
        assert!(!f.matches(&obj("oneil@x.com", "anne")));
    }

    #[test]
    fn rejects_unsupported_properties_operators_and_garbage() {
        for bad in [
            "mail eq 'a'",
            "displayName ne 'a'",
            "displayName eq 'a",
            "startswith(displayName,'a'",
            "",
            "displayName eq 'a' or x",
        ] {
            assert!(Filter::parse(bad, "User").is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_coding_round_trips() {
        let s = "userPrincipalName eq 'a+b@c.com' & ü";
        assert_eq!(percent_decode(&percent_encode(s)), s);
        assert_eq!(percent_decode("a%40b+c%zz"), "a@b c%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn filter_and_query_parsers_never_panic(s in "\\PC{0,80}", t in "(startswith\\(|eq |and |'|,|\\)|displayName|userPrincipalName| |%[0-9A-Fa-f]{0,2}){0,12}") {
            let _ = Filter::parse(&s, "User");
            let _ = Filter::parse(&t, "User");
            let _ = parse_query(&s);
            let _ = parse_query(&t);
            prop_assert_eq!(percent_decode(&percent_encode(&s)), s);
        }
    }
}
