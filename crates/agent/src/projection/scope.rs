//! Scoping: which objects are synced.
//!
//! An object is in scope when (1) its kind is synced (users incl. inetOrgPerson, groups, contacts — never
//! computers), (2) it is not a critical system object (`isCriticalSystemObject=TRUE`), (3) it matches the
//! scope mode — all objects, a subtree of one of the selected OUs, or a direct member of one of the
//! selected security groups — and (4) every attribute filter clause holds (clauses are AND-ed).

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::dn;
use super::expr::Value;

/// The operators of Microsoft's scoping filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterOp {
    /// The value equals (ordinal).
    Equals,
    /// The value does not equal.
    NotEquals,
    /// The attribute is absent or empty.
    IsNull,
    /// The attribute is present and not empty.
    IsNotNull,
    /// The value is `TRUE` (any case) or a non-zero number.
    IsTrue,
    /// The value is `FALSE` (any case), zero, or absent.
    IsFalse,
    /// The value matches the regular expression.
    RegexMatch,
    /// The value does not match the regular expression.
    NotRegexMatch,
    /// The value, as an integer, is greater.
    GreaterThan,
    /// The value, as an integer, is less.
    LessThan,
}

/// One filter clause as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterClause {
    /// The AD attribute.
    pub attribute: String,
    /// The operator.
    pub operator: FilterOp,
    /// The comparison value (not used by IS NULL / IS NOT NULL / IS TRUE / IS FALSE).
    #[serde(default)]
    pub value: Option<String>,
}

/// The configured scope (`[projection.scope]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    /// OU distinguished names; objects in their subtrees are in scope. Exclusive with `groups`.
    #[serde(default)]
    pub ous: Vec<String>,
    /// Security group distinguished names; their direct members are in scope. Exclusive with `ous`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attribute filter clauses, all of which must hold.
    #[serde(default)]
    pub filters: Vec<FilterClause>,
}

/// A scoping problem found when the configuration loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ScopeError {
    /// The configuration key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone)]
enum Test {
    Text(String),
    Regex(Regex),
    Number(i64),
    None,
}

#[derive(Debug, Clone)]
struct Clause {
    attribute: String,
    op: FilterOp,
    test: Test,
}

/// Which objects the scope mode selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every object.
    All,
    /// Objects at or below these canonical DNs.
    Ous(Vec<String>),
    /// Direct members of the groups with these canonical DNs.
    Groups(Vec<String>),
}

/// The checked scope.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The mode.
    pub mode: Mode,
    clauses: Vec<Clause>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            mode: Mode::All,
            clauses: Vec::new(),
        }
    }
}

impl Scope {
    /// Checks a spec; returns every problem at once.
    pub fn compile(spec: &ScopeSpec) -> Result<Scope, Vec<ScopeError>> {
        let mut errors = Vec::new();
        let mode = match (spec.ous.is_empty(), spec.groups.is_empty()) {
            (true, true) => Mode::All,
            (false, true) => Mode::Ous(spec.ous.iter().map(|d| dn::canonical(d)).collect()),
            (true, false) => Mode::Groups(spec.groups.iter().map(|d| dn::canonical(d)).collect()),
            (false, false) => {
                errors.push(ScopeError {
                    key: "projection.scope".into(),
                    message: "set either `ous` or `groups`, not both (as in cloud sync)".into(),
                });
                Mode::All
            }
        };
        for (field, dns) in [("ous", &spec.ous), ("groups", &spec.groups)] {
            for (i, d) in dns.iter().enumerate() {
                if dn::split(d).is_none_or(|r| r.is_empty()) {
                    errors.push(ScopeError {
                        key: format!("projection.scope.{field}[{i}]"),
                        message: format!("`{d}` is not a distinguished name"),
                    });
                }
            }
        }
        let mut clauses = Vec::new();
        for (i, f) in spec.filters.iter().enumerate() {
            let key = format!("projection.scope.filters[{i}]");
            if f.attribute.trim().is_empty() {
                errors.push(ScopeError {
                    key: format!("{key}.attribute"),
                    message: "must not be empty".into(),
                });
                continue;
            }
            let needs_value = matches!(
                f.operator,
                FilterOp::Equals
                    | FilterOp::NotEquals
                    | FilterOp::RegexMatch
                    | FilterOp::NotRegexMatch
                    | FilterOp::GreaterThan
                    | FilterOp::LessThan
            );
            let test = match (&f.value, needs_value) {
                (None, true) => {
                    errors.push(ScopeError {
                        key: format!("{key}.value"),
                        message: "this operator needs a value".into(),
                    });
                    continue;
                }
                (Some(_), false) => {
                    errors.push(ScopeError {
                        key: format!("{key}.value"),
                        message: "this operator takes no value".into(),
                    });
                    continue;
                }
                (None, false) => Test::None,
                (Some(v), true) => match f.operator {
                    FilterOp::RegexMatch | FilterOp::NotRegexMatch => match Regex::new(v) {
                        Ok(r) => Test::Regex(r),
                        Err(e) => {
                            errors.push(ScopeError {
                                key: format!("{key}.value"),
                                message: e.to_string(),
                            });
                            continue;
                        }
                    },
                    FilterOp::GreaterThan | FilterOp::LessThan => match v.trim().parse() {
                        Ok(n) => Test::Number(n),
                        Err(_) => {
                            errors.push(ScopeError {
                                key: format!("{key}.value"),
                                message: format!("`{v}` is not an integer"),
                            });
                            continue;
                        }
                    },
                    _ => Test::Text(v.clone()),
                },
            };
            clauses.push(Clause {
                attribute: f.attribute.trim().to_ascii_lowercase(),
                op: f.operator,
                test,
            });
        }
        if errors.is_empty() {
            Ok(Scope { mode, clauses })
        } else {
            Err(errors)
        }
    }

    /// Attributes the filters read (lower-cased).
    pub fn attributes(&self) -> Vec<String> {
        self.clauses.iter().map(|c| c.attribute.clone()).collect()
    }

    /// Whether the filter clauses hold for an object whose attributes `get` returns.
    pub fn filters_match(&self, get: &dyn Fn(&str) -> Value) -> bool {
        self.clauses
            .iter()
            .all(|c| clause_holds(c, &get(&c.attribute)))
    }

    /// In OU mode: whether the object at canonical DN `dn_canonical` lies in a selected OU (in other modes,
    /// whether the mode selects by DN at all).
    pub fn ou_selects(&self, dn_canonical: &str) -> bool {
        match &self.mode {
            Mode::Ous(bases) => bases.iter().any(|b| dn::is_within(dn_canonical, b)),
            _ => true,
        }
    }

    /// Whether the group at canonical DN `dn_canonical` is a scoping group.
    pub fn is_scoping_group(&self, dn_canonical: &str) -> bool {
        matches!(&self.mode, Mode::Groups(g) if g.iter().any(|x| x == dn_canonical))
    }
}

fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Bin(b) => vec![String::from_utf8_lossy(b).into_owned()],
        other => other.to_strings("scope").unwrap_or_default(),
    }
}

fn clause_holds(c: &Clause, v: &Value) -> bool {
    let vals = texts(v);
    let empty = vals.iter().all(String::is_empty);
    match (&c.op, &c.test) {
        (FilterOp::IsNull, _) => empty,
        (FilterOp::IsNotNull, _) => !empty,
        (FilterOp::IsTrue, _) => vals.iter().any(|s| truthy(s) == Some(true)),
        (FilterOp::IsFalse, _) => empty || vals.iter().all(|s| truthy(s) == Some(false)),
        (FilterOp::Equals, Test::Text(t)) => vals.iter().any(|s| s == t),
        (FilterOp::NotEquals, Test::Text(t)) => !vals.iter().any(|s| s == t),
        (FilterOp::RegexMatch, Test::Regex(r)) => vals.iter().any(|s| r.is_match(s)),
        (FilterOp::NotRegexMatch, Test::Regex(r)) => !vals.iter().any(|s| r.is_match(s)),
        (FilterOp::GreaterThan, Test::Number(n)) => vals
            .iter()
            .any(|s| s.trim().parse::<i64>().is_ok_and(|x| x > *n)),
        (FilterOp::LessThan, Test::Number(n)) => vals
            .iter()
            .any(|s| s.trim().parse::<i64>().is_ok_and(|x| x < *n)),
        _ => false,
    }
}

fn truthy(s: &str) -> Option<bool> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        t.parse::<i64>().ok().map(|n| n != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(attr: &str, op: FilterOp, value: Option<&str>) -> FilterClause {
        FilterClause {
            attribute: attr.into(),
            operator: op,
            value: value.map(str::to_string),
        }
    }

    fn holds(op: FilterOp, value: Option<&str>, v: Value) -> bool {
        let scope = Scope::compile(&ScopeSpec {
            filters: vec![clause("a", op, value)],
            ..ScopeSpec::default()
        })
        .unwrap();
        scope.filters_match(&|_| v.clone())
    }

    #[test]
    fn every_operator() {
        let s = |t: &str| Value::Str(t.into());
        assert!(holds(FilterOp::Equals, Some("Sales"), s("Sales")));
        assert!(!holds(FilterOp::Equals, Some("Sales"), s("sales")));
        assert!(holds(FilterOp::NotEquals, Some("Sales"), s("HR")));
        assert!(holds(FilterOp::NotEquals, Some("Sales"), Value::Null));
        assert!(holds(FilterOp::IsNull, None, Value::Null));
        assert!(holds(FilterOp::IsNull, None, s("")));
        assert!(!holds(FilterOp::IsNull, None, s("x")));
        assert!(holds(FilterOp::IsNotNull, None, s("x")));
        assert!(holds(FilterOp::IsTrue, None, s("TRUE")));
        assert!(!holds(FilterOp::IsTrue, None, s("FALSE")));
        assert!(holds(FilterOp::IsFalse, None, s("false")));
        assert!(holds(FilterOp::IsFalse, None, Value::Null));
        assert!(holds(FilterOp::RegexMatch, Some("^S.*s$"), s("Sales")));
        assert!(holds(FilterOp::NotRegexMatch, Some("^S"), s("HR")));
        assert!(holds(FilterOp::GreaterThan, Some("10"), s("11")));
        assert!(!holds(FilterOp::GreaterThan, Some("10"), s("10")));
        assert!(holds(FilterOp::LessThan, Some("10"), s("-3")));
        assert!(!holds(FilterOp::LessThan, Some("10"), s("abc")));
        assert!(holds(
            FilterOp::Equals,
            Some("b"),
            Value::Multi(vec!["a".into(), "b".into()])
        ));
    }

    #[test]
    fn compile_reports_every_error() {
        let spec = ScopeSpec {
            ous: vec!["OU=x,DC=y".into(), "nonsense".into()],
            groups: vec!["CN=g,DC=y".into()],
            filters: vec![
                clause("a", FilterOp::RegexMatch, Some("(")),
                clause("b", FilterOp::IsNull, Some("x")),
                clause("c", FilterOp::GreaterThan, Some("ten")),
                clause("", FilterOp::IsNull, None),
            ],
        };
        let keys: Vec<String> = Scope::compile(&spec)
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            vec![
                "projection.scope",
                "projection.scope.ous[1]",
                "projection.scope.filters[0].value",
                "projection.scope.filters[1].value",
                "projection.scope.filters[2].value",
                "projection.scope.filters[3].attribute"
            ]
        );
    }

    #[test]
    fn ou_subtree_mode() {
        let scope = Scope::compile(&ScopeSpec {
            ous: vec!["OU=Sales,DC=corp,DC=test".into()],
            ..ScopeSpec::default()
        })
        .unwrap();
        let within = |dn: &str| scope.ou_selects(&dn::canonical(dn));
        assert!(within("CN=a,OU=East,ou=sales,DC=corp,DC=test"));
        assert!(within("CN=a,OU=Sales,DC=corp,DC=test"));
        assert!(!within("CN=a,OU=HR,DC=corp,DC=test"));
        assert!(!within("CN=a,OU=Presales,DC=corp,DC=test"));
        assert!(Scope::default().ou_selects("cn=a,ou=hr,dc=corp,dc=test"));
    }
}
