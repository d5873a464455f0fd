//! A small RFC 3339 / `xsd:dateTime` parser, enough to compare SCIM `dateTime` values
//! chronologically (e.g. `2024-01-02T03:04:05Z` equals `2024-01-02T04:04:05.000+01:00`).

/// A point in time: seconds since the Unix epoch plus nanoseconds. Ordering is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    secs: i64,
    nanos: u32,
}

/// Parses `YYYY-MM-DD(T|t| )hh:mm:ss[.fraction][Z|z|(+|-)hh:mm]`. A missing offset is taken as
/// UTC (as `xsd:dateTime` allows). Fraction digits beyond nanoseconds are ignored. Returns
/// `None` for anything malformed or out of range (a leap second `:60` is accepted).
pub fn parse(s: &str) -> Option<Instant> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = i64::from(c.digits(4)?);
    c.byte(b'-')?;
    let month = c.digits(2)?;
    c.byte(b'-')?;
    let day = c.digits(2)?;
    if !matches!(c.next()?, b'T' | b't' | b' ') {
        return None;
    }
    let hour = c.digits(2)?;
    c.byte(b':')?;
    let minute = c.digits(2)?;
    c.byte(b':')?;
    let second = c.digits(2)?;
    let nanos = c.fraction()?;
    let offset = c.offset()?;
    if c.i != c.b.len() || !valid_date(year, month, day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset;
    Some(Instant { secs, nanos })
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.b.get(self.i)?;
        self.i += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..n {
            let d = self.next()?;
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
        }
        Some(value)
    }

    /// An optional `.digits` fraction, as nanoseconds.
    fn fraction(&mut self) -> Option<u32> {
        if self.peek() != Some(b'.') {
            return Some(0);
        }
        self.i += 1;
        let mut nanos = 0u32;
        let mut count = 0usize;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            if count < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            count += 1;
            self.i += 1;
        }
        if count == 0 {
            return None;
        }
        for _ in count..9 {
            nanos *= 10;
        }
        Some(nanos)
    }

    /// The UTC offset in seconds (east positive); absent means UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.peek() {
            None => return Some(0),
            Some(b'Z' | b'z') => {
                self.i += 1;
                return Some(0);
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return None,
        };
        self.i += 1;
        let hours = self.digits(2)?;
        self.byte(b':')?;
        let minutes = self.digits(2)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * i64::from(hours * 3600 + minutes * 60))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn valid_date(year: i64, month: u32, day: u32) -> bool {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=max).contains(&day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known "days from civil"
/// computation over 400-year eras).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> i64 {
        parse(s).unwrap().secs
    }

    #[test]
    fn epoch_and_known_values() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(secs("2024-02-29T12:00:00Z"), 1_709_208_000);
        assert_eq!(secs("1969-12-31T23:59:59Z"), -1);
    }

    #[test]
    fn offsets_and_fractions_normalize() {
        let a = parse("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(parse("2024-01-02T03:04:05+00:00"), Some(a));
        assert_eq!(parse("2024-01-02T04:04:05.000+01:00"), Some(a));
        assert_eq!(parse("2024-01-01T22:04:05-05:00"), Some(a));
        assert_eq!(parse("2024-01-02t03:04:05z"), Some(a));
        assert_eq!(parse("2024-01-02T03:04:05"), Some(a));
        assert!(parse("2024-01-02T03:04:05.5Z").unwrap() > a);
        assert_eq!(
            parse("2024-01-02T03:04:05.1234567891Z").unwrap().nanos,
            123_456_789
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2024-01-02",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Zjunk",
            "24-01-01T00:00:00Z",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
