//! Date functions: DateFromNum (AD FILETIME to a date) and FormatDateTime (.NET custom format strings).
//!
//! Supported format specifiers, for parsing and formatting: `yyyy` `yy` `M` `MM` `MMM` `MMMM` `d` `dd` `ddd`
//! `dddd` `H` `HH` `h` `hh` `m` `mm` `s` `ss` `f`…`fffffff` `F`…`FFFFFFF` `t` `tt` `z` `zz` `zzz` `K`,
//! quoted literals (`'…'`, `"…"`), `\c` escapes; every other character is a literal (so `Z` in
//! `yyyyMMddHHmmss.fZ` is a literal, as in .NET). Month and day names are English (invariant culture).
//! Parsed offsets convert the value to UTC; formatting writes UTC (`K` gives `Z`, `zzz` gives `+00:00`).

use time::{Date, Month, PrimitiveDateTime, Time};

use super::error::EvalError;
use super::eval::Args;
use super::value::Value;

/// 100-nanosecond intervals between 1601-01-01 and 1970-01-01 (the FILETIME epoch offset).
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;

/// Converts an AD FILETIME (100 ns intervals since 1601-01-01 UTC) to a date; `None` for AD's "never"
/// values (0 and `i64::MAX`) and values past year 9999.
pub fn filetime_to_date(ft: i64) -> Option<PrimitiveDateTime> {
    if ft <= 0 || ft == i64::MAX {
        return None;
    }
    let secs = ft / 10_000_000 - FILETIME_UNIX_OFFSET_SECS;
    let nanos = (ft % 10_000_000) * 100;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    let dt = dt.replace_nanosecond(u32::try_from(nanos).ok()?).ok()?;
    Some(PrimitiveDateTime::new(dt.date(), dt.time()))
}

/// `DateFromNum(value)`.
pub fn date_from_num(a: &Args<'_>) -> Result<Value, EvalError> {
    let v = a.value(0)?;
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    Ok(filetime_to_date(v.to_num("DateFromNum")?).map_or(Value::Null, Value::Date))
}

/// `FormatDateTime(source, inputFormat, outputFormat)`.
pub fn format_date_time(a: &Args<'_>) -> Result<Value, EvalError> {
    const F: &str = "FormatDateTime";
    let date = match a.value(0)? {
        Value::Null => return Ok(Value::Null),
        Value::Date(d) => d,
        other => {
            let Some(text) = other.to_opt_str(F)? else {
                return Ok(Value::Null);
            };
            let input = a.value(1)?.to_str_or_empty(F)?;
            parse_date(&text, &input)?
        }
    };
    let output = a.value(2)?.to_str_or_empty(F)?;
    Ok(Value::Str(format_date(date, &output)?))
}

#[derive(Debug, Clone, PartialEq)]
enum Spec {
    Year(usize),
    Month(usize),
    Day(usize),
    Hour24(usize),
    Hour12(usize),
    Minute(usize),
    Second(usize),
    Fraction { digits: usize, optional: bool },
    AmPm(usize),
    Offset(usize),
    Kind,
    Lit(String),
}

fn date_err(message: impl Into<String>) -> EvalError {
    EvalError::Date {
        function: "FormatDateTime",
        message: message.into(),
    }
}

fn date_range(source: time::error::ComponentRange) -> EvalError {
    EvalError::DateRange {
        function: "FormatDateTime",
        source,
    }
}

fn tokenize(fmt: &str) -> Result<Vec<Spec>, EvalError> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        let spec = match c {
            'y' => Spec::Year(run),
            'M' => Spec::Month(run),
            'd' => Spec::Day(run),
            'H' => Spec::Hour24(run),
            'h' => Spec::Hour12(run),
            'm' => Spec::Minute(run),
            's' => Spec::Second(run),
            'f' | 'F' if run > 7 => return Err(date_err("more than 7 fraction digits")),
            'f' => Spec::Fraction {
                digits: run,
                optional: false,
            },
            'F' => Spec::Fraction {
                digits: run,
                optional: true,
            },
            't' => Spec::AmPm(run),
            'z' => Spec::Offset(run),
            'K' => Spec::Kind,
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == c)
                    .ok_or_else(|| date_err("unclosed quote in format"))?;
                out.push(Spec::Lit(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
                continue;
            }
            '\\' => {
                let lit = chars
                    .get(i + 1)
                    .ok_or_else(|| date_err("format ends with `\\`"))?;
                out.push(Spec::Lit(lit.to_string()));
                i += 2;
                continue;
            }
            other => {
                out.push(Spec::Lit(other.to_string()));
                i += 1;
                continue;
            }
        };
        out.push(spec);
        i += match c {
            'K' => 1,
            _ => run,
        };
    }
    Ok(out)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

struct Input<'a> {
    rest: &'a str,
}

impl Input<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Result<u32, EvalError> {
        let n = self
            .rest
            .chars()
            .take(max)
            .take_while(char::is_ascii_digit)
            .count();
        if n < min {
            return Err(date_err(format!(
                "expected {min} digits at `{}`",
                self.rest
            )));
        }
        let (d, rest) = self.rest.split_at(n);
        self.rest = rest;
        d.parse().map_err(|_| date_err("number out of range"))
    }

    fn name(&mut self, names: &[&str], abbreviated: bool) -> Option<usize> {
        names.iter().position(|n| {
            let n = if abbreviated { &n[..3] } else { n };
            let hit = self.rest.len() >= n.len()
                && self.rest.is_char_boundary(n.len())
                && self.rest[..n.len()].eq_ignore_ascii_case(n);
            if hit {
                self.rest = &self.rest[n.len()..];
            }
            hit
        })
    }
}

/// Parses `text` according to the .NET custom format `fmt`, to UTC.
pub fn parse_date(text: &str, fmt: &str) -> Result<PrimitiveDateTime, EvalError> {
    let (mut year, mut month, mut day) = (1i32, 1u8, 1u8);
    let (mut hour, mut minute, mut second, mut nanos) = (0u8, 0u8, 0u8, 0u32);
    let mut pm: Option<bool> = None;
    let mut offset_minutes = 0i64;
    let mut input = Input { rest: text.trim() };
    let narrow = |n: u32| u8::try_from(n).map_err(|_| date_err("field out of range"));
    for spec in tokenize(fmt)? {
        match spec {
            Spec::Year(n) if n <= 2 => {
                let y = input.digits(n, 2)? as i32;
                year = if y < 30 { 2000 + y } else { 1900 + y };
            }
            Spec::Year(n) => year = input.digits(n.max(4), n.max(4))? as i32,
            Spec::Month(n) if n >= 3 => {
                month = input
                    .name(&MONTHS, n == 3)
                    .ok_or_else(|| date_err("expected a month name"))?
                    as u8
                    + 1;
            }
            Spec::Month(n) => month = narrow(input.digits(n, 2)?)?,
            Spec::Day(n) if n >= 3 => {
                input
                    .name(&DAYS, n == 3)
                    .ok_or_else(|| date_err("expected a day name"))?;
            }
            Spec::Day(n) => day = narrow(input.digits(n, 2)?)?,
            Spec::Hour24(n) | Spec::Hour12(n) => hour = narrow(input.digits(n.min(2), 2)?)?,
            Spec::Minute(n) => minute = narrow(input.digits(n.min(2), 2)?)?,
            Spec::Second(n) => second = narrow(input.digits(n.min(2), 2)?)?,
            Spec::Fraction { digits, optional } => {
                let before = input.rest.len();
                let v = input.digits(if optional { 0 } else { digits }, digits)?;
                let used = before - input.rest.len();
                nanos = v * 10u32.pow(9 - used as u32);
            }
            Spec::AmPm(_) => {
                let upper = input.rest.to_ascii_uppercase();
                pm = Some(if upper.starts_with("PM") || upper.starts_with('P') {
                    true
                } else if upper.starts_with("AM") || upper.starts_with('A') {
                    false
                } else {
                    return Err(date_err("expected AM or PM"));
                });
                let len = if upper.starts_with("AM") || upper.starts_with("PM") {
                    2
                } else {
                    1
                };
                input.rest = &input.rest[len..];
            }
            Spec::Offset(_) | Spec::Kind => {
                if let Some(rest) = input.rest.strip_prefix('Z') {
                    input.rest = rest;
                } else if let Some(sign) =
                    input.rest.chars().next().filter(|c| *c == '+' || *c == '-')
                {
                    input.rest = &input.rest[1..];
                    let h = i64::from(input.digits(1, 2)?);
                    let m = if let Some(rest) = input.rest.strip_prefix(':') {
                        input.rest = rest;
                        i64::from(input.digits(2, 2)?)
                    } else {
                        0
                    };
                    offset_minutes = (h * 60 + m) * if sign == '-' { -1 } else { 1 };
                } else if matches!(spec, Spec::Offset(_)) {
                    return Err(date_err("expected an offset like +01:00"));
                }
            }
            Spec::Lit(l) => {
                input.rest = input
                    .rest
                    .strip_prefix(l.as_str())
                    .ok_or_else(|| date_err(format!("expected `{l}` at `{}`", input.rest)))?;
            }
        }
    }
    if !input.rest.is_empty() {
        return Err(date_err(format!(
            "unexpected `{}` after the date",
            input.rest
        )));
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let month = Month::try_from(month).map_err(|_| date_err("month out of range"))?;
    let date = Date::from_calendar_date(year, month, day).map_err(date_range)?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).map_err(date_range)?;
    let local = PrimitiveDateTime::new(date, time);
    local
        .checked_sub(time::Duration::minutes(offset_minutes))
        .ok_or_else(|| date_err("date out of range"))
}

/// Formats `d` (UTC) with the .NET custom format `fmt`.
pub fn format_date(d: PrimitiveDateTime, fmt: &str) -> Result<String, EvalError> {
    let mut out = String::new();
    for spec in tokenize(fmt)? {
        match spec {
            Spec::Year(1) => out.push_str(&(d.year() % 100).to_string()),
            Spec::Year(2) => out.push_str(&format!("{:02}", d.year() % 100)),
            Spec::Year(n) => out.push_str(&format!("{:0n$}", d.year())),
            Spec::Month(1) => out.push_str(&u8::from(d.month()).to_string()),
            Spec::Month(2) => out.push_str(&format!("{:02}", u8::from(d.month()))),
            Spec::Month(n) => {
                let name = MONTHS[usize::from(u8::from(d.month())) - 1];
                out.push_str(if n == 3 { &name[..3] } else { name });
            }
            Spec::Day(1) => out.push_str(&d.day().to_string()),
            Spec::Day(2) => out.push_str(&format!("{:02}", d.day())),
            Spec::Day(n) => {
                let name = DAYS[usize::from(d.weekday().number_days_from_monday())];
                out.push_str(if n == 3 { &name[..3] } else { name });
            }
            Spec::Hour24(1) => out.push_str(&d.hour().to_string()),
            Spec::Hour24(_) => out.push_str(&format!("{:02}", d.hour())),
            Spec::Hour12(n) => {
                let h = match d.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                out.push_str(&if n == 1 {
                    h.to_string()
                } else {
                    format!("{h:02}")
                });
            }
            Spec::Minute(1) => out.push_str(&d.minute().to_string()),
            Spec::Minute(_) => out.push_str(&format!("{:02}", d.minute())),
            Spec::Second(1) => out.push_str(&d.second().to_string()),
            Spec::Second(_) => out.push_str(&format!("{:02}", d.second())),
            Spec::Fraction { digits, optional } => {
                let all = format!("{:09}", d.nanosecond());
                let part = &all[..digits];
                out.push_str(if optional {
                    part.trim_end_matches('0')
                } else {
                    part
                });
            }
            Spec::AmPm(n) => {
                let s = if d.hour() >= 12 { "PM" } else { "AM" };
                out.push_str(if n == 1 { &s[..1] } else { s });
            }
            Spec::Offset(1) | Spec::Offset(2) => out.push_str("+00"),
            Spec::Offset(_) => out.push_str("+00:00"),
            Spec::Kind => out.push('Z'),
            Spec::Lit(l) => out.push_str(&l),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::eval::testing::*;
    use super::*;
    use time::macros::datetime;

    #[test]
    fn date_from_num_documented() {
        // The reference: DateFromNum(129699324000000000) is 2012-01-01 23:00:00.
        assert_eq!(
            run0("DateFromNum(129699324000000000)"),
            Ok(Value::Date(datetime!(2012-01-01 23:00:00)))
        );
        assert_eq!(
            run0("CStr(DateFromNum(129699324000000000))"),
            Ok(s("2012-01-01T23:00:00Z"))
        );
        assert_eq!(run0("DateFromNum(0)"), Ok(Value::Null));
        assert_eq!(run0("DateFromNum(9223372036854775807)"), Ok(Value::Null));
        // The FILETIME epoch offset itself is 1970-01-01.
        assert_eq!(
            filetime_to_date(116_444_736_000_000_000),
            Some(datetime!(1970-01-01 0:00))
        );
    }

    #[test]
    fn format_date_time_documented() {
        let ctx = Ctx::default().with("extensionAttribute1", s("20150123105347.1Z"));
        assert_eq!(
            run(
                &ctx,
                r#"FormatDateTime([extensionAttribute1], "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#
            ),
            Ok(s("2015-01-23"))
        );
        assert_eq!(
            run(
                &ctx,
                r#"FormatDateTime([extensionAttribute1], "yyyyMMddHHmmss.fZ", "dddd, d MMMM yyyy h:mm:ss.ff tt")"#
            ),
            Ok(s("Friday, 23 January 2015 10:53:47.10 AM"))
        );
        assert_eq!(
            run0(r#"FormatDateTime([none], "yyyy", "yyyy")"#),
            Ok(Value::Null)
        );
        assert!(run0(r#"FormatDateTime("2015-13-01", "yyyy-MM-dd", "yyyy")"#).is_err());
        assert!(run0(r#"FormatDateTime("2015-01-01x", "yyyy-MM-dd", "yyyy")"#).is_err());
    }

    #[test]
    fn parse_offsets_and_twelve_hour_clock() {
        assert_eq!(
            parse_date("2020-02-29 11:30 PM +02:00", "yyyy-MM-dd hh:mm tt zzz"),
            Ok(datetime!(2020-02-29 21:30))
        );
        assert_eq!(
            parse_date("12/03/99 12:05 AM", "MM/dd/yy hh:mm tt"),
            Ok(datetime!(1999-12-03 0:05))
        );
        assert_eq!(
            parse_date("3 Mar 2021", "d MMM yyyy"),
            Ok(datetime!(2021-03-03 0:00))
        );
        assert_eq!(
            format_date(datetime!(2021-03-03 14:05:09.5), "'at' HH\\hmm FFF K"),
            Ok("at 14h05 5 Z".into())
        );
    }
}
