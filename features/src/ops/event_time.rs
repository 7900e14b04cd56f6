//! Event times: RFC 3339 strings or epoch numbers, read into milliseconds since the epoch (UTC).

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};

use super::column;
use crate::config::TimeUnit;
use crate::error::{DecodeError, DecodeErrorKind, Result};

/// Earliest accepted event time, 0000-01-01T00:00:00Z, in ms.
pub const MIN_TIME_MS: i64 = -62_167_219_200_000;
/// Latest accepted event time, 9999-12-31T23:59:59.999Z, in ms.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Days from 1970-01-01 to the civil date `y-m-d` (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an RFC 3339 date-time ("2024-05-01T13:45:00Z", "2024-05-01 13:45:00.250+02:00")
/// into UTC milliseconds; digits past milliseconds are truncated. Leap seconds (":60") are
/// refused.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i64::from(h * 60 + m);
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds =
        days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    let ms = seconds * 1000 + millis;
    (MIN_TIME_MS..=MAX_TIME_MS).contains(&ms).then_some(ms)
}

/// Epoch seconds or milliseconds as whole milliseconds (floored), if in range.
pub fn epoch_ms(x: f64, unit: TimeUnit) -> Option<i64> {
    let ms = match unit {
        TimeUnit::Seconds => x * 1000.0,
        TimeUnit::Milliseconds => x,
    }
    .floor();
    // The range check on the f64 keeps the cast exact and refuses NaN.
    ((MIN_TIME_MS as f64)..=(MAX_TIME_MS as f64))
        .contains(&ms)
        .then_some(ms as i64)
}

/// An event-time column of a batch.
pub(crate) enum TimeColumn<'b> {
    Number(&'b Float64Array, TimeUnit),
    String(&'b StringArray),
}

impl<'b> TimeColumn<'b> {
    pub(crate) fn new(
        batch: &'b RecordBatch,
        index: usize,
        unit: Option<TimeUnit>,
    ) -> Result<Self> {
        Ok(match unit {
            Some(unit) => TimeColumn::Number(column::<Float64Array>(batch, index)?, unit),
            None => TimeColumn::String(column::<StringArray>(batch, index)?),
        })
    }

    /// Row `row`'s event time in ms, or why it has none.
    pub(crate) fn get(&self, row: usize, field: &str) -> std::result::Result<i64, DecodeError> {
        let missing = || DecodeError::field(DecodeErrorKind::MissingField, field, "no event time");
        let bad = |what: String| {
            DecodeError::field(
                DecodeErrorKind::BadTimestamp,
                field,
                format!("bad timestamp {what}"),
            )
        };
        match self {
            TimeColumn::Number(a, unit) => {
                if a.is_null(row) {
                    return Err(missing());
                }
                let x = a.value(row);
                epoch_ms(x, *unit).ok_or_else(|| bad(format!("{x}: out of range")))
            }
            TimeColumn::String(a) => {
                if a.is_null(row) {
                    return Err(missing());
                }
                let s = a.value(row);
                parse_rfc3339(s).ok_or_else(|| {
                    let shown: String = s.chars().take(40).collect();
                    bad(format!("\"{shown}\": not RFC 3339"))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339("1970-01-01t00:00:00.123456z"), Some(123));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31 23:00:00-01:00"), Some(0));
        // 2024-02-29 is a leap day; the epoch seconds were checked with `date -d`.
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56Z"),
            Some(1_709_210_096_000)
        );
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(MIN_TIME_MS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_TIME_MS));
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01X00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "२०२४-01-01T00:00:00Z",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_from_civil_matches_a_day_count() {
        let mut days = 0i64;
        for y in 1970..2100 {
            for m in 1..=12 {
                assert_eq!(days_from_civil(y, m, 1), days, "{y}-{m}");
                days += i64::from(days_in_month(y, m));
            }
        }
    }

    #[test]
    fn epochs_are_floored_and_bounded() {
        assert_eq!(epoch_ms(1.2345, TimeUnit::Seconds), Some(1234));
        assert_eq!(epoch_ms(-0.5, TimeUnit::Milliseconds), Some(-1));
        assert_eq!(epoch_ms(1e100, TimeUnit::Seconds), None);
        assert_eq!(epoch_ms(f64::NAN, TimeUnit::Seconds), None);
        assert_eq!(
            epoch_ms(MAX_TIME_MS as f64, TimeUnit::Milliseconds),
            Some(MAX_TIME_MS)
        );
    }
}
