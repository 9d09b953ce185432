//! The mapping expression language, in the syntax of Microsoft's "Reference for writing expressions for
//! attribute mappings": `[attribute]`, `"string"` (with `\"` and `\\` escapes), integers (`12`, `&HF7`),
//! nested function calls, `&` concatenation and `=` / `<>` comparison.
//!
//! Enters: expression text (from the configuration). Leaves: a checked [`Expr`] ([`parse`]) and, per object,
//! a [`Value`] ([`eval`]) or an [`EvalError`] that quarantines that object.
//!
//! Parsing does every static check (function names, arities, empty slots, `SelectUniqueValue` only at the
//! top, constant regexes) so a mapping that loads can fail only on an object's data. Errors carry line and
//! column. Input is bounded (64 KiB, nesting 64) so hostile text cannot exhaust the stack.

mod ast;
mod error;
mod eval;
mod fn_convert;
mod fn_date;
mod fn_logic;
mod fn_text;
mod lexer;
mod parser;
mod value;

pub use ast::{Constant, Expr, Func, NO_SLOT};
pub use error::{EvalError, ParseError, ParseErrorKind};
pub use eval::{EvalContext, eval};
pub use fn_date::filetime_to_date;
pub use fn_text::fold_diacritics;
pub use lexer::{MAX_EXPRESSION_BYTES, Pos};
pub use parser::{MAX_DEPTH, parse};
pub use value::Value;
