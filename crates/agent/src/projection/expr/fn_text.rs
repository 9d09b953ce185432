//! String functions: Append, DNComponent, InStr, Join, Left, Mid, NormalizeDiacritics, Replace, Split,
//! StripSpaces, ToLower, ToUpper, Trim, Word. Positions and lengths count characters, 1-based.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::error::EvalError;
use super::eval::Args;
use super::value::Value;
use crate::projection::dn;

/// Applies `f` to a single value or to each value of a multi-value; Null stays Null.
fn per_value(
    v: Value,
    function: &'static str,
    f: impl Fn(&str) -> String,
) -> Result<Value, EvalError> {
    match v {
        Value::Multi(vals) => Ok(Value::Multi(vals.iter().map(|s| f(s)).collect())),
        other => Ok(match other.to_opt_str(function)? {
            Some(s) => Value::Str(f(&s)),
            None => Value::Null,
        }),
    }
}

/// `Append(source, suffix)`: a missing source counts as "".
pub fn append(a: &Args<'_>) -> Result<Value, EvalError> {
    let mut s = a.value(0)?.to_str_or_empty("Append")?;
    s.push_str(&a.value(1)?.to_str_or_empty("Append")?);
    Ok(Value::Str(s))
}

/// `DNComponent(dn, n)`: the value of the n-th RDN from the left (1-based); Null when out of range.
pub fn dn_component(a: &Args<'_>) -> Result<Value, EvalError> {
    let Some(text) = a.value(0)?.to_opt_str("DNComponent")? else {
        return Ok(Value::Null);
    };
    let n = a.value(1)?.to_num("DNComponent")?;
    let rdns = dn::split(&text).ok_or(EvalError::InvalidDn)?;
    Ok(usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| rdns.get(i))
        .map_or(Value::Null, |r| Value::Str(r.value.clone())))
}

fn chars_eq(a: char, b: char, ignore_case: bool) -> bool {
    a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// `InStr(check, match[, start[, compare]])`: 1-based position of the first match at or after `start`, 0 if none.
pub fn in_str(a: &Args<'_>) -> Result<Value, EvalError> {
    let Some(check) = a.value(0)?.to_opt_str("InStr")? else {
        return Ok(Value::Null);
    };
    let needle: Vec<char> = a.value(1)?.to_str_or_empty("InStr")?.chars().collect();
    let start = if a.present(2) {
        a.value(2)?.to_num("InStr")?
    } else {
        1
    };
    let ignore_case = if a.present(3) {
        match a
            .value(3)?
            .to_str_or_empty("InStr")?
            .to_ascii_lowercase()
            .as_str()
        {
            "vbtextcompare" | "1" => true,
            "vbbinarycompare" | "0" => false,
            other => {
                return Err(EvalError::UnknownOption {
                    function: "InStr",
                    value: other.to_string(),
                });
            }
        }
    } else {
        false
    };
    let hay: Vec<char> = check.chars().collect();
    let from = usize::try_from(start.max(1) - 1).unwrap_or(0);
    if needle.is_empty() {
        return Ok(Value::Num(if from <= hay.len() {
            from as i64 + 1
        } else {
            0
        }));
    }
    let found = (from..hay.len().saturating_sub(needle.len() - 1)).find(|&i| {
        hay[i..i + needle.len()]
            .iter()
            .zip(&needle)
            .all(|(x, y)| chars_eq(*x, *y, ignore_case))
    });
    Ok(Value::Num(found.map_or(0, |i| i as i64 + 1)))
}

/// `Join(separator, source1, …)`: every value of every source (Nulls skipped), separated.
pub fn join(a: &Args<'_>) -> Result<Value, EvalError> {
    let sep = a.value(0)?.to_str_or_empty("Join")?;
    let mut parts = Vec::new();
    for i in 1..a.len() {
        parts.extend(a.value(i)?.to_strings("Join")?);
    }
    Ok(Value::Str(parts.join(&sep)))
}

/// `Left(string, n)`: n = 0 gives "", n < 0 the whole string, Null gives "".
pub fn left(a: &Args<'_>) -> Result<Value, EvalError> {
    let s = a.value(0)?.to_str_or_empty("Left")?;
    let n = a.value(1)?.to_num("Left")?;
    Ok(Value::Str(match usize::try_from(n) {
        Ok(n) => s.chars().take(n).collect(),
        Err(_) => s,
    }))
}

/// `Mid(source, start, length)`: start is 1-based; a length running past the end stops at the end.
pub fn mid(a: &Args<'_>) -> Result<Value, EvalError> {
    let Some(s) = a.value(0)?.to_opt_str("Mid")? else {
        return Ok(Value::Null);
    };
    let start = a.value(1)?.to_num("Mid")?;
    let len = a.value(2)?.to_num("Mid")?;
    let bad = |expected| EvalError::Type {
        function: "Mid",
        expected,
        found: "number out of range",
    };
    let start = usize::try_from(start)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or(bad("start of 1 or more"))?;
    let len = usize::try_from(len).map_err(|_| bad("length of 0 or more"))?;
    Ok(Value::Str(s.chars().skip(start - 1).take(len).collect()))
}

/// Letters that carry no combining mark in Unicode but are commonly transliterated for identifiers.
const EXTRA_FOLDS: &[(char, &str)] = &[
    ('ø', "o"),
    ('Ø', "O"),
    ('ł', "l"),
    ('Ł', "L"),
    ('đ', "d"),
    ('Đ', "D"),
    ('ħ', "h"),
    ('Ħ', "H"),
    ('ı', "i"),
    ('ß', "ss"),
    ('æ', "ae"),
    ('Æ', "AE"),
    ('œ', "oe"),
    ('Œ', "OE"),
    ('þ', "th"),
    ('Þ', "TH"),
    ('ð', "d"),
    ('Ð', "D"),
];

/// Removes diacritics: canonical decomposition (NFD) without combining marks, then NFC, plus the
/// letters in `EXTRA_FOLDS` (ø ł đ ħ ı ß æ œ þ ð) that Unicode does not decompose.
pub fn fold_diacritics(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfd().filter(|c| !is_combining_mark(*c)) {
        match EXTRA_FOLDS.iter().find(|(k, _)| *k == c) {
            Some((_, r)) => out.push_str(r),
            None => out.push(c),
        }
    }
    out.nfc().collect()
}

/// `NormalizeDiacritics(source)`.
pub fn normalize_diacritics(a: &Args<'_>) -> Result<Value, EvalError> {
    per_value(a.value(0)?, "NormalizeDiacritics", fold_diacritics)
}

/// `Replace(source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template)`.
/// The parser has already checked that the arguments form one of the documented combinations.
pub fn replace(a: &Args<'_>, compiled: Option<&regex::Regex>) -> Result<Value, EvalError> {
    const F: &str = "Replace";
    let Some(source) = a.value(0)?.to_opt_str(F)? else {
        return Ok(Value::Null);
    };
    if a.present(1) {
        let old = a.value(1)?.to_str_or_empty(F)?;
        if a.present(6) {
            let template = a.value(6)?.to_str_or_empty(F)?;
            return Ok(Value::Str(if old.is_empty() {
                template
            } else {
                template.replace(&old, &source)
            }));
        }
        let new = a.value(4)?.to_str_or_empty(F)?;
        return Ok(Value::Str(if old.is_empty() {
            source
        } else {
            source.replace(&old, &new)
        }));
    }
    let owned;
    let re = match compiled {
        Some(re) => re,
        None => {
            let pattern = a.value(2)?.to_str_or_empty(F)?;
            owned = regex::Regex::new(&pattern).map_err(EvalError::InvalidRegex)?;
            &owned
        }
    };
    if !a.present(3) {
        let new = a.value(4)?.to_str_or_empty(F)?;
        return Ok(Value::Str(
            re.replace_all(&source, new.as_str()).into_owned(),
        ));
    }
    let group = a.value(3)?.to_str_or_empty(F)?;
    if !re.capture_names().flatten().any(|n| n == group) {
        return Err(EvalError::UnknownGroup(group));
    }
    let new = if a.present(4) {
        a.value(4)?
    } else {
        a.value(5)?
    }
    .to_str_or_empty(F)?;
    let mut out = String::with_capacity(source.len());
    let mut last = 0;
    for caps in re.captures_iter(&source) {
        if let Some(m) = caps.name(&group) {
            out.push_str(&source[last..m.start()]);
            out.push_str(&new);
            last = m.end();
        }
    }
    out.push_str(&source[last..]);
    Ok(Value::Str(out))
}

/// `Split(source, delimiter)`: a multi-value; Null stays Null; values are not trimmed.
pub fn split(a: &Args<'_>) -> Result<Value, EvalError> {
    let Some(s) = a.value(0)?.to_opt_str("Split")? else {
        return Ok(Value::Null);
    };
    let delim = a.value(1)?.to_str_or_empty("Split")?;
    if delim.is_empty() {
        return Ok(Value::Multi(vec![s]));
    }
    Ok(Value::Multi(
        s.split(delim.as_str()).map(str::to_string).collect(),
    ))
}

/// `StripSpaces(source)`: removes every U+0020.
pub fn strip_spaces(a: &Args<'_>) -> Result<Value, EvalError> {
    per_value(a.value(0)?, "StripSpaces", |s| s.replace(' ', ""))
}

fn turkic(a: &Args<'_>, function: &'static str) -> Result<bool, EvalError> {
    if !a.present(1) {
        return Ok(false);
    }
    let culture = a.value(1)?.to_str_or_empty(function)?.to_ascii_lowercase();
    Ok(culture == "tr"
        || culture == "az"
        || culture.starts_with("tr-")
        || culture.starts_with("az-"))
}

/// `ToLower(source[, culture])`: invariant lower case; Turkish and Azeri map `I`→`ı` and `İ`→`i`.
pub fn to_lower(a: &Args<'_>) -> Result<Value, EvalError> {
    let tr = turkic(a, "ToLower")?;
    per_value(a.value(0)?, "ToLower", |s| {
        if tr {
            s.chars()
                .map(|c| match c {
                    'I' => "ı".to_string(),
                    'İ' => "i".to_string(),
                    c => c.to_lowercase().collect(),
                })
                .collect()
        } else {
            s.to_lowercase()
        }
    })
}

/// `ToUpper(source[, culture])`: invariant upper case; Turkish and Azeri map `i`→`İ`.
pub fn to_upper(a: &Args<'_>) -> Result<Value, EvalError> {
    let tr = turkic(a, "ToUpper")?;
    per_value(a.value(0)?, "ToUpper", |s| {
        if tr {
            s.chars()
                .map(|c| match c {
                    'i' => "İ".to_string(),
                    c => c.to_uppercase().collect(),
                })
                .collect()
        } else {
            s.to_uppercase()
        }
    })
}

/// `Trim(value)`: leading and trailing white space, per value of a multi-value.
pub fn trim(a: &Args<'_>) -> Result<Value, EvalError> {
    per_value(a.value(0)?, "Trim", |s| s.trim().to_string())
}

/// `Word(string, n, delimiters)`: the n-th word, words being runs between any of the delimiter characters
/// (empty runs are not words); "" when n < 1, the string is Null, or there are fewer words.
pub fn word(a: &Args<'_>) -> Result<Value, EvalError> {
    let s = a.value(0)?.to_str_or_empty("Word")?;
    let n = a.value(1)?.to_num("Word")?;
    let delims: Vec<char> = a.value(2)?.to_str_or_empty("Word")?.chars().collect();
    let Some(i) = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)) else {
        return Ok(Value::Str(String::new()));
    };
    let word = s
        .split(|c| delims.contains(&c))
        .filter(|w| !w.is_empty())
        .nth(i)
        .unwrap_or_default();
    Ok(Value::Str(word.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::eval::testing::*;
    use super::*;

    #[test]
    fn append_documented() {
        let ctx = Ctx::default().with("userPrincipalName", s("John.Doe@contoso.com"));
        assert_eq!(
            run(&ctx, r#"Append([userPrincipalName], ".test")"#),
            Ok(s("John.Doe@contoso.com.test"))
        );
        assert_eq!(run0(r#"Append([none], "x")"#), Ok(s("x")));
    }

    #[test]
    fn dn_component_documented() {
        let ctx = Ctx::default().with("dn", s("cn=Joe,ou=Sales,dc=contoso,dc=com"));
        assert_eq!(run(&ctx, "DNComponent(CRef([dn]),1)"), Ok(s("Joe")));
        assert_eq!(run(&ctx, "DNComponent([dn],2)"), Ok(s("Sales")));
        assert_eq!(run(&ctx, "DNComponent([dn],9)"), Ok(Value::Null));
        let ctx = Ctx::default().with("dn", s("garbage"));
        assert_eq!(run(&ctx, "DNComponent([dn],1)"), Err(EvalError::InvalidDn));
    }

    #[test]
    fn in_str_documented() {
        assert_eq!(
            run0(r#"InStr("The quick brown fox","quick")"#),
            Ok(Value::Num(5))
        );
        assert_eq!(
            run0(r#"InStr("repEated","e",3,vbBinaryCompare)"#),
            Ok(Value::Num(7))
        );
        assert_eq!(
            run0(r#"InStr("repEated","e",3,vbTextCompare)"#),
            Ok(Value::Num(4))
        );
        assert_eq!(run0(r#"InStr("abc","z")"#), Ok(Value::Num(0)));
        assert_eq!(run0(r#"InStr("ab","abc")"#), Ok(Value::Num(0)));
        assert!(run0(r#"InStr("ab","a",1,"fuzzy")"#).is_err());
    }

    #[test]
    fn join_documented() {
        let ctx = Ctx::default()
            .with("PreferredFirstName", s("John"))
            .with("PreferredLastName", s("Smith"))
            .with("proxy", Value::Multi(vec!["a".into(), "b".into()]));
        assert_eq!(
            run(
                &ctx,
                r#"ToLower(Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName], [PreferredLastName]))), "contoso.com"))"#
            ),
            Ok(s("john.smith@contoso.com"))
        );
        assert_eq!(
            run(&ctx, r#"Join(";", [proxy], [none], "c")"#),
            Ok(s("a;b;c"))
        );
    }

    #[test]
    fn left_documented() {
        assert_eq!(run0(r#"Left("John Doe", 3)"#), Ok(s("Joh")));
        assert_eq!(run0(r#"Left("John Doe", 0)"#), Ok(s("")));
        assert_eq!(run0(r#"Left("John Doe", -1)"#), Ok(s("John Doe")));
        assert_eq!(run0(r#"Left("Jo", 5)"#), Ok(s("Jo")));
        assert_eq!(run0(r#"Left([none], 2)"#), Ok(s("")));
    }

    #[test]
    fn mid_documented() {
        let ctx = Ctx::default()
            .with("givenName", s("John"))
            .with("surname", s("Doe"));
        assert_eq!(
            run(
                &ctx,
                r#"Append(Mid([givenName], 1, 3), Mid([surname], 1, 5))"#
            ),
            Ok(s("JohDoe"))
        );
        assert_eq!(run0(r#"Mid("Zoë", 3, 1)"#), Ok(s("ë")));
        assert_eq!(run0(r#"Mid("abc", 9, 1)"#), Ok(s("")));
        assert!(run0(r#"Mid("abc", 0, 1)"#).is_err());
    }

    #[test]
    fn normalize_diacritics_documented() {
        let ctx = Ctx::default().with("givenName", s("Zoë"));
        assert_eq!(run(&ctx, "NormalizeDiacritics([givenName])"), Ok(s("Zoe")));
        assert_eq!(
            run0(r#"NormalizeDiacritics("Łukasz Øre Straße Ångström")"#),
            Ok(s("Lukasz Ore Strasse Angstrom"))
        );
        assert_eq!(run0("NormalizeDiacritics([none])"), Ok(Value::Null));
    }

    #[test]
    fn replace_documented() {
        let ctx = Ctx::default()
            .with("mail", s("john.doe@contoso.com"))
            .with("mailNickname", s("john_doe72"));
        assert_eq!(
            run(&ctx, r#"Replace([mail], "@contoso.com", , ,"", ,)"#),
            Ok(s("john.doe"))
        );
        assert_eq!(
            run(&ctx, r#"Replace([mailNickname], , "[a-zA-Z_]*", , "", , )"#),
            Ok(s("72"))
        );
        assert_eq!(
            run(&ctx, r#"Replace([mailNickname], "_", , , , , "user-_")"#),
            Ok(s("user-john_doe72"))
        );
        assert_eq!(
            run(
                &ctx,
                r#"Replace([mail], , "(?<user>[^@]+)@(?<dom>.+)", "dom", "fabrikam.com", , )"#
            ),
            Ok(s("john.doe@fabrikam.com"))
        );
        assert_eq!(
            run(&ctx, r#"Replace([mail], , "(?<u>[^@]+)@", , "$u at ", , )"#),
            Ok(s("john.doe at contoso.com"))
        );
        let ctx = ctx.with("alt", s("X"));
        assert_eq!(
            run(&ctx, r#"Replace([mail], , "(?<d>o)", "d", , [alt], )"#),
            Ok(s("jXhn.dXe@cXntXsX.cXm"))
        );
        assert_eq!(
            run0(r#"Replace([none], "a", , , "b", , )"#),
            Ok(Value::Null)
        );
        assert_eq!(
            run(&ctx, r#"Replace([mail], , "(?<d>o)", "nope", "y", , )"#),
            Err(EvalError::UnknownGroup("nope".into()))
        );
        let ctx = ctx.with("pat", s("("));
        assert!(matches!(
            run(&ctx, r#"Replace([mail], , [pat], , "y", , )"#),
            Err(EvalError::InvalidRegex(_))
        ));
    }

    #[test]
    fn split_documented() {
        let ctx = Ctx::default().with(
            "extensionAttribute5",
            s("PermissionSetOne,PermissionSetTwo"),
        );
        assert_eq!(
            run(&ctx, r#"Split([extensionAttribute5], ",")"#),
            Ok(Value::Multi(vec![
                "PermissionSetOne".into(),
                "PermissionSetTwo".into()
            ]))
        );
        assert_eq!(run0(r#"Split([none], ",")"#), Ok(Value::Null));
    }

    #[test]
    fn strip_spaces_and_trim() {
        assert_eq!(run0(r#"StripSpaces(" a b  c ")"#), Ok(s("abc")));
        assert_eq!(run0(r#"Trim(" Test ")"#), Ok(s("Test")));
        let ctx = Ctx::default().with(
            "proxyAddresses",
            Value::Multi(vec![" a ".into(), "b ".into()]),
        );
        assert_eq!(
            run(&ctx, "Trim([proxyAddresses])"),
            Ok(Value::Multi(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn case_mapping_with_culture() {
        assert_eq!(run0(r#"ToLower("ÀBC")"#), Ok(s("àbc")));
        assert_eq!(run0(r#"ToUpper("straße")"#), Ok(s("STRASSE")));
        assert_eq!(run0(r#"ToLower("ISTANBUL", "tr-TR")"#), Ok(s("ıstanbul")));
        assert_eq!(run0(r#"ToUpper("istanbul", "tr-TR")"#), Ok(s("İSTANBUL")));
        assert_eq!(run0(r#"ToUpper("istanbul", "en-US")"#), Ok(s("ISTANBUL")));
    }

    #[test]
    fn word_documented() {
        assert_eq!(run0(r#"Word("The quick brown fox",3," ")"#), Ok(s("brown")));
        assert_eq!(
            run0(r#"Word("This,string!has&many separators",3,",!&#")"#),
            Ok(s("has"))
        );
        assert_eq!(run0(r#"Word("a b",0," ")"#), Ok(s("")));
        assert_eq!(run0(r#"Word("a b",3," ")"#), Ok(s("")));
        assert_eq!(run0(r#"Word([none],1," ")"#), Ok(s("")));
    }
}
