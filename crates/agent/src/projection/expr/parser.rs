//! Recursive-descent parser: tokens to [`Expr`], with every static check done here so that a mapping that
//! parses can only fail on an object's data.
//!
//! Grammar (VBA-like, as in Microsoft's reference):
//! ```text
//! expr    := concat (("=" | "<>") concat)?
//! concat  := primary ("&" primary)*
//! primary := "[" name "]" | "\"" text "\"" | number | "&H" hex | Name "(" args? ")" | Name | "(" expr ")"
//! args    := arg ("," arg)*        arg := expr | (nothing, where the function allows an empty slot)
//! ```

use super::ast::{Constant, Expr, Func};
use super::error::{ParseError, ParseErrorKind};
use super::lexer::{Pos, Tok, Token, tokenize};

/// Deepest accepted nesting of calls and parentheses (protects the stack against hostile input).
pub const MAX_DEPTH: usize = 64;

/// Parses and checks one expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let expr = p.expr(0)?;
    let end = p.peek();
    if end.tok != Tok::Eof {
        return Err(unexpected("end of expression", end));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

fn unexpected(expected: &'static str, found: &Token) -> ParseError {
    ParseError::new(
        ParseErrorKind::Unexpected {
            expected,
            found: found.tok.describe(),
        },
        found.pos,
    )
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `next` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new(
                ParseErrorKind::TooDeep(MAX_DEPTH),
                self.peek().pos,
            ));
        }
        let left = self.concat(depth)?;
        let negated = match self.peek().tok {
            Tok::Eq => false,
            Tok::Ne => true,
            _ => return Ok(left),
        };
        self.next();
        let right = self.concat(depth)?;
        Ok(Expr::Compare {
            left: Box::new(left),
            right: Box::new(right),
            negated,
        })
    }

    fn concat(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let first = self.primary(depth)?;
        if self.peek().tok != Tok::Amp {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.peek().tok == Tok::Amp {
            self.next();
            parts.push(self.primary(depth)?);
        }
        Ok(Expr::Concat(parts))
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Attr(name) => Ok(Expr::Attr {
                name,
                slot: super::ast::NO_SLOT,
            }),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::LParen => {
                let inner = self.expr(depth + 1)?;
                let close = self.next();
                if close.tok != Tok::RParen {
                    return Err(unexpected("`)`", &close));
                }
                Ok(inner)
            }
            Tok::Ident(name) => {
                if self.peek().tok == Tok::LParen {
                    self.next();
                    self.call(&name, t.pos, depth + 1)
                } else {
                    Constant::lookup(&name).map(Expr::Const).ok_or_else(|| {
                        ParseError::new(ParseErrorKind::UnknownConstant(name), t.pos)
                    })
                }
            }
            _ => Err(unexpected(
                "an attribute, a string, a number or a function call",
                &t,
            )),
        }
    }

    fn call(&mut self, name: &str, pos: Pos, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new(ParseErrorKind::TooDeep(MAX_DEPTH), pos));
        }
        let func = Func::lookup(name).ok_or_else(|| {
            ParseError::new(ParseErrorKind::UnknownFunction(name.to_string()), pos)
        })?;
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        if self.peek().tok == Tok::RParen {
            self.next();
        } else {
            loop {
                let at = self.peek().pos;
                let arg = if matches!(self.peek().tok, Tok::Comma | Tok::RParen) {
                    Expr::Omitted
                } else {
                    self.expr(depth)?
                };
                args.push(arg);
                arg_pos.push(at);
                let sep = self.next();
                match sep.tok {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    _ => return Err(unexpected("`,` or `)`", &sep)),
                }
            }
        }
        check_arity(func, args.len(), pos)?;
        for (i, arg) in args.iter().enumerate() {
            if matches!(arg, Expr::Omitted) && !func.may_omit(i) {
                return Err(ParseError::new(
                    ParseErrorKind::MissingArgument {
                        function: func.name(),
                        index: i + 1,
                    },
                    arg_pos[i],
                ));
            }
            if contains_select_unique(arg) {
                return Err(ParseError::new(
                    ParseErrorKind::NestedSelectUniqueValue,
                    arg_pos[i],
                ));
            }
        }
        let regex = if func == Func::Replace {
            check_replace_form(&args, pos)?;
            match &args[2] {
                Expr::Str(pattern) => {
                    Some(Box::new(regex::Regex::new(pattern).map_err(|e| {
                        ParseError::new(ParseErrorKind::InvalidRegex(e), arg_pos[2])
                    })?))
                }
                _ => None,
            }
        } else {
            None
        };
        Ok(Expr::Call {
            func,
            args,
            pos,
            regex,
        })
    }
}

fn check_arity(func: Func, got: usize, pos: Pos) -> Result<(), ParseError> {
    let (min, max) = func.arity();
    let even_ok = func != Func::Switch || got.is_multiple_of(2);
    if got >= min && max.is_none_or(|m| got <= m) && even_ok {
        return Ok(());
    }
    let expected = match (func, max) {
        (Func::Switch, _) => format!("an even number of (at least {min})"),
        (_, Some(m)) if m == min => format!("{min}"),
        (_, Some(m)) => format!("{min} to {m}"),
        (_, None) => format!("at least {min}"),
    };
    Err(ParseError::new(
        ParseErrorKind::WrongArity {
            function: func.name(),
            expected,
            got,
        },
        pos,
    ))
}

fn present(e: &Expr) -> bool {
    !matches!(e, Expr::Omitted)
}

fn check_replace_form(args: &[Expr], pos: Pos) -> Result<(), ParseError> {
    // source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template
    let old = present(&args[1]);
    let regex = present(&args[2]);
    let value = present(&args[4]);
    let attr = present(&args[5]);
    let template = present(&args[6]);
    let ok = (old && !regex && (value || template))
        || (regex && !old && (value || (attr && present(&args[3]))));
    if ok {
        Ok(())
    } else {
        Err(ParseError::new(ParseErrorKind::ReplaceForm, pos))
    }
}

fn contains_select_unique(e: &Expr) -> bool {
    match e {
        Expr::Call { func, args, .. } => {
            *func == Func::SelectUniqueValue || args.iter().any(contains_select_unique)
        }
        Expr::Concat(parts) => parts.iter().any(contains_select_unique),
        Expr::Compare { left, right, .. } => {
            contains_select_unique(left) || contains_select_unique(right)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ParseErrorKind {
        parse(text).unwrap_err().kind
    }

    #[test]
    fn parses_documented_examples() {
        for text in [
            r#"Append([userPrincipalName], ".test")"#,
            r#"Append(Mid([givenName], 1, 3), Mid([surname], 1, 5))"#,
            r#"Replace([mail], "@contoso.com", , ,"", ,)"#,
            r#"Replace([mailNickname], , "[a-zA-Z_]*", , "", , )"#,
            r#"Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane", "SA", "Australia/Adelaide")"#,
            r#"ToLower(Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName], [PreferredLastName]))), "contoso.com"))"#,
            r#"IIF([employeeType]="Intern","t-" & [alias],[alias])"#,
            r#"BitAnd(&HF, &HF7)"#,
            r#"ConvertFromBase64("SGVsbG8gd29ybGQh", UTF8)"#,
            r#"InStr("repEated","e",3,vbBinaryCompare)"#,
            r#"DNComponent(CRef([dn]),1)"#,
            r#"SelectUniqueValue(Join("@", [givenName], "contoso.com"), Join("@", [sn], "contoso.com"))"#,
            "Guid()",
        ] {
            assert!(parse(text).is_ok(), "{text}: {:?}", parse(text).err());
        }
    }

    #[test]
    fn attributes_are_listed() {
        let e = parse(r#"IIF([employeeType]="Intern","t-" & [alias],[alias])"#).unwrap();
        assert_eq!(e.attributes(), vec!["employeeType", "alias", "alias"]);
    }

    #[test]
    fn static_errors() {
        assert_eq!(
            kind("Frobnicate([a])"),
            ParseErrorKind::UnknownFunction("Frobnicate".into())
        );
        assert_eq!(
            kind("Trim([a], [b])"),
            ParseErrorKind::WrongArity {
                function: "Trim",
                expected: "1".into(),
                got: 2
            }
        );
        assert_eq!(
            kind(r#"Switch([a], "d", "k")"#),
            ParseErrorKind::WrongArity {
                function: "Switch",
                expected: "an even number of (at least 4)".into(),
                got: 3
            }
        );
        assert_eq!(
            kind("Append([a], )"),
            ParseErrorKind::MissingArgument {
                function: "Append",
                index: 2
            }
        );
        assert_eq!(
            kind("Trim(SelectUniqueValue([a], [b]))"),
            ParseErrorKind::NestedSelectUniqueValue
        );
        assert_eq!(
            kind("Bogus"),
            ParseErrorKind::UnknownConstant("Bogus".into())
        );
        assert!(matches!(
            kind(r#"Replace([a], , "(", , "", , )"#),
            ParseErrorKind::InvalidRegex(_)
        ));
        assert_eq!(
            kind(r#"Replace([a], , , , "", , )"#),
            ParseErrorKind::ReplaceForm
        );
        assert!(matches!(
            kind("Trim([a]"),
            ParseErrorKind::Unexpected { .. }
        ));
        assert!(matches!(kind("[a] [b]"), ParseErrorKind::Unexpected { .. }));
    }

    #[test]
    fn error_positions_point_at_the_problem() {
        let e = parse("Join(\",\",\n   Trim([a], [b]))").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        let e = parse("Append([a], )").unwrap_err();
        assert_eq!((e.line, e.column), (1, 13));
        assert_eq!(
            e.to_string(),
            "line 1, column 13: `Append` argument 2 may not be left empty"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{}[a]{}", "Trim(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(kind(&text), ParseErrorKind::TooDeep(MAX_DEPTH));
        let text = format!("{}[a]{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(kind(&text), ParseErrorKind::TooDeep(MAX_DEPTH));
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::parse;
    use crate::projection::expr::eval::testing::Ctx;
    use crate::projection::expr::{Value, eval};

    const PIECES: &[&str] = &[
        "Trim(",
        "Mid(",
        "Replace(",
        "Switch(",
        "IIF(",
        "Word(",
        "FormatDateTime(",
        "Item(",
        "Left(",
        "InStr(",
        "DNComponent(",
        "SelectUniqueValue(",
        "Join(",
        ")",
        ",",
        "&",
        "=",
        "<>",
        "[a]",
        "[m]",
        "\"x\"",
        "\"y,z\"",
        "-1",
        "0",
        "3",
        "&HFF",
        "\"yyyy\"",
        "\"(\"",
        "True",
        "UTF8",
        " ",
        "\n",
    ];

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(PIECES).prop_map(str::to_string),
            1 => any::<char>().prop_map(String::from),
        ]
    }

    proptest! {
        /// Stable-toolchain stand-in for the fuzz target: text built from the language's own pieces
        /// (plus arbitrary characters) parses or fails cleanly, and whatever parses evaluates or fails cleanly.
        #[test]
        fn arbitrary_text_never_panics(parts in proptest::collection::vec(piece(), 0..40)) {
            let text: String = parts.concat();
            if let Ok(expr) = parse(&text) {
                let ctx = Ctx::default()
                    .with("a", Value::Str("Zoë Doe".into()))
                    .with("m", Value::Multi(vec!["p".into(), "q".into()]));
                let _ = eval(&expr, &ctx);
            }
        }
    }
}
