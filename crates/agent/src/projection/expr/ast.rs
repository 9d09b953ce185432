//! The syntax tree of a parsed expression and the catalogue of functions with their arities.

use super::lexer::Pos;

/// A named constant usable as a bare word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constant {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `UTF8` (an encoding for `ConvertFromBase64`).
    Utf8,
    /// `ASCII`.
    Ascii,
    /// `Unicode` (UTF-16LE, the default encoding).
    Unicode,
    /// `vbTextCompare` (case-insensitive `InStr`).
    VbTextCompare,
    /// `vbBinaryCompare` (ordinal `InStr`, the default).
    VbBinaryCompare,
}

impl Constant {
    /// Looks a bare name up, case-insensitively.
    pub fn lookup(name: &str) -> Option<Constant> {
        const ALL: [(&str, Constant); 7] = [
            ("True", Constant::True),
            ("False", Constant::False),
            ("UTF8", Constant::Utf8),
            ("ASCII", Constant::Ascii),
            ("Unicode", Constant::Unicode),
            ("vbTextCompare", Constant::VbTextCompare),
            ("vbBinaryCompare", Constant::VbBinaryCompare),
        ];
        ALL.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, c)| *c)
    }

    /// The canonical spelling.
    pub fn name(self) -> &'static str {
        match self {
            Constant::True => "True",
            Constant::False => "False",
            Constant::Utf8 => "UTF8",
            Constant::Ascii => "ASCII",
            Constant::Unicode => "Unicode",
            Constant::VbTextCompare => "vbTextCompare",
            Constant::VbBinaryCompare => "vbBinaryCompare",
        }
    }
}

macro_rules! functions {
    ($( $variant:ident = $name:literal, $min:literal, $max:expr; )*) => {
        /// Every function of the reference (plus `CRef`, which the reference's examples use).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Func {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant,
            )*
        }

        impl Func {
            /// Every function.
            pub const ALL: &'static [Func] = &[$(Func::$variant),*];

            /// The canonical name.
            pub fn name(self) -> &'static str {
                match self { $(Func::$variant => $name),* }
            }

            /// Minimum and maximum argument counts (`None`: unbounded).
            pub fn arity(self) -> (usize, Option<usize>) {
                match self { $(Func::$variant => ($min, $max)),* }
            }
        }
    };
}

functions! {
    Append = "Append", 2, Some(2);
    BitAnd = "BitAnd", 2, Some(2);
    CBool = "CBool", 1, Some(1);
    ConvertFromBase64 = "ConvertFromBase64", 1, Some(2);
    ConvertToBase64 = "ConvertToBase64", 1, Some(1);
    ConvertToUtf8Hex = "ConvertToUTF8Hex", 1, Some(1);
    Count = "Count", 1, Some(1);
    CRef = "CRef", 1, Some(1);
    CStr = "CStr", 1, Some(1);
    DateFromNum = "DateFromNum", 1, Some(1);
    DnComponent = "DNComponent", 2, Some(2);
    Error = "Error", 1, Some(1);
    FormatDateTime = "FormatDateTime", 3, Some(3);
    Guid = "Guid", 0, Some(0);
    Iif = "IIF", 3, Some(3);
    InStr = "InStr", 2, Some(4);
    IsNull = "IsNull", 1, Some(1);
    IsNullOrEmpty = "IsNullOrEmpty", 1, Some(1);
    IsPresent = "IsPresent", 1, Some(1);
    IsString = "IsString", 1, Some(1);
    Item = "Item", 2, Some(2);
    Join = "Join", 2, None;
    Left = "Left", 2, Some(2);
    Mid = "Mid", 3, Some(3);
    NormalizeDiacritics = "NormalizeDiacritics", 1, Some(1);
    Not = "Not", 1, Some(1);
    RemoveDuplicates = "RemoveDuplicates", 1, Some(1);
    Replace = "Replace", 7, Some(7);
    SelectUniqueValue = "SelectUniqueValue", 2, None;
    Split = "Split", 2, Some(2);
    StringFromSid = "StringFromSID", 1, Some(1);
    StripSpaces = "StripSpaces", 1, Some(1);
    Switch = "Switch", 4, None;
    ToLower = "ToLower", 1, Some(2);
    ToUpper = "ToUpper", 1, Some(2);
    Trim = "Trim", 1, Some(1);
    Word = "Word", 3, Some(3);
}

impl Func {
    /// Looks a function up by name, case-insensitively.
    pub fn lookup(name: &str) -> Option<Func> {
        Func::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Whether argument `index` (0-based) may be left empty, as in `Replace([mail], "@x", , , "", , )`.
    pub fn may_omit(self, index: usize) -> bool {
        matches!(self, Func::Replace) && index > 0
    }
}

/// The slot of an attribute that has not been resolved (the context looks it up by name).
pub const NO_SLOT: u16 = u16::MAX;

/// A node of the syntax tree.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `[name]`: the object's attribute (case-insensitive name). `slot` is where the evaluation context
    /// keeps it, resolved once after parsing ([`Expr::resolve`]); [`NO_SLOT`] until then.
    Attr {
        /// The attribute name as written.
        name: String,
        /// The context's slot for it, or [`NO_SLOT`].
        slot: u16,
    },
    /// `"text"`.
    Str(String),
    /// An integer constant.
    Num(i64),
    /// A bare constant.
    Const(Constant),
    /// An empty argument slot (only where [`Func::may_omit`] allows it).
    Omitted,
    /// `a & b & …`.
    Concat(Vec<Expr>),
    /// `a = b` (`negated`: `a <> b`).
    Compare {
        /// Left side.
        left: Box<Expr>,
        /// Right side.
        right: Box<Expr>,
        /// True for `<>`.
        negated: bool,
    },
    /// A function call.
    Call {
        /// The function.
        func: Func,
        /// Its arguments, in order.
        args: Vec<Expr>,
        /// Where the name starts.
        pos: Pos,
        /// For `Replace` with a constant regexPattern: the pattern, compiled once at parse time.
        regex: Option<Box<regex::Regex>>,
    },
}

impl Expr {
    /// Every attribute name the expression reads, in order of appearance.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_attributes(&mut out);
        out
    }

    /// Resolves every attribute to the slot `slot_of` gives it (`None` leaves it to lookup by name).
    pub fn resolve(&mut self, slot_of: &dyn Fn(&str) -> Option<u16>) {
        match self {
            Expr::Attr { name, slot } => *slot = slot_of(name).unwrap_or(NO_SLOT),
            Expr::Concat(parts) => parts.iter_mut().for_each(|p| p.resolve(slot_of)),
            Expr::Compare { left, right, .. } => {
                left.resolve(slot_of);
                right.resolve(slot_of);
            }
            Expr::Call { args, .. } => args.iter_mut().for_each(|a| a.resolve(slot_of)),
            Expr::Str(_) | Expr::Num(_) | Expr::Const(_) | Expr::Omitted => {}
        }
    }

    fn collect_attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Attr { name, .. } => out.push(name),
            Expr::Concat(parts) => parts.iter().for_each(|p| p.collect_attributes(out)),
            Expr::Compare { left, right, .. } => {
                left.collect_attributes(out);
                right.collect_attributes(out);
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| a.collect_attributes(out)),
            Expr::Str(_) | Expr::Num(_) | Expr::Const(_) | Expr::Omitted => {}
        }
    }
}
