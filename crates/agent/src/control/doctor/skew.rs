//! The clock-skew rule. Enters: the local clock and a remote one (the DC's rootDSE `currentTime`,
//! the tenant's HTTP `Date`). Leaves: a [`Check`]: FAIL above 5 minutes (Kerberos' default
//! tolerance), warn above 1 minute.

use std::time::{Duration, SystemTime};

use super::Check;

/// Above this, Kerberos refuses tickets and the check fails.
pub const FAIL_ABOVE: Duration = Duration::from_secs(5 * 60);
/// Above this, the check warns.
pub const WARN_ABOVE: Duration = Duration::from_secs(60);

/// Compares `local` with `remote` (named `against`, e.g. "the DC").
pub fn check(what: &str, against: &str, local: SystemTime, remote: SystemTime) -> Check {
    let (skew, direction) = match local.duration_since(remote) {
        Ok(ahead) => (ahead, "ahead of"),
        Err(behind) => (behind.duration(), "behind"),
    };
    let detail = format!("this host is {}s {direction} {against}", skew.as_secs());
    let fix = format!("synchronise the clock (chrony/ntp) with {against}");
    if skew > FAIL_ABOVE {
        Check::fail(what, detail, fix)
    } else if skew > WARN_ABOVE {
        Check::warn(what, detail, fix)
    } else {
        Check::ok(what, detail)
    }
}

/// Parses an LDAP generalized time (`20261207063000.0Z`); only UTC (`Z`) is accepted, as AD sends.
pub fn parse_generalized_time(text: &str) -> Option<SystemTime> {
    if !text.ends_with('Z') || text.len() < 15 {
        return None;
    }
    let digits = text.get(..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<u16>().ok());
    let month = time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::from(n(0..4)?), month, u8::try_from(n(6..8)?).ok()?)
            .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(n(8..10)?).ok()?,
        u8::try_from(n(10..12)?).ok()?,
        u8::try_from(n(12..14)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::doctor::Status;

    #[test]
    fn generalized_time_parses_to_the_epoch_second() {
        // 2026-12-07T06:30:00Z = 1796625000 (date -u -d 2026-12-07T06:30:00Z +%s).
        let t = parse_generalized_time("20261207063000.0Z").unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_625_000)
        );
        assert_eq!(parse_generalized_time("20261307063000.0Z"), None);
        assert_eq!(parse_generalized_time("2026120706300x.0Z"), None);
        assert_eq!(parse_generalized_time("20261207063000+0100"), None);
        assert_eq!(parse_generalized_time(""), None);
    }

    #[test]
    fn thresholds() {
        let dc = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_625_000);
        let at = |secs: i64| {
            let local = if secs >= 0 {
                dc + Duration::from_secs(secs.unsigned_abs())
            } else {
                dc - Duration::from_secs(secs.unsigned_abs())
            };
            check("clock", "the DC", local, dc)
        };
        assert_eq!(at(0).status, Status::Ok);
        assert_eq!(at(60).status, Status::Ok);
        assert_eq!(at(61).status, Status::Warn);
        assert_eq!(at(-300).status, Status::Warn);
        let far = at(600);
        assert_eq!(far.status, Status::Fail);
        assert_eq!(
            far.fix.as_deref(),
            Some("synchronise the clock (chrony/ntp) with the DC")
        );
        assert!(
            far.detail.contains("600s ahead of the DC"),
            "{}",
            far.detail
        );
        assert_eq!(at(-301).status, Status::Fail);
    }
}
