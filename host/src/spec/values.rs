//! Value rules shared by every file kind, written once: durations, sizes, slugs and
//! identifiers, and required strings.

use std::time::Duration;

use toml::Spanned;

use super::diagnostic::Diagnostics;
use super::read::Span;

/// Why a duration did not parse. The wording follows "invalid timeout \"30\": …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a number followed by a unit")]
    NoNumber,
    #[error("the number is too large")]
    TooLarge,
    #[error("must be greater than zero")]
    Zero,
    #[error("missing unit")]
    MissingUnit,
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
}

/// `"500ms"`, `"30s"`, `"2m"`, `"24h"`, `"7d"`: a whole, positive number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::NoNumber);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    if n == 0 {
        return Err(DurationError::Zero);
    }
    let seconds = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or(DurationError::TooLarge)
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        "" => Err(DurationError::MissingUnit),
        other => Err(DurationError::UnknownUnit(other.to_string())),
    }
}

/// Why a size did not parse. The wording follows "invalid max_result_bytes \"16XB\": …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("expected a number of bytes, optionally followed by a unit")]
    NoNumber,
    #[error("the number is too large")]
    TooLarge,
    #[error("must be greater than zero")]
    Zero,
    #[error("unknown unit `{0}` (use B, KB, MB, GB, KiB, MiB or GiB)")]
    UnknownUnit(String),
}

/// `"16MiB"`, `"1MB"`, `"512KiB"`, `"4096"`: a whole, positive number of bytes and an
/// optional unit, decimal (`KB` = 1000) or binary (`KiB` = 1024), case as written.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(SizeError::NoNumber);
    }
    let n: u64 = digits.parse().map_err(|_| SizeError::TooLarge)?;
    if n == 0 {
        return Err(SizeError::Zero);
    }
    let per: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(SizeError::UnknownUnit(other.to_string())),
    };
    n.checked_mul(per).ok_or(SizeError::TooLarge)
}

/// A size as written in TOML: an integer of bytes or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> serde::Deserialize<'de> for RawSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl serde::de::Visitor<'_> for SizeVisitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of bytes or a string like \"16MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// A size at `key`, reported at its value when it does not parse or is not positive.
pub fn size(value: &Spanned<RawSize>, key: &str, diags: &mut Diagnostics) -> Option<u64> {
    let parsed = match value.get_ref() {
        RawSize::Bytes(n) if *n > 0 => Ok(n.unsigned_abs()),
        RawSize::Bytes(_) => Err(SizeError::Zero),
        RawSize::Text(text) => parse_size(text),
    };
    parsed
        .map_err(|reason| {
            let shown = match value.get_ref() {
                RawSize::Bytes(n) => n.to_string(),
                RawSize::Text(t) => format!("{t:?}"),
            };
            diags.error_with_help(
                value.span(),
                format!("invalid {key} {shown}: {reason}"),
                "write a whole number of bytes, or a number and a unit, like \"512KiB\" or \"16MiB\"",
            )
        })
        .ok()
}

/// A duration at `key`, reported at its value when it does not parse.
pub fn duration(value: &Spanned<String>, key: &str, diags: &mut Diagnostics) -> Option<Duration> {
    parse_duration(value.get_ref())
        .map_err(|reason| {
            diags.error_with_help(
                value.span(),
                format!("invalid {key} {:?}: {reason}", value.get_ref()),
                "write a whole number and a unit (ms, s, m, h or d), like \"2s\" or \"24h\"",
            )
        })
        .ok()
}

/// `[a-z0-9-]+`, plus `_` when `underscore` is set: runbook names, step ids, plugin names.
pub fn is_slug(s: &str, underscore: bool) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (underscore && c == '_')
        })
}

/// Names read in templates as `params.<name>` must be identifiers.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A key every file of its kind must have, and must not leave blank.
pub fn required_string(
    value: &Option<Spanned<String>>,
    key: &str,
    missing_span: Span,
    diags: &mut Diagnostics,
) -> String {
    match value {
        Some(v) if v.get_ref().trim().is_empty() => {
            diags.error(v.span(), format!("`{key}` must not be empty"));
            String::new()
        }
        Some(v) => v.get_ref().clone(),
        None => {
            diags.error(missing_span, format!("missing required key `{key}`"));
            String::new()
        }
    }
}

/// The known name most like `name`, for a "did you mean": close enough to be a typo
/// (Jaro-Winkler above 0.8), else none.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        DurationError, SizeError, closest, is_identifier, is_slug, parse_duration, parse_size,
    };

    #[test]
    fn a_typo_finds_its_name_and_a_stranger_finds_none() {
        let known = ["issue-refund", "billing-report", "organization_id"];
        assert_eq!(closest("isue-refund", known), Some("issue-refund"));
        assert_eq!(closest("organization", known), Some("organization_id"));
        assert_eq!(closest("zzz", known), None);
    }

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("3KB"), Ok(3000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(parse_size(""), Err(SizeError::NoNumber));
        assert_eq!(parse_size("MiB"), Err(SizeError::NoNumber));
        assert_eq!(parse_size("-1"), Err(SizeError::NoNumber));
        assert_eq!(parse_size("0KiB"), Err(SizeError::Zero));
        assert_eq!(
            parse_size("16mib"),
            Err(SizeError::UnknownUnit("mib".into()))
        );
        assert_eq!(
            parse_size("1.5MiB"),
            Err(SizeError::UnknownUnit(".5MiB".into()))
        );
        assert_eq!(parse_size("99999999999999999999"), Err(SizeError::TooLarge));
        assert_eq!(parse_size("17179869184GiB"), Err(SizeError::TooLarge));
    }

    #[test]
    fn durations_need_a_unit_and_a_positive_value() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("30"), Err(DurationError::MissingUnit));
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(
            parse_duration("1w"),
            Err(DurationError::UnknownUnit("w".into()))
        );
        assert_eq!(parse_duration("s"), Err(DurationError::NoNumber));
    }

    #[test]
    fn durations_that_overflow_are_refused_not_wrapped() {
        assert_eq!(
            parse_duration("99999999999999999999999s"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            parse_duration("999999999999999999d"),
            Err(DurationError::TooLarge)
        );
    }

    #[test]
    fn slugs_and_identifiers() {
        assert!(is_slug("webhook-failure", false));
        assert!(!is_slug("step_1", false));
        assert!(is_slug("step_1", true));
        assert!(!is_slug("", true));
        assert!(is_identifier("window_hours"));
        assert!(!is_identifier("1hours"));
        assert!(!is_identifier("Bad-Name"));
    }
}
