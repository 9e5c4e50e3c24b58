//! SMPP time fields: `schedule_delivery_time` and `validity_period` (SMPP 3.4 §7.1.1).
//!
//! Both are empty (no value) or 16 characters, `YYMMDDhhmmsstnnp`:
//! - **absolute** (`p` is `+` or `-`): a local time, `t` tenths of a second, `nn` the offset
//!   from UTC in quarter hours (`+` ahead of UTC, `-` behind). `250401120000004+` is
//!   2025-04-01 12:00:00 at UTC+01:00, that is 11:00:00 UTC.
//! - **relative** (`p` is `R`): a period from now, `YY` years, `MM` months, `DD` days and the
//!   time of day fields; `t` and `nn` are `0`. A year counts 365 days and a month 30, as SMSCs
//!   commonly read it.
//!
//! The codec keeps the field as received; [`parse`] reads it when the application needs it.

use std::time::Duration;

/// A parsed SMPP time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmppTime {
    /// A point in time, milliseconds since the Unix epoch (UTC).
    Absolute(i64),
    /// A period from now.
    Relative(Duration),
}

impl SmppTime {
    /// The point in time this names when read at `now_ms` (milliseconds since the epoch).
    pub fn at(self, now_ms: i64) -> i64 {
        match self {
            SmppTime::Absolute(t) => t,
            SmppTime::Relative(d) => {
                now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
        }
    }
}

/// Why a time field could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not 16 characters.
    #[error("an SMPP time has 16 characters (YYMMDDhhmmsstnnp), this has {0}")]
    Length(usize),
    /// A position that must be a digit is not.
    #[error("an SMPP time has digits in its first 15 characters")]
    NotDigits,
    /// The last character is not `+`, `-` or `R`.
    #[error("an SMPP time ends in +, - or R")]
    Kind,
    /// A field is out of range (month 13, day 31 in April, hour 24, offset beyond 14 hours,
    /// a relative time with tenths or an offset).
    #[error("an SMPP time field is out of range")]
    Range,
}

/// Reads an SMPP time field as received (without its NUL). `Ok(None)` for the empty field.
pub fn parse(raw: &[u8]) -> Result<Option<SmppTime>, TimeError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let [y0, y1, mo0, mo1, d0, d1, h0, h1, mi0, mi1, s0, s1, t, n0, n1, p] = *raw else {
        return Err(TimeError::Length(raw.len()));
    };
    let digit = |b: u8| {
        if b.is_ascii_digit() {
            Ok(u32::from(b - b'0'))
        } else {
            Err(TimeError::NotDigits)
        }
    };
    let two = |a: u8, b: u8| Ok::<u32, TimeError>(digit(a)? * 10 + digit(b)?);
    let (year, month, day) = (two(y0, y1)?, two(mo0, mo1)?, two(d0, d1)?);
    let (hour, minute, second) = (two(h0, h1)?, two(mi0, mi1)?, two(s0, s1)?);
    let (tenths, quarters) = (digit(t)?, two(n0, n1)?);
    match p {
        b'R' => {
            if tenths != 0 || quarters != 0 {
                return Err(TimeError::Range);
            }
            let days = u64::from(year) * 365 + u64::from(month) * 30 + u64::from(day);
            let secs =
                days * 86_400 + u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
            Ok(Some(SmppTime::Relative(Duration::from_secs(secs))))
        }
        b'+' | b'-' => {
            let ok = (1..=12).contains(&month)
                && day >= 1
                && day <= days_in_month(2000 + year, month)
                && hour < 24
                && minute < 60
                && second < 60
                && quarters <= 56;
            if !ok {
                return Err(TimeError::Range);
            }
            let days = days_from_civil(2000 + i64::from(year), month, day);
            let local =
                days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
            let offset = i64::from(quarters) * 900;
            let utc = if p == b'+' {
                local - offset
            } else {
                local + offset
            };
            Ok(Some(SmppTime::Absolute(
                utc * 1000 + i64::from(tenths) * 100,
            )))
        }
        _ => Err(TimeError::Kind),
    }
}

/// Formats a UTC instant as an absolute SMPP time (`…000+`), for query_sm_resp's final_date.
pub fn format_absolute(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let tenths = unix_ms.rem_euclid(1000) / 100;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}{m:02}{d:02}{:02}{:02}{:02}{tenths}00+",
        y.rem_euclid(100),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_absolute_times_with_their_offset() {
        // 2025-04-01 12:00:00 at UTC+01:00 is 11:00:00 UTC.
        let t = parse(b"250401120000004+").unwrap().unwrap();
        assert_eq!(t, SmppTime::Absolute(1_743_505_200_000));
        let west = parse(b"250401120000004-").unwrap().unwrap();
        assert_eq!(west, SmppTime::Absolute(1_743_505_200_000 + 2 * 3_600_000));
        let tenths = parse(b"250401110000500+").unwrap().unwrap();
        assert_eq!(tenths, SmppTime::Absolute(1_743_505_200_500));
        assert_eq!(parse(b"240229235959000+").unwrap().unwrap().at(0) % 1000, 0);
    }

    #[test]
    fn reads_relative_times() {
        assert_eq!(
            parse(b"000001020304000R").unwrap(),
            Some(SmppTime::Relative(Duration::from_secs(
                86_400 + 2 * 3600 + 3 * 60 + 4
            )))
        );
        let d = parse(b"010200000000000R").unwrap().unwrap();
        assert_eq!(d.at(1000), 1000 + (365 + 60) * 86_400_000);
        assert_eq!(parse(b"").unwrap(), None);
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        assert_eq!(parse(b"2504011200000"), Err(TimeError::Length(13)));
        assert_eq!(parse(b"25040112000000a+"), Err(TimeError::NotDigits));
        assert_eq!(parse(b"250401120000000X"), Err(TimeError::Kind));
        for bad in [
            &b"251301120000000+"[..],
            b"250431120000000+",
            b"250229120000000+",
            b"250401240000000+",
            b"250401126000000+",
            b"250401120060000+",
            b"250401120000060+",
            b"000001000000100R",
            b"000001000000004R",
        ] {
            assert_eq!(parse(bad), Err(TimeError::Range), "{bad:?}");
        }
    }

    #[test]
    fn formats_what_it_reads() {
        for ms in [
            946_684_800_000,
            1_743_505_200_500,
            951_782_400_000,
            4_102_444_799_900,
        ] {
            let text = format_absolute(ms);
            assert_eq!(
                parse(text.as_bytes()).unwrap(),
                Some(SmppTime::Absolute(ms))
            );
        }
        assert_eq!(format_absolute(1_743_505_200_000), "250401110000000+");
    }
}
