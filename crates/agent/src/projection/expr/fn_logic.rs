//! Logic and multi-value functions: Count, Error, IIF, IsNull, IsNullOrEmpty, IsPresent, IsString, Item, Not,
//! RemoveDuplicates, SelectUniqueValue, Switch.

use super::error::EvalError;
use super::eval::Args;
use super::value::Value;

/// `Count(attribute)`: number of values; Null has 0.
pub fn count(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Num(match a.value(0)? {
        Value::Null => 0,
        Value::Multi(v) => v.len() as i64,
        _ => 1,
    }))
}

/// `Error(message)`: fails the object with the message.
pub fn error(a: &Args<'_>) -> Result<Value, EvalError> {
    Err(EvalError::Custom(a.value(0)?.to_str_or_empty("Error")?))
}

/// `IIF(condition, ifTrue, ifFalse)`: only the chosen branch is evaluated.
pub fn iif(a: &Args<'_>) -> Result<Value, EvalError> {
    if a.value(0)?.to_bool("IIF")? {
        a.value(1)
    } else {
        a.value(2)
    }
}

/// `IsNull(expression)`.
pub fn is_null(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Bool(matches!(a.value(0)?, Value::Null)))
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Str(s) => s.is_empty(),
        Value::Multi(v) => v.is_empty() || (v.len() == 1 && v[0].is_empty()),
        Value::Bin(b) => b.is_empty(),
        Value::Num(_) | Value::Bool(_) | Value::Date(_) => false,
    }
}

/// `IsNullOrEmpty(expression)`: absent, or present but "".
pub fn is_null_or_empty(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Bool(empty(&a.value(0)?)))
}

/// `IsPresent(expression)`: the inverse of `IsNullOrEmpty`.
pub fn is_present(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Bool(!empty(&a.value(0)?)))
}

/// `IsString(expression)`: whether `CStr` would succeed and give a value.
pub fn is_string(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Bool(matches!(
        a.value(0)?.to_opt_str("IsString"),
        Ok(Some(_))
    )))
}

/// `Item(attribute, index)`: the index-th value, 1-based; out of range is an error.
pub fn item(a: &Args<'_>) -> Result<Value, EvalError> {
    let values = a.value(0)?.to_strings("Item")?;
    let index = a.value(1)?.to_num("Item")?;
    usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| values.get(i))
        .map(|v| Value::Str(v.clone()))
        .ok_or(EvalError::IndexOutOfRange {
            index,
            len: values.len(),
        })
}

/// `Not(source)`: False when the source is true, otherwise True.
pub fn not(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Bool(!a.value(0)?.to_bool("Not").unwrap_or(false)))
}

/// `RemoveDuplicates(attribute)`: keeps the first of equal values (ordinal comparison), in order.
pub fn remove_duplicates(a: &Args<'_>) -> Result<Value, EvalError> {
    let v = a.value(0)?;
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    let mut seen = std::collections::BTreeSet::new();
    let out = v
        .to_strings("RemoveDuplicates")?
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect();
    Ok(Value::Multi(out))
}

/// `SelectUniqueValue(rule1, rule2, …)`: the first non-empty candidate that is free in the target.
pub fn select_unique_value(a: &Args<'_>) -> Result<Value, EvalError> {
    for i in 0..a.len() {
        if let Some(candidate) = a.value(i)?.to_opt_str("SelectUniqueValue")?
            && !candidate.is_empty()
            && a.ctx().is_unique(&candidate)
        {
            return Ok(Value::Str(candidate));
        }
    }
    Err(EvalError::NoUniqueValue)
}

/// `Switch(source, default, key1, value1, …)`: the value of the first key equal to the source (ordinal),
/// else the default. Only the chosen value is evaluated.
pub fn switch(a: &Args<'_>) -> Result<Value, EvalError> {
    let source = a.value(0)?.to_opt_str("Switch")?;
    if let Some(source) = source {
        let mut i = 2;
        while i + 1 < a.len() {
            if a.value(i)?.to_opt_str("Switch")?.as_deref() == Some(source.as_str()) {
                return a.value(i + 1);
            }
            i += 2;
        }
    }
    a.value(1)
}

#[cfg(test)]
mod tests {
    use super::super::eval::testing::*;
    use super::*;

    fn multi(v: &[&str]) -> Value {
        Value::Multi(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn count_values() {
        let ctx = Ctx::default()
            .with("p", multi(&["a", "b", "c"]))
            .with("one", s("x"));
        assert_eq!(run(&ctx, "Count([p])"), Ok(Value::Num(3)));
        assert_eq!(run(&ctx, "Count([one])"), Ok(Value::Num(1)));
        assert_eq!(run(&ctx, "Count([none])"), Ok(Value::Num(0)));
    }

    #[test]
    fn error_documented() {
        let ctx = Ctx::default().with("accountName", s("jdoe"));
        let text =
            r#"IIF(IsPresent([accountName]),[accountName],Error("AccountName is required"))"#;
        assert_eq!(run(&ctx, text), Ok(s("jdoe")));
        assert_eq!(
            run0(text),
            Err(EvalError::Custom("AccountName is required".into()))
        );
    }

    #[test]
    fn null_and_presence() {
        let ctx = Ctx::default().with("empty", s("")).with("full", s("x"));
        assert_eq!(run(&ctx, "IsNull([none])"), Ok(Value::Bool(true)));
        assert_eq!(run(&ctx, "IsNull([empty])"), Ok(Value::Bool(false)));
        assert_eq!(run(&ctx, "IsNullOrEmpty([empty])"), Ok(Value::Bool(true)));
        assert_eq!(run(&ctx, "IsNullOrEmpty([none])"), Ok(Value::Bool(true)));
        assert_eq!(run(&ctx, "IsNullOrEmpty([full])"), Ok(Value::Bool(false)));
        assert_eq!(run(&ctx, "IsPresent([full])"), Ok(Value::Bool(true)));
        assert_eq!(run(&ctx, "IsPresent([empty])"), Ok(Value::Bool(false)));
    }

    #[test]
    fn is_string_values() {
        let ctx = Ctx::default().with("b", Value::Bin(vec![0xff]));
        assert_eq!(run(&ctx, r#"IsString("x")"#), Ok(Value::Bool(true)));
        assert_eq!(run(&ctx, "IsString(3)"), Ok(Value::Bool(true)));
        assert_eq!(run(&ctx, "IsString([b])"), Ok(Value::Bool(false)));
        assert_eq!(run(&ctx, "IsString([none])"), Ok(Value::Bool(false)));
    }

    #[test]
    fn item_is_one_based() {
        let ctx = Ctx::default().with("proxyAddresses", multi(&["SMTP:a@x", "smtp:b@x"]));
        assert_eq!(run(&ctx, "Item([proxyAddresses], 1)"), Ok(s("SMTP:a@x")));
        assert_eq!(
            run(&ctx, "Mid(Item([proxyAddresses], 1), 6, 99)"),
            Ok(s("a@x"))
        );
        assert_eq!(
            run(&ctx, "Item([proxyAddresses], 0)"),
            Err(EvalError::IndexOutOfRange { index: 0, len: 2 })
        );
        assert_eq!(
            run(&ctx, "Item([proxyAddresses], 3)"),
            Err(EvalError::IndexOutOfRange { index: 3, len: 2 })
        );
    }

    #[test]
    fn not_documented() {
        assert_eq!(run0(r#"Not("True")"#), Ok(Value::Bool(false)));
        assert_eq!(run0(r#"Not("False")"#), Ok(Value::Bool(true)));
        assert_eq!(run0(r#"Not("banana")"#), Ok(Value::Bool(true)));
        assert_eq!(run0("Not(IsNull([x]))"), Ok(Value::Bool(false)));
    }

    #[test]
    fn remove_duplicates_keeps_first() {
        let ctx = Ctx::default().with("p", multi(&["a", "b", "a", "c", "b"]));
        assert_eq!(
            run(&ctx, "RemoveDuplicates([p])"),
            Ok(multi(&["a", "b", "c"]))
        );
        assert_eq!(run(&ctx, "RemoveDuplicates([none])"), Ok(Value::Null));
    }

    #[test]
    fn select_unique_value_skips_taken() {
        let mut ctx = Ctx::default()
            .with("givenName", s("John"))
            .with("sn", s("Smith"));
        ctx.taken = vec!["john@contoso.com".into()];
        let text = r#"SelectUniqueValue(Join("@", [givenName], "contoso.com"), Join("@", [sn], "contoso.com"))"#;
        assert_eq!(run(&ctx, text), Ok(s("Smith@contoso.com")));
        ctx.taken.push("smith@contoso.com".into());
        assert_eq!(run(&ctx, text), Err(EvalError::NoUniqueValue));
    }

    #[test]
    fn switch_documented() {
        let text = r#"Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane", "SA", "Australia/Adelaide")"#;
        assert_eq!(
            run(&Ctx::default().with("state", s("QLD")), text),
            Ok(s("Australia/Brisbane"))
        );
        assert_eq!(
            run(&Ctx::default().with("state", s("WA")), text),
            Ok(s("Australia/Sydney"))
        );
        assert_eq!(run0(text), Ok(s("Australia/Sydney")));
        assert_eq!(
            run0(r#"Switch("a", "d", "a", "hit", "b", Error("not evaluated"))"#),
            Ok(s("hit"))
        );
    }
}
