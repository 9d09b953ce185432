//! Tokeniser for the mapping expression language. Tracks line and column (1-based, in characters) for errors.

use super::error::{ParseError, ParseErrorKind};

/// A position in the expression text: 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare name: a function name or a constant such as `UTF8`, `vbTextCompare`, `True`.
    Ident(String),
    /// `[attributeName]`.
    Attr(String),
    /// `"text"` with `\"` and `\\` unescaped.
    Str(String),
    /// A decimal (`-12`) or VBA hexadecimal (`&HF7`) integer.
    Num(i64),
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `&`, string concatenation.
    Amp,
    /// `=`, equality.
    Eq,
    /// `<>`, inequality.
    Ne,
    /// End of input.
    Eof,
}

impl Tok {
    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Attr(s) => format!("attribute `[{s}]`"),
            Tok::Str(_) => "string constant".into(),
            Tok::Num(n) => format!("number {n}"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Amp => "`&`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Ne => "`<>`".into(),
            Tok::Eof => "end of expression".into(),
        }
    }
}

/// A token with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Where it starts.
    pub pos: Pos,
}

/// Longest accepted expression, in bytes; longer input is refused before tokenising.
pub const MAX_EXPRESSION_BYTES: usize = 64 * 1024;

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }
}

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let start = Pos { line: 1, column: 1 };
    if text.len() > MAX_EXPRESSION_BYTES {
        return Err(ParseError::new(ParseErrorKind::TooLong(text.len()), start));
    }
    let mut cur = Cursor {
        chars: text.chars().peekable(),
        pos: start,
    };
    let mut out = Vec::new();
    while let Some(c) = cur.peek() {
        let pos = cur.pos;
        if c.is_whitespace() {
            cur.bump();
            continue;
        }
        let tok = match c {
            '(' => single(&mut cur, Tok::LParen),
            ')' => single(&mut cur, Tok::RParen),
            ',' => single(&mut cur, Tok::Comma),
            '=' => single(&mut cur, Tok::Eq),
            '<' => {
                cur.bump();
                if cur.peek() == Some('>') {
                    cur.bump();
                    Tok::Ne
                } else {
                    return Err(ParseError::new(ParseErrorKind::UnexpectedChar('<'), pos));
                }
            }
            '&' => {
                cur.bump();
                if matches!(cur.peek(), Some('H' | 'h')) {
                    cur.bump();
                    hex_number(&mut cur, pos)?
                } else {
                    Tok::Amp
                }
            }
            '[' => attribute(&mut cur, pos)?,
            '"' => string(&mut cur, pos)?,
            '-' | '0'..='9' => decimal(&mut cur, pos)?,
            c if c.is_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = cur.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                        cur.bump();
                    } else {
                        break;
                    }
                }
                Tok::Ident(name)
            }
            other => return Err(ParseError::new(ParseErrorKind::UnexpectedChar(other), pos)),
        };
        out.push(Token { tok, pos });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: cur.pos,
    });
    Ok(out)
}

fn single(cur: &mut Cursor<'_>, tok: Tok) -> Tok {
    cur.bump();
    tok
}

fn attribute(cur: &mut Cursor<'_>, pos: Pos) -> Result<Tok, ParseError> {
    cur.bump();
    let mut name = String::new();
    loop {
        match cur.bump() {
            Some(']') => break,
            Some('\n') | None => {
                return Err(ParseError::new(ParseErrorKind::UnterminatedAttribute, pos));
            }
            Some(c) => name.push(c),
        }
    }
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(ParseError::new(ParseErrorKind::EmptyAttributeName, pos));
    }
    Ok(Tok::Attr(name))
}

fn string(cur: &mut Cursor<'_>, pos: Pos) -> Result<Tok, ParseError> {
    cur.bump();
    let mut text = String::new();
    loop {
        let at = cur.pos;
        match cur.bump() {
            Some('"') => return Ok(Tok::Str(text)),
            Some('\\') => match cur.bump() {
                Some(c @ ('"' | '\\')) => text.push(c),
                Some(other) => {
                    return Err(ParseError::new(ParseErrorKind::InvalidEscape(other), at));
                }
                None => return Err(ParseError::new(ParseErrorKind::UnterminatedString, pos)),
            },
            Some(c) => text.push(c),
            None => return Err(ParseError::new(ParseErrorKind::UnterminatedString, pos)),
        }
    }
}

fn decimal(cur: &mut Cursor<'_>, pos: Pos) -> Result<Tok, ParseError> {
    let mut digits = String::new();
    if cur.peek() == Some('-') {
        digits.push('-');
        cur.bump();
    }
    while let Some(c) = cur.peek().filter(char::is_ascii_digit) {
        digits.push(c);
        cur.bump();
    }
    if digits == "-" {
        return Err(ParseError::new(ParseErrorKind::UnexpectedChar('-'), pos));
    }
    digits
        .parse::<i64>()
        .map(Tok::Num)
        .map_err(|_| ParseError::new(ParseErrorKind::NumberOutOfRange(digits), pos))
}

fn hex_number(cur: &mut Cursor<'_>, pos: Pos) -> Result<Tok, ParseError> {
    let mut digits = String::new();
    while let Some(c) = cur.peek().filter(char::is_ascii_hexdigit) {
        digits.push(c);
        cur.bump();
    }
    if digits.is_empty() {
        return Err(ParseError::new(ParseErrorKind::EmptyHexNumber, pos));
    }
    u64::from_str_radix(&digits, 16)
        .ok()
        .and_then(|n| i64::try_from(n).ok())
        .map(Tok::Num)
        .ok_or_else(|| {
            ParseError::new(ParseErrorKind::NumberOutOfRange(format!("&H{digits}")), pos)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_of_a_documented_example() {
        assert_eq!(
            toks(r#"IIF([employeeType]="Intern","t-" & [alias],[alias])"#),
            vec![
                Tok::Ident("IIF".into()),
                Tok::LParen,
                Tok::Attr("employeeType".into()),
                Tok::Eq,
                Tok::Str("Intern".into()),
                Tok::Comma,
                Tok::Str("t-".into()),
                Tok::Amp,
                Tok::Attr("alias".into()),
                Tok::Comma,
                Tok::Attr("alias".into()),
                Tok::RParen,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn hex_and_negative_numbers() {
        assert_eq!(
            toks("&HF7 &hff -3 <>"),
            vec![
                Tok::Num(0xF7),
                Tok::Num(255),
                Tok::Num(-3),
                Tok::Ne,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn escapes_in_strings() {
        assert_eq!(
            toks(r#""Company name: \"Contoso\" \\""#),
            vec![Tok::Str(r#"Company name: "Contoso" \"#.into()), Tok::Eof]
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = tokenize("Trim(\n  [a] $)").unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::UnexpectedChar('$'));
        assert_eq!((err.line, err.column), (2, 7));
        let err = tokenize("\"abc").unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::UnterminatedString);
        assert_eq!((err.line, err.column), (1, 1));
        let err = tokenize(r#"Trim("a\d")"#).unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::InvalidEscape('d'));
        assert_eq!((err.line, err.column), (1, 8));
        assert_eq!(
            tokenize("[a").unwrap_err().kind,
            ParseErrorKind::UnterminatedAttribute
        );
        assert_eq!(
            tokenize("[ ]").unwrap_err().kind,
            ParseErrorKind::EmptyAttributeName
        );
        assert_eq!(
            tokenize("&H").unwrap_err().kind,
            ParseErrorKind::EmptyHexNumber
        );
        assert!(matches!(
            tokenize("99999999999999999999").unwrap_err().kind,
            ParseErrorKind::NumberOutOfRange(_)
        ));
    }
}
