//! Runtime values of the expression language and the coercions between them.

use time::PrimitiveDateTime;

use super::error::EvalError;

/// A value produced by an attribute read, a constant or a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Absent (an attribute the object does not have).
    Null,
    /// Text.
    Str(String),
    /// An integer.
    Num(i64),
    /// A boolean.
    Bool(bool),
    /// Several text values (a multi-valued attribute, or `Split`'s result).
    Multi(Vec<String>),
    /// Raw bytes (objectSid, objectGUID, …).
    Bin(Vec<u8>),
    /// A date and time in UTC.
    Date(PrimitiveDateTime),
}

impl Value {
    /// The type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Str(_) => "string",
            Value::Num(_) => "number",
            Value::Bool(_) => "boolean",
            Value::Multi(_) => "multi-valued string",
            Value::Bin(_) => "binary",
            Value::Date(_) => "date",
        }
    }

    /// Text for string functions: `None` for Null (and an empty multi-value), an error for binary data
    /// and for more than one value.
    pub fn to_opt_str(&self, function: &'static str) -> Result<Option<String>, EvalError> {
        Ok(match self {
            Value::Null => None,
            Value::Str(s) => Some(s.clone()),
            Value::Num(n) => Some(n.to_string()),
            Value::Bool(b) => Some(bool_text(*b).to_string()),
            Value::Date(d) => Some(date_text(*d)),
            Value::Multi(v) => match v.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                _ => {
                    return Err(EvalError::MultiValued {
                        function,
                        count: v.len(),
                    });
                }
            },
            Value::Bin(_) => {
                return Err(EvalError::Type {
                    function,
                    expected: "string",
                    found: "binary",
                });
            }
        })
    }

    /// Text, with Null as the empty string.
    pub fn to_str_or_empty(&self, function: &'static str) -> Result<String, EvalError> {
        Ok(self.to_opt_str(function)?.unwrap_or_default())
    }

    /// An integer: numbers, booleans (True = -1 as in VBA), decimal or `&H` hexadecimal text.
    pub fn to_num(&self, function: &'static str) -> Result<i64, EvalError> {
        let bad = |found| EvalError::Type {
            function,
            expected: "number",
            found,
        };
        match self {
            Value::Num(n) => Ok(*n),
            Value::Bool(b) => Ok(if *b { -1 } else { 0 }),
            other => {
                let text = other.to_opt_str(function)?.ok_or(bad("null"))?;
                parse_num(&text).ok_or(bad("non-numeric string"))
            }
        }
    }

    /// A boolean: booleans, non-zero numbers, the texts `True`/`False` (any case) or numeric text;
    /// Null is false.
    pub fn to_bool(&self, function: &'static str) -> Result<bool, EvalError> {
        match self {
            Value::Bool(b) => Ok(*b),
            Value::Num(n) => Ok(*n != 0),
            Value::Null => Ok(false),
            other => {
                let text = other.to_opt_str(function)?.unwrap_or_default();
                let t = text.trim();
                if t.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if t.eq_ignore_ascii_case("false") || t.is_empty() {
                    Ok(false)
                } else {
                    parse_num(t).map(|n| n != 0).ok_or(EvalError::Type {
                        function,
                        expected: "boolean",
                        found: "string",
                    })
                }
            }
        }
    }

    /// All text values: Null gives none, a multi-value gives each, anything else one.
    pub fn to_strings(&self, function: &'static str) -> Result<Vec<String>, EvalError> {
        match self {
            Value::Multi(v) => Ok(v.clone()),
            other => Ok(other.to_opt_str(function)?.into_iter().collect()),
        }
    }
}

/// `True` / `False`, as VBA prints booleans.
pub fn bool_text(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Dates print as ISO 8601 in UTC, e.g. `2012-01-01T23:00:00Z` (fractions only when present).
pub fn date_text(d: PrimitiveDateTime) -> String {
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    match d.nanosecond() {
        0 => format!("{base}Z"),
        ns => format!("{base}.{:07}Z", ns / 100),
    }
}

/// Parses `123`, `-5` or `&HF7`.
pub fn parse_num(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("&H").or_else(|| t.strip_prefix("&h")) {
        u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| i64::try_from(n).ok())
    } else {
        t.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercions() {
        assert_eq!(Value::Str("&HF7".into()).to_num("t"), Ok(247));
        assert_eq!(Value::Str(" 512 ".into()).to_num("t"), Ok(512));
        assert!(Value::Str("x".into()).to_num("t").is_err());
        assert_eq!(Value::Bool(true).to_num("t"), Ok(-1));
        assert_eq!(Value::Str("TRUE".into()).to_bool("t"), Ok(true));
        assert_eq!(Value::Str("0".into()).to_bool("t"), Ok(false));
        assert_eq!(Value::Null.to_bool("t"), Ok(false));
        assert_eq!(
            Value::Multi(vec!["a".into()]).to_opt_str("t"),
            Ok(Some("a".into()))
        );
        assert!(matches!(
            Value::Multi(vec!["a".into(), "b".into()]).to_opt_str("t"),
            Err(EvalError::MultiValued { count: 2, .. })
        ));
        assert!(Value::Bin(vec![1]).to_opt_str("t").is_err());
        assert_eq!(Value::Null.to_strings("t"), Ok(vec![]));
    }
}
