//! [`Timestamp`]: one spelling for instants, whichever database they came from.
//!
//! PostgreSQL hands timestamps over as `Value::Timestamp` (RFC 3339), SQLite as whatever
//! text was stored (`2026-10-05 12:00:00+00:00`, or `CURRENT_TIMESTAMP`'s
//! `2026-10-05 12:00:00`, which is UTC). A plugin that puts timestamps in its output should
//! read them as `Timestamp` so a runbook gives the same output on both dialects.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in UTC, normalised to `YYYY-MM-DDTHH:MM:SS[.fff]Z`. Ordering is
/// chronological (the normal form sorts as text). Text without an offset is taken as UTC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(String);

impl Timestamp {
    /// Parse `YYYY-MM-DD`, optionally followed by `T` or a space, `HH:MM[:SS[.fff]]` and an
    /// offset (`Z`, `+HH`, `+HHMM`, `+HH:MM`). Returns `None` for anything else.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let mut p = Parser(text.trim().as_bytes());
        let y = p.digits(4)?;
        p.expect(b'-')?;
        let mo = p.digits(2)?;
        p.expect(b'-')?;
        let d = p.digits(2)?;
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return None;
        }
        let (mut h, mut mi, mut s, mut frac) = (0, 0, 0, "");
        if p.eat(b"Tt ") {
            h = p.digits(2)?;
            p.expect(b':')?;
            mi = p.digits(2)?;
            if p.eat(b":") {
                s = p.digits(2)?;
                if p.eat(b".") {
                    frac = p.fraction()?;
                }
            }
        }
        if h > 23 || mi > 59 || s > 59 {
            return None;
        }
        let offset = p.offset_seconds()?;
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let t = secs.rem_euclid(86_400);
        let frac = frac.trim_end_matches('0');
        let dot = if frac.is_empty() { "" } else { "." };
        Some(Timestamp(format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{dot}{frac}Z",
            t / 3600,
            t % 3600 / 60,
            t % 60
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normal form, without copying it.
    pub fn into_string(self) -> String {
        self.0
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> &str {
        &self.0[..10]
    }

    /// `YYYY-MM`, the key monthly reports group by.
    pub fn month(&self) -> &str {
        &self.0[..7]
    }

    /// Whole seconds since 1970-01-01T00:00:00Z, for durations between two timestamps.
    pub fn unix_seconds(&self) -> i64 {
        let b = self.0.as_bytes();
        let n = |r: std::ops::Range<usize>| -> i64 {
            b[r].iter().fold(0, |acc, c| acc * 10 + i64::from(c - b'0'))
        };
        days_from_civil(n(0..4), n(5..7), n(8..10)) * 86_400
            + n(11..13) * 3600
            + n(14..16) * 60
            + n(17..19)
    }

    /// The instant `seconds` after 1970-01-01T00:00:00Z (how Stripe spells instants).
    /// `None` outside the years 0000..=9999.
    pub fn from_unix_seconds(seconds: i64) -> Option<Timestamp> {
        let (y, mo, d) = civil_from_days(seconds.div_euclid(86_400));
        if !(0..=9999).contains(&y) {
            return None;
        }
        let t = seconds.rem_euclid(86_400);
        Some(Timestamp(format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
            t / 3600,
            t % 3600 / 60,
            t % 60
        )))
    }

    /// This instant plus `days` whole days (negative: minus), to the whole second.
    pub fn plus_days(&self, days: i64) -> Option<Timestamp> {
        Timestamp::from_unix_seconds(self.unix_seconds().checked_add(days.checked_mul(86_400)?)?)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {text:?}")))
    }
}

/// A cursor over ASCII bytes; every step returns `None` on mismatch.
#[derive(Clone, Copy)]
struct Parser<'a>(&'a [u8]);

impl<'a> Parser<'a> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let head = self.0.get(..n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        Some(head.iter().fold(0, |acc, c| acc * 10 + i64::from(c - b'0')))
    }

    /// Consume one byte that must be `byte`.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(&[byte]).then_some(())
    }

    /// Consume one byte if it is one of `bytes`.
    fn eat(&mut self, bytes: &[u8]) -> bool {
        match self.0.first() {
            Some(b) if bytes.contains(b) => {
                self.0 = &self.0[1..];
                true
            }
            _ => false,
        }
    }

    fn fraction(&mut self) -> Option<&'a str> {
        let n = self.0.iter().take_while(|c| c.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(n);
        self.0 = rest;
        (n > 0).then(|| std::str::from_utf8(digits).ok())?
    }

    /// What is left must be empty (UTC), `Z`, or `±HH[[:]MM]`.
    fn offset_seconds(mut self) -> Option<i64> {
        let sign = match self.0.first() {
            None => return Some(0),
            Some(b'Z' | b'z') if self.0.len() == 1 => return Some(0),
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return None,
        };
        self.0 = &self.0[1..];
        let h = self.digits(2)?;
        self.eat(b":");
        let m = if self.0.is_empty() {
            0
        } else {
            self.digits(2)?
        };
        (self.0.is_empty() && h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil and its inverse (proleptic Gregorian, 1970-01-01 = 0).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        Timestamp::parse(s).map(|t| t.0)
    }

    #[test]
    fn both_dialects_spell_the_same_instant_the_same_way() {
        let want = Some("2026-10-05T12:00:00Z".to_string());
        assert_eq!(norm("2026-10-05 12:00:00+00:00"), want); // SQLite demo data
        assert_eq!(norm("2026-10-05 12:00:00+00"), want); // psql's text form
        assert_eq!(norm("2026-10-05 12:00:00"), want); // SQLite CURRENT_TIMESTAMP
        assert_eq!(norm("2026-10-05T12:00:00Z"), want); // RFC 3339 from the host
        assert_eq!(norm("2026-10-05T12:00:00+00:00"), want);
        assert_eq!(norm("2026-10-05T12:00:00.000Z"), want);
    }

    #[test]
    fn offsets_are_converted_to_utc_across_day_and_year_boundaries() {
        assert_eq!(
            norm("2026-12-31T23:30:00-01:00").unwrap(),
            "2027-01-01T00:30:00Z"
        );
        assert_eq!(
            norm("2026-03-01 01:00:00+0200").unwrap(),
            "2026-02-28T23:00:00Z"
        );
        assert_eq!(
            norm("2028-03-01 01:00:00+02").unwrap(),
            "2028-02-29T23:00:00Z"
        );
        assert_eq!(
            norm("2026-10-05T12:00:00.120+01:00").unwrap(),
            "2026-10-05T11:00:00.12Z"
        );
    }

    #[test]
    fn dates_and_short_times() {
        assert_eq!(norm("2026-11-01").unwrap(), "2026-11-01T00:00:00Z");
        assert_eq!(norm("2026-11-01 08:15").unwrap(), "2026-11-01T08:15:00Z");
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-29",
            "2026-10-05 24:00:00",
            "2026-10-05 12:00:00+",
            "2026-10-05 12:00:00 UTC",
            "2026-10-05T",
            "12345",
        ] {
            assert_eq!(norm(bad), None, "{bad}");
        }
    }

    #[test]
    fn accessors() {
        let t = Timestamp::parse("2026-10-05 12:34:56+00:00").unwrap();
        assert_eq!(t.date(), "2026-10-05");
        assert_eq!(t.month(), "2026-10");
        assert_eq!(t.unix_seconds(), 1_791_203_696);
        assert_eq!(Timestamp::parse("1970-01-01").unwrap().unix_seconds(), 0);
        assert!(t < Timestamp::parse("2026-10-05T12:35:00Z").unwrap());
    }

    #[test]
    fn unix_seconds_round_trip() {
        let t = Timestamp::from_unix_seconds(1_791_203_696).unwrap();
        assert_eq!(t.as_str(), "2026-10-05T12:34:56Z");
        assert_eq!(t.unix_seconds(), 1_791_203_696);
        assert_eq!(
            Timestamp::from_unix_seconds(0).unwrap().as_str(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_seconds(-1).unwrap().as_str(),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(Timestamp::from_unix_seconds(i64::MAX / 2), None);
    }

    #[test]
    fn adding_days() {
        let t = Timestamp::parse("2026-02-26 08:00:00.5+00:00").unwrap();
        assert_eq!(t.plus_days(7).unwrap().as_str(), "2026-03-05T08:00:00Z");
        assert_eq!(t.plus_days(-60).unwrap().as_str(), "2025-12-28T08:00:00Z");
        assert_eq!(t.plus_days(i64::MAX), None);
    }

    #[test]
    fn serde_uses_the_normal_form() {
        let t: Timestamp = serde_json::from_str(r#""2026-10-05 12:00:00+00""#).unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""2026-10-05T12:00:00Z""#
        );
        assert!(serde_json::from_str::<Timestamp>(r#""soon""#).is_err());
    }
}
