//! Backend-neutral SQL values and result sets, as they cross the plugin boundary.

use serde::Serialize;

use super::TargetError;

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

impl SqlValue {
    /// What the value costs in memory once decoded: the enum itself and its text or
    /// bytes. Counting the enum too means a million NULLs cost what they really do.
    pub fn estimated_bytes(&self) -> u64 {
        let heap = match self {
            SqlValue::Text(s) | SqlValue::Timestamp(s) => s.len(),
            SqlValue::Bytes(b) => b.len(),
            SqlValue::Null | SqlValue::Boolean(_) | SqlValue::Integer(_) | SqlValue::Float(_) => 0,
        };
        (std::mem::size_of::<SqlValue>() + heap) as u64
    }
}

/// How much of a result one call may hold: rows and estimated decoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCaps {
    pub max_rows: u64,
    pub max_bytes: u64,
}

impl ResultCaps {
    /// No cap: for host-owned statements only.
    pub const NONE: ResultCaps = ResultCaps {
        max_rows: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// Which cap a result went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCap {
    Rows,
    Bytes,
}

/// Rows gathered one at a time, each counted against the caps as it is added, so the
/// caller stops reading the moment a result is too large.
pub(super) struct Gathered {
    caps: ResultCaps,
    bytes: u64,
    pub(super) rows: Rows,
}

impl Gathered {
    pub(super) fn new(caps: ResultCaps) -> Gathered {
        Gathered {
            caps,
            bytes: 0,
            rows: Rows::default(),
        }
    }

    /// The row's vector and values count as well as what they hold.
    pub(super) fn push(&mut self, row: Vec<SqlValue>) -> Result<(), TargetError> {
        if self.rows.rows.len() as u64 >= self.caps.max_rows {
            return Err(TargetError::ResultTooLarge {
                cap: ResultCap::Rows,
                limit: self.caps.max_rows,
            });
        }
        let size = std::mem::size_of::<Vec<SqlValue>>() as u64
            + row.iter().map(SqlValue::estimated_bytes).sum::<u64>();
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.caps.max_bytes {
            return Err(TargetError::ResultTooLarge {
                cap: ResultCap::Bytes,
                limit: self.caps.max_bytes,
            });
        }
        self.rows.rows.push(row);
        Ok(())
    }
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

    #[test]
    fn gathering_stops_at_either_cap() {
        let mut rows = Gathered::new(ResultCaps {
            max_rows: 2,
            max_bytes: u64::MAX,
        });
        rows.push(vec![SqlValue::Null]).unwrap();
        rows.push(vec![SqlValue::Null]).unwrap();
        assert!(matches!(
            rows.push(vec![SqlValue::Null]),
            Err(TargetError::ResultTooLarge {
                cap: ResultCap::Rows,
                limit: 2
            })
        ));
        let mut bytes = Gathered::new(ResultCaps {
            max_rows: u64::MAX,
            max_bytes: 1000,
        });
        bytes.push(vec![SqlValue::Text("x".repeat(500))]).unwrap();
        assert!(matches!(
            bytes.push(vec![SqlValue::Text("x".repeat(500))]),
            Err(TargetError::ResultTooLarge {
                cap: ResultCap::Bytes,
                limit: 1000
            })
        ));
        assert_eq!(bytes.rows.rows.len(), 1, "the row past the cap is not kept");
    }
}
