//! Row codec: the one text form of timestamps and JSON in a column, and column reads that
//! turn a bad value into [`StateError::Corrupt`] rather than a panic.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::StateError;

/// The one text form of a timestamp in the store: UTC, microseconds, `Z`.
///
/// Fixed width (and therefore sortable as text) only for years 0000-9999, so
/// anything else is refused rather than stored out of order.
pub(super) fn format_ts(what: &'static str, at: &DateTime<Utc>) -> Result<String, StateError> {
    if !(0..=9999).contains(&at.year()) {
        return Err(StateError::InvalidInput {
            what,
            reason: format!("timestamp {at} is outside the years 0000-9999"),
        });
    }
    Ok(at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub(super) fn parse_ts(
    location: impl FnOnce() -> String,
    text: &str,
) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StateError::Corrupt {
            location: location(),
            reason: format!("bad timestamp {text:?}: {e}"),
        })
}

pub(super) fn to_json<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|source| StateError::Json { what, source })
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    location: impl FnOnce() -> String,
    text: &str,
) -> Result<T, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        location: location(),
        reason: format!("bad JSON: {e}"),
    })
}

/// Reads one column, turning a NULL or mistyped value into [`StateError::Corrupt`].
pub(super) fn col<'r, T>(
    row: &'r AnyRow,
    name: &str,
    location: impl FnOnce() -> String,
) -> Result<T, StateError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(|e| StateError::Corrupt {
        location: format!("{}, column {name}", location()),
        reason: e.to_string(),
    })
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(super) fn opt_ts(
    location: impl FnOnce() -> String,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StateError> {
    text.map(|t| parse_ts(location, &t)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width() {
        let t = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678901234Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_ts("t", &t).unwrap(), "2025-01-02T03:04:05.678901Z");
        let t = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_ts("t", &t).unwrap(), "2025-01-02T03:04:05.000000Z");
        let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 10000, 1, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            format_ts("t", &far),
            Err(StateError::InvalidInput { what: "t", .. })
        ));
    }
}
