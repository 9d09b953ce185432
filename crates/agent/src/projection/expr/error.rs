//! Errors of the expression language: [`ParseError`] (with line and column) and [`EvalError`].

use super::lexer::Pos;

/// What went wrong while parsing an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    /// A character that starts no token.
    #[error("unexpected character `{0}`")]
    UnexpectedChar(char),
    /// A `"` string without its closing quote.
    #[error("string constant is not closed with `\"`")]
    UnterminatedString,
    /// A backslash followed by something other than `"` or `\` inside a string.
    #[error("invalid escape `\\{0}` (only `\\\"` and `\\\\` are allowed)")]
    InvalidEscape(char),
    /// A `[` without its closing `]` on the same line.
    #[error("attribute name is not closed with `]`")]
    UnterminatedAttribute,
    /// `[]`.
    #[error("attribute name is empty")]
    EmptyAttributeName,
    /// `&H` with no hexadecimal digits after it.
    #[error("`&H` must be followed by hexadecimal digits")]
    EmptyHexNumber,
    /// A number that does not fit in 64 bits.
    #[error("number {0} is out of range")]
    NumberOutOfRange(String),
    /// The expression is longer than the accepted maximum (bytes).
    #[error("expression is {0} bytes long; the limit is 65536")]
    TooLong(usize),
    /// Nesting deeper than the accepted maximum.
    #[error("expression nests deeper than {0} levels")]
    TooDeep(usize),
    /// A token where another was expected.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What the grammar allows here.
        expected: &'static str,
        /// What the text has.
        found: String,
    },
    /// A function name that is not in the reference.
    #[error("unknown function `{0}`")]
    UnknownFunction(String),
    /// A bare name that is neither a function call nor a known constant.
    #[error(
        "unknown name `{0}` (constants: True, False, UTF8, ASCII, Unicode, vbTextCompare, vbBinaryCompare)"
    )]
    UnknownConstant(String),
    /// A function called with too few or too many arguments.
    #[error("`{function}` takes {expected} arguments, got {got}")]
    WrongArity {
        /// The function.
        function: &'static str,
        /// The accepted count, e.g. `2` or `1 to 2` or `at least 2`.
        expected: String,
        /// The count given.
        got: usize,
    },
    /// An empty argument (`f(a, , b)`) where the function needs a value.
    #[error("`{function}` argument {index} may not be left empty")]
    MissingArgument {
        /// The function.
        function: &'static str,
        /// 1-based argument number.
        index: usize,
    },
    /// `SelectUniqueValue` anywhere but at the top of a mapping.
    #[error("`SelectUniqueValue` must be the outermost function; it cannot be nested")]
    NestedSelectUniqueValue,
    /// A constant regular expression that does not compile.
    #[error("invalid regular expression: {0}")]
    InvalidRegex(#[source] regex::Error),
    /// An argument combination `Replace` does not define.
    #[error(
        "`Replace` needs oldValue with replacementValue or template, or regexPattern with replacementValue or replacementAttributeName"
    )]
    ReplaceForm,
}

/// A parse error with the 1-based line and column where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
}

impl ParseError {
    /// An error of `kind` at `pos`.
    pub fn new(kind: ParseErrorKind, pos: Pos) -> ParseError {
        ParseError {
            kind,
            line: pos.line,
            column: pos.column,
        }
    }
}

/// What went wrong while evaluating an expression for one object. Each is a problem with that object's data
/// or the mapping, never with the system: the object is quarantined with the message, the rest keeps flowing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The mapping called `Error("…")`.
    #[error("{0}")]
    Custom(String),
    /// An argument had a type the function cannot use.
    #[error("`{function}`: expected {expected}, got {found}")]
    Type {
        /// The function.
        function: &'static str,
        /// The wanted type.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A multi-valued value where one value is needed.
    #[error("`{function}`: expected a single value, got {count} values")]
    MultiValued {
        /// The function.
        function: &'static str,
        /// How many values there were.
        count: usize,
    },
    /// `Item` with an index outside the values.
    #[error("`Item`: index {index} is out of range 1..={len}")]
    IndexOutOfRange {
        /// The index asked for (1-based).
        index: i64,
        /// How many values there are.
        len: usize,
    },
    /// Input that is not valid base64.
    #[error("`ConvertFromBase64`: not valid base64")]
    InvalidBase64,
    /// Decoded bytes that are not valid text in the chosen encoding.
    #[error("`{0}`: bytes are not valid text in the requested encoding")]
    InvalidText(&'static str),
    /// An enum argument with an unknown value.
    #[error("`{function}`: unknown option `{value}`")]
    UnknownOption {
        /// The function.
        function: &'static str,
        /// The value given.
        value: String,
    },
    /// A regular expression computed at run time that does not compile.
    #[error("invalid regular expression: {0}")]
    InvalidRegex(#[source] regex::Error),
    /// A `Replace` regex group name that the pattern does not define.
    #[error("`Replace`: the pattern has no group named `{0}`")]
    UnknownGroup(String),
    /// A date that does not match its format, or a format that cannot be used.
    #[error("`{function}`: {message}")]
    Date {
        /// The function.
        function: &'static str,
        /// Why.
        message: String,
    },
    /// A parsed date whose fields do not make a calendar date or time (the 30th of February, hour 25).
    #[error("`{function}`: {source}")]
    DateRange {
        /// The function.
        function: &'static str,
        /// Which field is out of range.
        #[source]
        source: time::error::ComponentRange,
    },
    /// Bytes that are not a well-formed SID.
    #[error("`StringFromSID`: not a valid SID ({0} bytes)")]
    InvalidSid(usize),
    /// `SelectUniqueValue` found every candidate already taken.
    #[error("`SelectUniqueValue`: every candidate value is already in use")]
    NoUniqueValue,
    /// A DN that cannot be split into components.
    #[error("`DNComponent`: not a valid distinguished name")]
    InvalidDn,
}

impl EvalError {
    /// Whether evaluating again later, without a change to the object or the mapping, can succeed.
    /// Only `SelectUniqueValue` exhaustion can clear by itself (another object may give the value up).
    pub fn is_retriable(&self) -> bool {
        matches!(self, EvalError::NoUniqueValue)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::super::eval::testing::{Ctx, run};
    use super::super::fn_date::parse_date;
    use super::super::{Value, parse};

    #[test]
    fn errors_built_from_another_error_carry_it_as_their_source() {
        // A constant regex that does not compile: the parse error keeps regex's error.
        let parsed = parse(r#"Replace([a], , "(", , "", , )"#).map(|_| ());
        let Err(e) = parsed else {
            panic!("the regex compiled");
        };
        assert!(e.kind.source().is_some_and(|s| s.is::<regex::Error>()));
        assert!(
            e.to_string()
                .contains("invalid regular expression: regex parse error")
        );
        // A regex computed at run time.
        let ctx = Ctx::default()
            .with("mail", Value::Str("ann@corp.example".into()))
            .with("pat", Value::Str("(".into()));
        let Err(e) = run(&ctx, r#"Replace([mail], , [pat], , "y", , )"#) else {
            panic!("the regex compiled");
        };
        assert!(e.source().is_some_and(|s| s.is::<regex::Error>()));
        // A date whose fields make no calendar date: time's error, with its text as before.
        let Err(e) = parse_date("2015-02-30", "yyyy-MM-dd") else {
            panic!("the 30th of February parsed");
        };
        let source = e
            .source()
            .and_then(|s| s.downcast_ref::<time::error::ComponentRange>());
        assert!(source.is_some());
        assert_eq!(
            e.to_string(),
            format!(
                "`FormatDateTime`: {}",
                source.map(|s| s.to_string()).unwrap_or_default()
            )
        );
    }
}
