//! Attribute mappings: Microsoft cloud sync's defaults per object kind, overridable per target, compiled
//! once when the configuration loads (every error reported at once), evaluated per object.
//!
//! Every mapping — default or custom, direct attribute or constant — is compiled to an expression, so one
//! evaluator serves all. A mapping that evaluates to Null leaves the target out of the upsert (the upsert
//! is a full replacement, so the cloud value is cleared).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::expr::{self, EvalContext, EvalError, Expr, Value};
use super::ops::{AttrName, ObjectKind};

/// When a mapping applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyWhen {
    /// On every create and update.
    #[default]
    Always,
    /// Only when the cloud object is created (e.g. with `SelectUniqueValue` or `Guid()`).
    OnCreate,
}

/// One mapping as written in the configuration (`[[projection.mappings]]`). Exactly one of `source`,
/// `expression` and `constant` is set, or `remove = true` to drop a default mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// `user`, `group` or `contact`.
    pub object: ObjectKind,
    /// The Graph property to set, e.g. `displayName`, `extension_<app>_costCenter`.
    pub target: String,
    /// A direct mapping from an AD attribute.
    #[serde(default)]
    pub source: Option<String>,
    /// An expression in Microsoft's syntax.
    #[serde(default)]
    pub expression: Option<String>,
    /// A constant string.
    #[serde(default)]
    pub constant: Option<String>,
    /// Drop the default mapping of `target`.
    #[serde(default)]
    pub remove: bool,
    /// When to apply.
    #[serde(default)]
    pub apply: ApplyWhen,
}

impl MappingSpec {
    /// A spec for `target` of `object` with nothing set yet.
    pub fn new(object: ObjectKind, target: &str) -> MappingSpec {
        MappingSpec {
            object,
            target: target.to_string(),
            source: None,
            expression: None,
            constant: None,
            remove: false,
            apply: ApplyWhen::Always,
        }
    }
}

/// Targets that hold several values and are always sent as JSON arrays.
const MULTI_TARGETS: &[&str] = &[
    "proxyAddresses",
    "businessPhones",
    "otherMails",
    "imAddresses",
];

/// Targets projection fills itself; a mapping may not set them.
const RESERVED_TARGETS: &[&str] = &[
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesDistinguishedName",
    "onPremisesSecurityIdentifier",
    "onPremisesDomainName",
    "id",
];

/// `cn` as the fallback, and `name` after it: Samba's DirSync returns the RDN as `name` only.
const DISPLAY_NAME: &str =
    "IIF(IsPresent([displayName]), [displayName], IIF(IsPresent([cn]), [cn], [name]))";
const MAIL_NICKNAME: &str = "IIF(IsPresent([mailNickname]), [mailNickname], [sAMAccountName])";
/// A contact has no sAMAccountName: its RDN, again with `name` after `cn` for Samba.
const CONTACT_MAIL_NICKNAME: &str =
    "IIF(IsPresent([mailNickname]), [mailNickname], IIF(IsPresent([cn]), [cn], [name]))";

/// Microsoft cloud sync's default mappings (target, expression) for `kind`.
pub fn defaults(kind: ObjectKind) -> Vec<(&'static str, &'static str)> {
    match kind {
        ObjectKind::User => vec![
            (
                "accountEnabled",
                "IIF(IsPresent([userAccountControl]), Not(BitAnd([userAccountControl], 2)), True)",
            ),
            ("businessPhones", "[telephoneNumber]"),
            ("city", "[l]"),
            ("companyName", "[company]"),
            ("country", "[co]"),
            ("department", "[department]"),
            ("displayName", DISPLAY_NAME),
            ("employeeId", "[employeeID]"),
            ("faxNumber", "[facsimileTelephoneNumber]"),
            ("givenName", "[givenName]"),
            ("jobTitle", "[title]"),
            ("mail", "[mail]"),
            ("mailNickname", MAIL_NICKNAME),
            ("mobilePhone", "[mobile]"),
            ("officeLocation", "[physicalDeliveryOfficeName]"),
            ("onPremisesUserPrincipalName", "[userPrincipalName]"),
            ("postalCode", "[postalCode]"),
            ("proxyAddresses", "[proxyAddresses]"),
            ("state", "[st]"),
            ("streetAddress", "[streetAddress]"),
            ("surname", "[sn]"),
            ("usageLocation", "[c]"),
            ("userPrincipalName", "[userPrincipalName]"),
        ],
        ObjectKind::Group => vec![
            ("description", "[description]"),
            ("displayName", DISPLAY_NAME),
            ("mail", "[mail]"),
            ("mailEnabled", "IsPresent([mail])"),
            ("mailNickname", MAIL_NICKNAME),
            ("proxyAddresses", "[proxyAddresses]"),
            (
                "securityEnabled",
                "IIF(IsPresent([groupType]), BitAnd([groupType], &H80000000) <> 0, False)",
            ),
        ],
        ObjectKind::Contact => vec![
            ("companyName", "[company]"),
            ("department", "[department]"),
            ("displayName", DISPLAY_NAME),
            ("givenName", "[givenName]"),
            ("jobTitle", "[title]"),
            ("mail", "[mail]"),
            ("mailNickname", CONTACT_MAIL_NICKNAME),
            ("proxyAddresses", "[proxyAddresses]"),
            ("surname", "[sn]"),
        ],
    }
}

/// One compiled mapping.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The Graph property.
    pub target: AttrName,
    /// The checked expression.
    pub expr: Expr,
    /// Send as a JSON array.
    pub multi: bool,
    /// When it applies.
    pub apply: ApplyWhen,
    /// The expression is a `SelectUniqueValue`: its result is claimed so no other object gets it.
    pub unique: bool,
}

/// A configuration problem, naming the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct MappingError {
    /// The configuration key, e.g. `projection.mappings[2].expression`.
    pub key: String,
    /// What is wrong (for expressions: with line and column).
    pub message: String,
}

/// The compiled mappings of every kind.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    by_kind: BTreeMap<ObjectKind, Vec<Compiled>>,
}

fn direct_expression(attr: &str) -> String {
    format!("[{}]", attr.replace(']', ""))
}

fn string_constant(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Mappings {
    /// Defaults with `specs` applied (a spec replaces the default of the same target, case-insensitively).
    /// Returns every problem at once.
    pub fn compile(specs: &[MappingSpec]) -> Result<Mappings, Vec<MappingError>> {
        let mut errors = Vec::new();
        let mut by_kind = BTreeMap::new();
        for kind in [ObjectKind::User, ObjectKind::Group, ObjectKind::Contact] {
            let mut list: Vec<(AttrName, String, ApplyWhen, Option<usize>)> = defaults(kind)
                .into_iter()
                .map(|(t, e)| {
                    (
                        AttrName::Borrowed(t),
                        e.to_string(),
                        ApplyWhen::Always,
                        None,
                    )
                })
                .collect();
            for (i, spec) in specs.iter().enumerate().filter(|(_, s)| s.object == kind) {
                let key = format!("projection.mappings[{i}]");
                let target = spec.target.trim();
                if target.is_empty() {
                    errors.push(MappingError {
                        key: format!("{key}.target"),
                        message: "must not be empty".into(),
                    });
                    continue;
                }
                if RESERVED_TARGETS
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(target))
                {
                    errors.push(MappingError {
                        key: format!("{key}.target"),
                        message: format!(
                            "`{target}` is set by projection itself and cannot be mapped"
                        ),
                    });
                    continue;
                }
                list.retain(|(t, ..)| !t.eq_ignore_ascii_case(target));
                let set = [
                    spec.source.is_some(),
                    spec.expression.is_some(),
                    spec.constant.is_some(),
                ];
                let count = set.iter().filter(|b| **b).count();
                if spec.remove {
                    if count != 0 {
                        errors.push(MappingError {
                            key,
                            message: "`remove` takes no source, expression or constant".into(),
                        });
                    }
                    continue;
                }
                let text = match (&spec.source, &spec.expression, &spec.constant) {
                    _ if count != 1 => {
                        errors.push(MappingError {
                            key,
                            message: "set exactly one of `source`, `expression`, `constant`".into(),
                        });
                        continue;
                    }
                    (Some(s), _, _) => direct_expression(s),
                    (_, Some(e), _) => e.clone(),
                    (_, _, Some(c)) => string_constant(c),
                    _ => continue,
                };
                list.push((
                    AttrName::Owned(target.to_string()),
                    text,
                    spec.apply,
                    Some(i),
                ));
            }
            let mut compiled = Vec::new();
            for (target, text, apply, index) in list {
                match expr::parse(&text) {
                    Ok(e) => compiled.push(Compiled {
                        unique: matches!(
                            e,
                            Expr::Call {
                                func: expr::Func::SelectUniqueValue,
                                ..
                            }
                        ),
                        multi: MULTI_TARGETS
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(&target)),
                        target,
                        expr: e,
                        apply,
                    }),
                    Err(err) => errors.push(MappingError {
                        key: match index {
                            Some(i) => format!("projection.mappings[{i}].expression"),
                            None => format!("default mapping {}.{target}", kind.as_str()),
                        },
                        message: err.to_string(),
                    }),
                }
            }
            compiled.sort_by(|a, b| a.target.cmp(&b.target));
            by_kind.insert(kind, compiled);
        }
        if errors.is_empty() {
            Ok(Mappings { by_kind })
        } else {
            Err(errors)
        }
    }

    /// The mappings of `kind`, sorted by target.
    pub fn of(&self, kind: ObjectKind) -> &[Compiled] {
        self.by_kind.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// Resolves every attribute the mappings read to the slot `slot_of` gives it (see
    /// [`Expr::resolve`]).
    pub fn resolve(&mut self, slot_of: &dyn Fn(&str) -> Option<u16>) {
        for c in self.by_kind.values_mut().flatten() {
            c.expr.resolve(slot_of);
        }
    }

    /// Every attribute name any mapping reads (lower-cased).
    pub fn attributes(&self) -> Vec<String> {
        self.by_kind
            .values()
            .flatten()
            .flat_map(|c| c.expr.attributes())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// Evaluates the mappings of `kind` for one object. `creating` includes the on-create mappings;
    /// `previous` supplies their earlier values on updates.
    pub fn evaluate(
        &self,
        kind: ObjectKind,
        ctx: &dyn EvalContext,
        creating: bool,
        previous: Option<&BTreeMap<String, serde_json::Value>>,
    ) -> Result<BTreeMap<AttrName, serde_json::Value>, (String, EvalError)> {
        // Targets are sorted and distinct, so the map is bulk-built from the sorted pairs.
        let mut out = Vec::with_capacity(self.of(kind).len());
        for m in self.of(kind) {
            if m.apply == ApplyWhen::OnCreate && !creating {
                if let Some(v) = previous.and_then(|p| p.get(m.target.as_ref())) {
                    out.push((m.target.clone(), v.clone()));
                }
                continue;
            }
            let value = expr::eval(&m.expr, ctx).map_err(|e| (m.target.to_string(), e))?;
            if let Some(json) = to_json(value, m.multi) {
                out.push((m.target.clone(), json));
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// The JSON form of a mapped value; `None` leaves the target out.
pub fn to_json(v: Value, multi: bool) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    let json = match v {
        Value::Null => return None,
        Value::Str(s) if multi => J::Array(vec![J::String(s)]),
        Value::Str(s) => J::String(s),
        Value::Num(n) => J::from(n),
        Value::Bool(b) => J::Bool(b),
        Value::Multi(vs) if multi => J::Array(vs.into_iter().map(J::String).collect()),
        Value::Multi(mut vs) if vs.len() == 1 => J::String(vs.remove(0)),
        Value::Multi(vs) if vs.is_empty() => return None,
        Value::Multi(vs) => J::Array(vs.into_iter().map(J::String).collect()),
        Value::Bin(b) => {
            use base64::Engine;
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Date(d) => J::String(
            expr::Value::Date(d)
                .to_opt_str("mapping")
                .ok()
                .flatten()
                .unwrap_or_default(),
        ),
    };
    Some(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ObjectKind, target: &str) -> MappingSpec {
        MappingSpec::new(kind, target)
    }

    #[test]
    fn defaults_compile() {
        let m = Mappings::compile(&[]).unwrap();
        assert!(
            m.of(ObjectKind::User)
                .iter()
                .any(|c| c.target == "userPrincipalName")
        );
        assert!(m.attributes().contains(&"useraccountcontrol".to_string()));
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let specs = vec![
            MappingSpec {
                expression: Some("Trim([a]".into()),
                ..spec(ObjectKind::User, "department")
            },
            MappingSpec {
                source: Some("x".into()),
                constant: Some("y".into()),
                ..spec(ObjectKind::User, "city")
            },
            MappingSpec {
                constant: Some("y".into()),
                ..spec(ObjectKind::Group, "onPremisesImmutableId")
            },
            MappingSpec {
                expression: Some("Nope()".into()),
                ..spec(ObjectKind::Contact, "mail")
            },
        ];
        let errs = Mappings::compile(&specs).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "projection.mappings[1]",
                "projection.mappings[0].expression",
                "projection.mappings[2].target",
                "projection.mappings[3].expression"
            ]
        );
        assert!(
            errs[1].message.starts_with("line 1, column 9:"),
            "{}",
            errs[1].message
        );
    }

    #[test]
    fn overrides_and_removal() {
        let specs = vec![
            MappingSpec {
                constant: Some("Contoso \"HQ\"".into()),
                ..spec(ObjectKind::User, "companyname")
            },
            MappingSpec {
                remove: true,
                ..spec(ObjectKind::User, "faxNumber")
            },
        ];
        let m = Mappings::compile(&specs).unwrap();
        let users = m.of(ObjectKind::User);
        assert!(!users.iter().any(|c| c.target == "faxNumber"));
        assert_eq!(
            users
                .iter()
                .filter(|c| c.target.eq_ignore_ascii_case("companyName"))
                .count(),
            1
        );
    }
}
