//! RFC 3339 date-times exactly as the `time` crate's `Rfc3339` reads and writes them (the typed
//! model's `time::serde::rfc3339`), for the core's schema table ([`crate::schema`]).
//!
//! Why not `time` itself: on this path it is the only user of `time`, whose parser and
//! formatter cost the npm package's WebAssembly 3.2 KB gzipped (measured: 56.6 -> 53.4 KB with
//! the two calls stubbed), a twentieth of a 65 KB budget. The rules below are `time` 0.3's
//! (`parsing/parsable.rs` and `formatting/formattable.rs`, `Rfc3339`), line by line, and
//! `tests/schema_agreement.rs` holds them to `time` on thousands of strings: every one-character
//! edit of several date-times, leap seconds, offsets, fractions of any length.
//!
//! Read: `YYYY-MM-DD`, any one byte, `HH:MM:SS`, an optional `.` and one or more digits (past
//! nine they are ignored), then `Z`/`z` or `±HH:MM` (hour at most 23); a valid calendar date
//! and time; second 60 only as the last second of a month in UTC, read as 59.999999999.
//! Written: `YYYY-MM-DDTHH:MM:SS`, the fraction without trailing zeros when not zero, `Z` for
//! a zero offset, else `±HH:MM`.

/// A date-time as read: its local fields and its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanosecond: u32,
    /// The offset from UTC, in minutes.
    offset: i64,
}

fn digits(bytes: &[u8], from: usize, n: usize) -> Option<i64> {
    let part = bytes.get(from..from + n)?;
    part.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn expect(bytes: &[u8], at: usize, byte: u8) -> Option<()> {
    (bytes.get(at) == Some(&byte)).then_some(())
}

fn leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count from 1970-01-01 (`civil_from_days`): year, month, day.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl DateTime {
    /// Reads `text` as `time`'s `Rfc3339` does: `None` when it would refuse it.
    pub fn parse(text: &str) -> Option<DateTime> {
        let b = text.as_bytes();
        let year = digits(b, 0, 4)?;
        expect(b, 4, b'-')?;
        let month = digits(b, 5, 2)?;
        expect(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        // Any one byte separates the date and the time (`T`, `t`, a space, …).
        b.get(10)?;
        let hour = digits(b, 11, 2)?;
        expect(b, 13, b':')?;
        let minute = digits(b, 14, 2)?;
        expect(b, 16, b':')?;
        let mut second = digits(b, 17, 2)?;
        let mut at = 19;
        let mut nanosecond = 0u32;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let mut multiplier = 100_000_000u32;
            let start = at;
            while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
                nanosecond += u32::from(d - b'0') * multiplier;
                multiplier /= 10;
                at += 1;
            }
            if at == start {
                return None;
            }
        }
        let offset = match b.get(at)? {
            b'Z' | b'z' => {
                at += 1;
                0
            }
            &sign @ (b'+' | b'-') => {
                let hours = digits(b, at + 1, 2).filter(|&h| h <= 23)?;
                expect(b, at + 3, b':')?;
                let minutes = digits(b, at + 4, 2).filter(|&m| m <= 59)?;
                at += 6;
                let total = hours * 60 + minutes;
                if sign == b'-' {
                    -total
                } else {
                    total
                }
            }
            _ => return None,
        };
        if at != b.len() {
            return None;
        }
        // A leap second is read as the nanosecond before the next second.
        let leap = second == 60;
        if leap {
            second = 59;
            nanosecond = 999_999_999;
        }
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour <= 23
            && minute <= 59
            && second <= 59;
        if !valid {
            return None;
        }
        let dt = DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanosecond,
            offset,
        };
        if leap {
            // Only as the last second of a month, in UTC.
            let utc = dt.unix_timestamp();
            let (y, m, d) = civil_from_days(utc.div_euclid(86_400));
            if utc.rem_euclid(86_400) != 86_399 || d != days_in_month(y, m) {
                return None;
            }
        }
        Some(dt)
    }

    /// The UTC date-time of the unix time `secs` (whole seconds).
    pub fn from_unix(secs: i64) -> DateTime {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let in_day = secs.rem_euclid(86_400);
        DateTime {
            year,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
            nanosecond: 0,
            offset: 0,
        }
    }

    /// Unix seconds (the fraction dropped, as `time`'s `unix_timestamp`).
    pub fn unix_timestamp(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.minute * 60
            + self.second
            - self.offset * 60
    }

    /// The fraction of its second, in nanoseconds (a device list orders activations made
    /// within one second by it, as `time` did).
    pub fn nanosecond(&self) -> u32 {
        self.nanosecond
    }

    /// Writes it as `time`'s `Rfc3339` formats it.
    pub fn write(&self, out: &mut String) {
        fn two(out: &mut String, n: i64) {
            let n = n.unsigned_abs();
            out.push(char::from(b'0' + (n / 10 % 10) as u8));
            out.push(char::from(b'0' + (n % 10) as u8));
        }
        two(out, self.year / 100);
        two(out, self.year % 100);
        out.push('-');
        two(out, self.month);
        out.push('-');
        two(out, self.day);
        out.push('T');
        two(out, self.hour);
        out.push(':');
        two(out, self.minute);
        out.push(':');
        two(out, self.second);
        if self.nanosecond != 0 {
            out.push('.');
            let mut n = self.nanosecond;
            let mut digits = [0u8; 9];
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
            for &d in &digits[..len] {
                out.push(char::from(d));
            }
        }
        if self.offset == 0 {
            out.push('Z');
            return;
        }
        out.push(if self.offset < 0 { '-' } else { '+' });
        two(out, self.offset / 60);
        out.push(':');
        two(out, self.offset % 60);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    /// Parse, timestamp and written text, against `time`, on a set of hand-picked edges
    /// (the exhaustive comparison is tests/schema_agreement.rs).
    #[test]
    fn agrees_with_time_on_edges() {
        for text in [
            "2026-08-01T10:14:58.120000Z",
            "2026-08-01t10:14:58z",
            "2026-08-01 10:14:58+02:00",
            "1999-12-31T23:59:60Z",
            "1999-12-31T23:59:60.5Z",
            "2000-01-01T00:59:60+01:00",
            "2000-06-30T23:59:60Z",
            "2000-06-29T23:59:60Z",
            "2000-02-29T00:00:00-00:00",
            "1900-02-29T00:00:00Z",
            "0000-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59.999999999999+23:59",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00Zx",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "+026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000000001-00:30",
        ] {
            let ours = DateTime::parse(text);
            let theirs = OffsetDateTime::parse(text, &Rfc3339).ok();
            assert_eq!(ours.is_some(), theirs.is_some(), "{text}");
            if let (Some(o), Some(t)) = (ours, theirs) {
                assert_eq!(o.unix_timestamp(), t.unix_timestamp(), "{text}");
                let mut written = String::new();
                o.write(&mut written);
                assert_eq!(written, t.format(&Rfc3339).unwrap(), "{text}");
            }
        }
    }

    #[test]
    fn civil_days_roundtrip() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
