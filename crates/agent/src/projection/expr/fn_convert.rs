//! Conversion functions: BitAnd, CBool, ConvertFromBase64, ConvertToBase64, ConvertToUTF8Hex, CStr, Guid,
//! StringFromSID.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::EvalError;
use super::eval::Args;
use super::value::Value;
use crate::projection::sid::sid_to_string;

/// `BitAnd(value1, value2)`.
pub fn bit_and(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Num(
        a.value(0)?.to_num("BitAnd")? & a.value(1)?.to_num("BitAnd")?,
    ))
}

/// `CBool(expression)`: non-zero numbers and `True` are true.
pub fn cbool(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(Value::Bool(a.value(0)?.to_bool("CBool")?))
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `ConvertFromBase64(source[, encoding])`: decodes and reads the bytes as Unicode (UTF-16LE, default),
/// UTF8 or ASCII.
pub fn from_base64(a: &Args<'_>) -> Result<Value, EvalError> {
    const F: &str = "ConvertFromBase64";
    let Some(text) = a.value(0)?.to_opt_str(F)? else {
        return Ok(Value::Null);
    };
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| EvalError::InvalidBase64)?;
    let encoding = if a.present(1) {
        a.value(1)?.to_str_or_empty(F)?
    } else {
        "Unicode".into()
    };
    let out = match encoding.to_ascii_lowercase().as_str() {
        "unicode" => {
            if bytes.len() % 2 != 0 {
                return Err(EvalError::InvalidText(F));
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| EvalError::InvalidText(F))?
        }
        "utf8" => String::from_utf8(bytes).map_err(|_| EvalError::InvalidText(F))?,
        "ascii" if bytes.is_ascii() => {
            String::from_utf8(bytes).map_err(|_| EvalError::InvalidText(F))?
        }
        "ascii" => return Err(EvalError::InvalidText(F)),
        _ => {
            return Err(EvalError::UnknownOption {
                function: F,
                value: encoding,
            });
        }
    };
    Ok(Value::Str(out))
}

/// `ConvertToBase64(source)`: text is encoded as UTF-16LE first (as the reference's example shows);
/// binary values are encoded as they are.
pub fn to_base64(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(match a.value(0)? {
        Value::Null => Value::Null,
        Value::Bin(b) => Value::Str(STANDARD.encode(b)),
        other => match other.to_opt_str("ConvertToBase64")? {
            Some(s) => Value::Str(STANDARD.encode(utf16le(&s))),
            None => Value::Null,
        },
    })
}

/// `ConvertToUTF8Hex(source)`: upper-case hex of the UTF-8 bytes.
pub fn to_utf8_hex(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(match a.value(0)?.to_opt_str("ConvertToUTF8Hex")? {
        Some(s) => Value::Str(hex::encode_upper(s.as_bytes())),
        None => Value::Null,
    })
}

/// `CStr(value)`: the text form; Null stays Null.
pub fn cstr(a: &Args<'_>) -> Result<Value, EvalError> {
    Ok(match a.value(0)?.to_opt_str("CStr")? {
        Some(s) => Value::Str(s),
        None => Value::Null,
    })
}

/// `Guid()`: a version-4-shaped GUID from the context's bytes (deterministic per object and event).
pub fn guid(a: &Args<'_>) -> Result<Value, EvalError> {
    let id = uuid::Builder::from_random_bytes(a.ctx().guid_bytes()).into_uuid();
    Ok(Value::Str(id.to_string()))
}

/// `StringFromSID(objectSid)`: `S-1-5-…`.
pub fn string_from_sid(a: &Args<'_>) -> Result<Value, EvalError> {
    let bytes = match a.value(0)? {
        Value::Null => return Ok(Value::Null),
        Value::Bin(b) => b,
        Value::Str(s) => s.into_bytes(),
        other => {
            return Err(EvalError::Type {
                function: "StringFromSID",
                expected: "binary",
                found: other.type_name(),
            });
        }
    };
    sid_to_string(&bytes)
        .map(Value::Str)
        .ok_or(EvalError::InvalidSid(bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::super::eval::testing::*;
    use super::*;

    #[test]
    fn bit_and_documented() {
        assert_eq!(run0("BitAnd(&HF, &HF7)"), Ok(Value::Num(7)));
        let ctx = Ctx::default().with("userAccountControl", s("514"));
        assert_eq!(
            run(&ctx, "BitAnd([userAccountControl], 2)"),
            Ok(Value::Num(2))
        );
        assert!(run0(r#"BitAnd("x", 2)"#).is_err());
    }

    #[test]
    fn cbool_documented() {
        let ctx = Ctx::default()
            .with("attrib1", s("x"))
            .with("attrib2", s("x"))
            .with("attrib3", s("y"));
        assert_eq!(
            run(&ctx, "CBool([attrib1] = [attrib2])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            run(&ctx, "CBool([attrib1] = [attrib3])"),
            Ok(Value::Bool(false))
        );
        assert_eq!(run0("CBool(5)"), Ok(Value::Bool(true)));
        assert_eq!(run0("CBool(0)"), Ok(Value::Bool(false)));
    }

    #[test]
    fn base64_documented_vectors() {
        assert_eq!(
            run0(r#"ConvertFromBase64("SABlAGwAbABvACAAdwBvAHIAbABkACEA")"#),
            Ok(s("Hello world!"))
        );
        assert_eq!(
            run0(r#"ConvertFromBase64("SGVsbG8gd29ybGQh", UTF8)"#),
            Ok(s("Hello world!"))
        );
        assert_eq!(
            run0(r#"ConvertFromBase64("SGVsbG8gd29ybGQh", ASCII)"#),
            Ok(s("Hello world!"))
        );
        assert_eq!(
            run0(r#"ConvertToBase64("Hello world!")"#),
            Ok(s("SABlAGwAbABvACAAdwBvAHIAbABkACEA"))
        );
        assert_eq!(
            run0(r#"ConvertFromBase64("!!")"#),
            Err(EvalError::InvalidBase64)
        );
        assert_eq!(
            run0(r#"ConvertFromBase64("w6k=", ASCII)"#),
            Err(EvalError::InvalidText("ConvertFromBase64"))
        );
        // RFC 4648 §10 vector for binary input.
        let ctx = Ctx::default().with("b", Value::Bin(b"foobar".to_vec()));
        assert_eq!(run(&ctx, "ConvertToBase64([b])"), Ok(s("Zm9vYmFy")));
    }

    #[test]
    fn utf8_hex_documented() {
        assert_eq!(
            run0(r#"ConvertToUTF8Hex("Hello world!")"#),
            Ok(s("48656C6C6F20776F726C6421"))
        );
        assert_eq!(run0(r#"ConvertToUTF8Hex("é")"#), Ok(s("C3A9")));
    }

    #[test]
    fn cstr_documented() {
        let ctx = Ctx::default().with("dn", s("cn=Joe,dc=contoso,dc=com"));
        assert_eq!(run(&ctx, "CStr([dn])"), Ok(s("cn=Joe,dc=contoso,dc=com")));
        assert_eq!(run0("CStr(42)"), Ok(s("42")));
        assert_eq!(run0("CStr(True)"), Ok(s("True")));
        assert_eq!(run0("CStr([none])"), Ok(Value::Null));
    }

    #[test]
    fn guid_is_v4_shaped_and_from_context() {
        // Context bytes are all 0x11: version nibble 4 and RFC 4122 variant bits are forced.
        assert_eq!(
            run0("Guid()"),
            Ok(s("11111111-1111-4111-9111-111111111111"))
        );
    }

    #[test]
    fn string_from_sid() {
        let sid = vec![1u8, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 2, 0, 0];
        let ctx = Ctx::default()
            .with("objectSid", Value::Bin(sid))
            .with("bad", Value::Bin(vec![1, 2, 3]));
        assert_eq!(
            run(&ctx, "StringFromSID([objectSid])"),
            Ok(s("S-1-5-32-544"))
        );
        assert_eq!(
            run(&ctx, "StringFromSID([bad])"),
            Err(EvalError::InvalidSid(3))
        );
    }
}
