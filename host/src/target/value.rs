//! Backend-neutral SQL values and result sets, as they cross the plugin boundary.

use serde::Serialize;

/// One SQL value. Timestamps are RFC 3339 text in UTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum SqlValue {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Timestamp(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub type_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rows {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// Parses a timestamp a plugin sent: RFC 3339, or SQL's `YYYY-MM-DD HH:MM:SS[.f][+00]`
/// (which is what SQLite's `CURRENT_TIMESTAMP` and Postgres' text output look like).
pub fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_sql_and_rfc3339_forms_parse_to_the_same_instant() {
        let expected = parse_timestamp("2026-11-02T10:15:00Z").unwrap();
        for text in [
            "2026-11-02 10:15:00",
            "2026-11-02 10:15:00+00",
            "2026-11-02 10:15:00+00:00",
            "2026-11-02 11:15:00+01:00",
            "2026-11-02T10:15:00.000Z",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
