//! The evaluator: walks an [`Expr`] against one object's attributes.
//!
//! Arguments are evaluated lazily, so `IIF(cond, a, Error("…"))` only fails when the error branch is taken.

use super::ast::{Constant, Expr, Func};
use super::error::EvalError;
use super::value::Value;
use super::{fn_convert, fn_date, fn_logic, fn_text};

/// What an expression can see of the world while evaluating for one object.
pub trait EvalContext {
    /// The object's attribute by name (case-insensitive); [`Value::Null`] when absent.
    fn attribute(&self, name: &str) -> Value;

    /// The attribute `name`, which [`super::Expr::resolve`] placed in `slot` (a context that resolved
    /// nothing never sees this call; the default reads by name).
    fn attribute_in_slot(&self, name: &str, slot: u16) -> Value {
        let _ = slot;
        self.attribute(name)
    }

    /// For the attribute in `slot`: how many values it has and whether the first is empty, when the
    /// context can tell without reading the values (`IsPresent` and friends use it); `None` otherwise.
    fn attribute_shape(&self, name: &str, slot: u16) -> Option<(usize, bool)> {
        let _ = (name, slot);
        None
    }

    /// 16 bytes for `Guid()`. The projector derives them from the object and the journal sequence
    /// number so that replays produce the same state (DESIGN invariant 5); they are not random.
    fn guid_bytes(&self) -> [u8; 16];

    /// Whether `value` is free for the attribute being mapped (`SelectUniqueValue`).
    fn is_unique(&self, value: &str) -> bool;
}

/// Evaluates `expr` for the object behind `ctx`.
pub fn eval(expr: &Expr, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    match expr {
        Expr::Attr { name, slot } if *slot != super::ast::NO_SLOT => {
            Ok(ctx.attribute_in_slot(name, *slot))
        }
        Expr::Attr { name, .. } => Ok(ctx.attribute(name)),
        Expr::Str(s) => Ok(Value::Str(s.clone())),
        Expr::Num(n) => Ok(Value::Num(*n)),
        Expr::Const(Constant::True) => Ok(Value::Bool(true)),
        Expr::Const(Constant::False) => Ok(Value::Bool(false)),
        Expr::Const(c) => Ok(Value::Str(c.name().to_string())),
        Expr::Omitted => Ok(Value::Null),
        Expr::Concat(parts) => {
            let mut out = String::new();
            for p in parts {
                out.push_str(&eval(p, ctx)?.to_str_or_empty("&")?);
            }
            Ok(Value::Str(out))
        }
        Expr::Compare {
            left,
            right,
            negated,
        } => {
            let l = eval(left, ctx)?;
            let r = eval(right, ctx)?;
            Ok(Value::Bool(values_equal(&l, &r)? != *negated))
        }
        Expr::Call {
            func, args, regex, ..
        } => {
            let a = Args { args, ctx };
            call(*func, &a, regex.as_deref())
        }
    }
}

/// `=` semantics: Null equals only Null; numbers compare numerically when both sides are numeric;
/// everything else compares as text, ordinally.
fn values_equal(l: &Value, r: &Value) -> Result<bool, EvalError> {
    match (l, r) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Num(_), _) | (_, Value::Num(_)) => match (l.to_num("="), r.to_num("=")) {
            (Ok(a), Ok(b)) => Ok(a == b),
            _ => Ok(l.to_opt_str("=")? == r.to_opt_str("=")?),
        },
        (Value::Bool(_), _) | (_, Value::Bool(_)) => Ok(l.to_bool("=")? == r.to_bool("=")?),
        (Value::Bin(a), Value::Bin(b)) => Ok(a == b),
        _ => Ok(l.to_opt_str("=")? == r.to_opt_str("=")?),
    }
}

/// Lazily evaluated arguments of one call.
pub struct Args<'a> {
    args: &'a [Expr],
    ctx: &'a dyn EvalContext,
}

impl Args<'_> {
    /// How many arguments were written (including empty slots).
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Evaluates argument `i`; a missing or empty one is Null.
    pub fn value(&self, i: usize) -> Result<Value, EvalError> {
        match self.args.get(i) {
            Some(e) => eval(e, self.ctx),
            None => Ok(Value::Null),
        }
    }

    /// Whether argument `i` was written (not omitted).
    pub fn present(&self, i: usize) -> bool {
        self.args
            .get(i)
            .is_some_and(|e| !matches!(e, Expr::Omitted))
    }

    /// The evaluation context.
    pub fn ctx(&self) -> &dyn EvalContext {
        self.ctx
    }
}

/// `IsNull`, `IsNullOrEmpty` and `IsPresent` of a resolved attribute, answered from its shape alone when
/// that decides it (no values, or one non-empty value).
fn presence(func: Func, a: &Args<'_>) -> Option<Value> {
    let Some(Expr::Attr { name, slot }) = a.args.first() else {
        return None;
    };
    if *slot == super::ast::NO_SLOT || a.args.len() != 1 {
        return None;
    }
    let (count, first_empty) = a.ctx.attribute_shape(name, *slot)?;
    let empty = match (count, first_empty) {
        (0, _) => true,
        (1, false) => false,
        _ => return None,
    };
    match func {
        Func::IsNull => Some(Value::Bool(count == 0)),
        Func::IsNullOrEmpty => Some(Value::Bool(empty)),
        Func::IsPresent => Some(Value::Bool(!empty)),
        _ => None,
    }
}

fn call(func: Func, a: &Args<'_>, regex: Option<&regex::Regex>) -> Result<Value, EvalError> {
    if matches!(func, Func::IsNull | Func::IsNullOrEmpty | Func::IsPresent)
        && let Some(v) = presence(func, a)
    {
        return Ok(v);
    }
    match func {
        Func::Append => fn_text::append(a),
        Func::BitAnd => fn_convert::bit_and(a),
        Func::CBool => fn_convert::cbool(a),
        Func::ConvertFromBase64 => fn_convert::from_base64(a),
        Func::ConvertToBase64 => fn_convert::to_base64(a),
        Func::ConvertToUtf8Hex => fn_convert::to_utf8_hex(a),
        Func::Count => fn_logic::count(a),
        Func::CRef => a.value(0),
        Func::CStr => fn_convert::cstr(a),
        Func::DateFromNum => fn_date::date_from_num(a),
        Func::DnComponent => fn_text::dn_component(a),
        Func::Error => fn_logic::error(a),
        Func::FormatDateTime => fn_date::format_date_time(a),
        Func::Guid => fn_convert::guid(a),
        Func::Iif => fn_logic::iif(a),
        Func::InStr => fn_text::in_str(a),
        Func::IsNull => fn_logic::is_null(a),
        Func::IsNullOrEmpty => fn_logic::is_null_or_empty(a),
        Func::IsPresent => fn_logic::is_present(a),
        Func::IsString => fn_logic::is_string(a),
        Func::Item => fn_logic::item(a),
        Func::Join => fn_text::join(a),
        Func::Left => fn_text::left(a),
        Func::Mid => fn_text::mid(a),
        Func::NormalizeDiacritics => fn_text::normalize_diacritics(a),
        Func::Not => fn_logic::not(a),
        Func::RemoveDuplicates => fn_logic::remove_duplicates(a),
        Func::Replace => fn_text::replace(a, regex),
        Func::SelectUniqueValue => fn_logic::select_unique_value(a),
        Func::Split => fn_text::split(a),
        Func::StringFromSid => fn_convert::string_from_sid(a),
        Func::StripSpaces => fn_text::strip_spaces(a),
        Func::Switch => fn_logic::switch(a),
        Func::ToLower => fn_text::to_lower(a),
        Func::ToUpper => fn_text::to_upper(a),
        Func::Trim => fn_text::trim(a),
        Func::Word => fn_text::word(a),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small in-memory context for the function tests.
    use std::collections::BTreeMap;

    use super::*;
    use crate::projection::expr::parse;

    /// Attributes by lower-case name, a fixed GUID and a set of taken values.
    #[derive(Default)]
    pub struct Ctx {
        pub attrs: BTreeMap<String, Value>,
        pub taken: Vec<String>,
    }

    impl Ctx {
        pub fn with(mut self, name: &str, v: Value) -> Ctx {
            self.attrs.insert(name.to_ascii_lowercase(), v);
            self
        }
    }

    impl EvalContext for Ctx {
        fn attribute(&self, name: &str) -> Value {
            self.attrs
                .get(&name.to_ascii_lowercase())
                .cloned()
                .unwrap_or(Value::Null)
        }
        fn guid_bytes(&self) -> [u8; 16] {
            [0x11; 16]
        }
        fn is_unique(&self, value: &str) -> bool {
            !self.taken.iter().any(|t| t.eq_ignore_ascii_case(value))
        }
    }

    /// Parses and evaluates `text` against `ctx`.
    pub fn run(ctx: &Ctx, text: &str) -> Result<Value, EvalError> {
        eval(&parse(text).unwrap(), ctx)
    }

    /// Parses and evaluates `text` with no attributes.
    pub fn run0(text: &str) -> Result<Value, EvalError> {
        run(&Ctx::default(), text)
    }

    pub fn s(text: &str) -> Value {
        Value::Str(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn concat_and_compare() {
        let ctx = Ctx::default()
            .with("employeeType", s("Intern"))
            .with("alias", s("jdoe"));
        assert_eq!(
            run(
                &ctx,
                r#"IIF([employeeType]="Intern","t-" & [alias],[alias])"#
            ),
            Ok(s("t-jdoe"))
        );
        let ctx = Ctx::default()
            .with("employeeType", s("Staff"))
            .with("alias", s("jdoe"));
        assert_eq!(
            run(
                &ctx,
                r#"IIF([employeeType]="Intern","t-" & [alias],[alias])"#
            ),
            Ok(s("jdoe"))
        );
        assert_eq!(run0(r#""a" <> "b""#), Ok(Value::Bool(true)));
        assert_eq!(run0(r#""10" = 10"#), Ok(Value::Bool(true)));
        assert_eq!(run0(r#"[missing] = """#), Ok(Value::Bool(false)));
        assert_eq!(run0(r#""x" & [missing] & 1"#), Ok(s("x1")));
    }

    #[test]
    fn attribute_names_are_case_insensitive() {
        let ctx = Ctx::default().with("GivenName", s("Zoë"));
        assert_eq!(run(&ctx, "[givenname]"), Ok(s("Zoë")));
    }
}
