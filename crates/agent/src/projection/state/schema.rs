//! Schema shapes: how AD object classes map to synced kinds, and how an attribute's raw values read as an
//! expression [`Value`] (binary, single- or multi-valued text), from the AD schema.
//!
//! Enters: an [`ObjectClass`], an attribute name (lower-case) and its raw values. Leaves: the synced
//! [`ObjectKind`] (or `None`), the attribute's [`Shape`] and the [`Value`] the expression language reads.

use std::borrow::Cow;

use crate::event::ObjectClass;
use crate::projection::expr::Value;
use crate::projection::ops::ObjectKind;

/// The synced kind of an AD object class; `None` for classes that are not synced (computers, OUs, …).
pub fn kind_of(class: &ObjectClass) -> Option<ObjectKind> {
    match class {
        ObjectClass::User | ObjectClass::InetOrgPerson => Some(ObjectKind::User),
        ObjectClass::Group => Some(ObjectKind::Group),
        ObjectClass::Contact => Some(ObjectKind::Contact),
        ObjectClass::OrganizationalUnit | ObjectClass::Other(_) => None,
    }
}

/// Attributes whose values are binary in AD; read as [`Value::Bin`].
const BINARY: &[&str] = &[
    "objectguid",
    "objectsid",
    "ms-ds-consistencyguid",
    "msds-consistencyguid",
    "thumbnailphoto",
    "jpegphoto",
    "usercertificate",
];

/// Attributes that are multi-valued in the AD schema; read as [`Value::Multi`] even with one value.
const MULTI: &[&str] = &[
    "proxyaddresses",
    "othertelephone",
    "othermobile",
    "otherfacsimiletelephonenumber",
    "otherhomephone",
    "otheripphone",
    "otherpager",
    "url",
    "memberof",
    "objectclass",
    "description",
    "postofficebox",
    "mssfu30nisdomain",
    "serviceprincipalname",
    "othermailbox",
];

/// How an attribute's values read as a [`Value`], from the AD schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Single-valued text.
    Single,
    /// Binary (`BINARY`): the first value as [`Value::Bin`].
    Binary,
    /// Multi-valued text (`MULTI`): [`Value::Multi`] even with one value.
    Multi,
}

/// The shape of attribute `name_lower`.
pub fn shape_of(name_lower: &str) -> Shape {
    if BINARY.contains(&name_lower) {
        Shape::Binary
    } else if MULTI.contains(&name_lower) {
        Shape::Multi
    } else {
        Shape::Single
    }
}

/// [`shaped_value`] of a single value, reusing its buffer when it is already owned.
pub fn one_value(shape: Shape, v: Cow<'_, [u8]>) -> Value {
    match (shape, v) {
        (Shape::Binary, v) => Value::Bin(v.into_owned()),
        (Shape::Multi, v) => shaped_value(shape, &[v]),
        (Shape::Single, Cow::Borrowed(b)) => match std::str::from_utf8(b) {
            Ok(text) => Value::Str(text.to_string()),
            Err(_) => Value::Bin(b.to_vec()),
        },
        (Shape::Single, Cow::Owned(b)) => match String::from_utf8(b) {
            Ok(text) => Value::Str(text),
            Err(e) => Value::Bin(e.into_bytes()),
        },
    }
}

/// Reads raw values of an attribute of shape `shape` as a [`Value`].
pub fn shaped_value<V: AsRef<[u8]>>(shape: Shape, values: &[V]) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    if shape == Shape::Binary {
        return Value::Bin(first.as_ref().to_vec());
    }
    if let [one] = values
        && shape == Shape::Single
    {
        return match std::str::from_utf8(one.as_ref()) {
            Ok(text) => Value::Str(text.to_string()),
            Err(_) => Value::Bin(one.as_ref().to_vec()),
        };
    }
    let texts: Option<Vec<String>> = values
        .iter()
        .map(|v| std::str::from_utf8(v.as_ref()).ok().map(str::to_string))
        .collect();
    match texts {
        None => Value::Bin(first.as_ref().to_vec()),
        Some(t) => Value::Multi(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_value<V: AsRef<[u8]>>(name_lower: &str, values: &[V]) -> Value {
        shaped_value(shape_of(name_lower), values)
    }

    #[test]
    fn one_value_agrees_with_shaped_value() {
        let cases: [(&str, &[u8]); 5] = [
            ("mail", b"a@x"),
            ("proxyaddresses", b"SMTP:a@x"),
            ("objectsid", b"abc"),
            ("cn", &[0xff]),
            ("cn", b""),
        ];
        for (name, v) in cases {
            let expected = test_value(name, &[v]);
            let shape = shape_of(name);
            assert_eq!(one_value(shape, Cow::Borrowed(v)), expected, "{name}");
            assert_eq!(one_value(shape, Cow::Owned(v.to_vec())), expected, "{name}");
        }
    }

    #[test]
    fn values_by_schema_shape() {
        assert_eq!(test_value("mail", &[b"a@x"]), Value::Str("a@x".into()));
        assert_eq!(
            test_value("proxyaddresses", &[b"SMTP:a@x"]),
            Value::Multi(vec!["SMTP:a@x".into()])
        );
        assert_eq!(
            test_value("objectsid", &[b"abc"]),
            Value::Bin(b"abc".to_vec())
        );
        assert_eq!(test_value("cn", &[&[0xff]]), Value::Bin(vec![0xff]));
        assert_eq!(test_value::<&[u8]>("cn", &[]), Value::Null);
    }
}
