//! [`Rows`] returned by [`db::query`](crate::db::query), read by column name.
//!
//! Columns are looked up by name, exactly first and then ignoring ASCII case: PostgreSQL
//! folds unquoted aliases to lower case and SQLite keeps them as written, so `AS oldestAt`
//! is `oldestat` on one and `oldestAt` on the other.

use std::fmt;

use serde_json::Map;

use crate::{Failure, FromValue, Value, ValueError};

/// A result column: its name and the database's own type name (`INT8`, `TEXT`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_name: String,
}

/// The rows of one query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
}

/// One row, borrowed from its [`Rows`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [Column],
    values: &'a [Value],
}

/// A row did not have the shape the plugin expected. Becomes a [`Failure`] with code
/// `schema-mismatch`: the database and the plugin disagree, which is a bug to fix, not a
/// business condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    MissingColumn {
        column: String,
        available: Vec<String>,
    },
    Value {
        column: String,
        error: ValueError,
    },
    RowCount {
        expected: &'static str,
        found: usize,
    },
    /// [`Row::decode`] could not build the type: serde's own message (an unknown enum
    /// variant, a number out of range, ...), with the column when it is about one.
    Decode {
        column: Option<String>,
        message: String,
    },
}

impl Rows {
    /// Build rows by hand (tests, fixtures). Each row must have one value per column.
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<Value>>) -> Rows {
        debug_assert!(rows.iter().all(|r| r.len() == columns.len()));
        Rows { columns, rows }
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// The only row, e.g. of an aggregate query; an error if there are none or several.
    pub fn one(&self) -> Result<Row<'_>, RowError> {
        match self.len() {
            1 => Ok(self.iter().next().expect("one row")),
            found => Err(RowError::RowCount {
                expected: "exactly one row",
                found,
            }),
        }
    }

    /// Every row read as `T`, see [`Row::decode`].
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, RowError> {
        self.iter().map(|row| row.decode()).collect()
    }

    /// Every row as a JSON object keyed by column name (for samples in an output).
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        self.iter().map(|r| r.to_json()).collect()
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Row<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<'a> Row<'a> {
    /// Read column `name` as `T`; NULL only reads as `Option<T>` (see [`Row::get_opt`]).
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T, RowError> {
        T::from_value(self.value(name)?).map_err(|error| RowError::Value {
            column: name.to_owned(),
            error,
        })
    }

    /// Read the row as `T`, usually a `#[derive(Deserialize)]` struct whose fields name
    /// the columns (`#[serde(rename)]` for a different name). Each field is read with the
    /// rules of [`Row::get`]: NULL only as an `Option`, [`Timestamp`](crate::Timestamp)
    /// fields from either backend's timestamps, enums from text (unit variants), SQLite's
    /// 0/1 as `bool`. Every field needs its column, `Option` fields too (a missing column
    /// is a query that does not match the type, not a NULL); extra columns are ignored.
    ///
    /// ```
    /// # use runbook_sdk::{Column, Rows, Value, RowError};
    /// #[derive(serde::Deserialize)]
    /// struct Quota { dimension: String, used: i64, reset_at: Option<runbook_sdk::Timestamp> }
    ///
    /// # let column = |n: &str| Column { name: n.into(), type_name: "TEXT".into() };
    /// # let rows = Rows::new(vec![column("dimension"), column("used"), column("reset_at")],
    /// #     vec![vec![Value::Text("api_calls".into()), Value::Integer(3), Value::Null]]);
    /// let quota: Quota = rows.one()?.decode()?;
    /// assert_eq!((quota.dimension.as_str(), quota.used, quota.reset_at), ("api_calls", 3, None));
    /// # Ok::<(), RowError>(())
    /// ```
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, RowError> {
        crate::decode::decode(self)
    }

    /// Read column `name` as `T`, NULL as `None`.
    pub fn get_opt<T: FromValue>(&self, name: &str) -> Result<Option<T>, RowError> {
        self.get::<Option<T>>(name)
    }

    /// The raw value of column `name`.
    pub fn value(&self, name: &str) -> Result<&'a Value, RowError> {
        let index = self
            .columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| RowError::MissingColumn {
                column: name.to_owned(),
                available: self.columns.iter().map(|c| c.name.clone()).collect(),
            })?;
        Ok(&self.values[index])
    }

    pub fn columns(&self) -> &'a [Column] {
        self.columns
    }

    pub fn values(&self) -> &'a [Value] {
        self.values
    }

    pub fn to_json(&self) -> serde_json::Value {
        let map: Map<String, serde_json::Value> = self
            .columns
            .iter()
            .zip(self.values)
            .map(|(c, v)| (c.name.clone(), v.to_json()))
            .collect();
        serde_json::Value::Object(map)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::MissingColumn { column, available } => {
                write!(
                    f,
                    "no column `{column}` in the result (columns: {})",
                    available.join(", ")
                )
            }
            RowError::Value { column, error } => write!(f, "column `{column}`: {error}"),
            RowError::RowCount { expected, found } => {
                write!(f, "expected {expected}, the query returned {found}")
            }
            RowError::Decode {
                column: Some(column),
                message,
            } => write!(f, "column `{column}`: {message}"),
            RowError::Decode {
                column: None,
                message,
            } => f.write_str(message),
        }
    }
}

impl std::error::Error for RowError {}

impl From<RowError> for Failure {
    fn from(e: RowError) -> Self {
        Failure::new("schema-mismatch", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Rows {
        let col = |name: &str, type_name: &str| Column {
            name: name.into(),
            type_name: type_name.into(),
        };
        Rows::new(
            vec![
                col("organization_id", "INT8"),
                col("count", "INT8"),
                col("oldestat", "TEXT"),
            ],
            vec![
                vec![
                    Value::Integer(1),
                    Value::Integer(3),
                    Value::Text("2026-10-05 12:00:00+00:00".into()),
                ],
                vec![Value::Integer(2), Value::Float(4.0), Value::Null],
            ],
        )
    }

    #[test]
    fn typed_getters() {
        let rows = rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.columns()[1].type_name, "INT8");
        let counts: Vec<i64> = rows.iter().map(|r| r.get("count").unwrap()).collect();
        assert_eq!(counts, [3, 4]);
        let first = rows.first().unwrap();
        assert_eq!(first.get::<u32>("organization_id"), Ok(1));
        assert_eq!(
            first.get::<crate::Timestamp>("oldestAt").unwrap().as_str(),
            "2026-10-05T12:00:00Z",
            "case-insensitive fallback"
        );
        let second = rows.iter().nth(1).unwrap();
        assert_eq!(second.get_opt::<String>("oldestat"), Ok(None));
    }

    #[test]
    fn clear_errors() {
        let rows = rows();
        let row = rows.first().unwrap();
        let err = row.get::<i64>("missing").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no column `missing` in the result (columns: organization_id, count, oldestat)"
        );
        let err = row.get::<i64>("oldestat").unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `oldestat`: expected an integer, found text \"2026-10-05 12:00:00+00:00\""
        );
        let failure: Failure = rows
            .iter()
            .nth(1)
            .unwrap()
            .get::<String>("oldestat")
            .unwrap_err()
            .into();
        assert_eq!(failure.code, "schema-mismatch");
        assert_eq!(
            failure.message,
            "column `oldestat`: expected text, found NULL"
        );
        assert_eq!(
            rows.one().unwrap_err().to_string(),
            "expected exactly one row, the query returned 2"
        );
    }

    #[test]
    fn json_and_iteration() {
        let rows = rows();
        assert_eq!(
            rows.to_json()[1],
            serde_json::json!({"organization_id": 2, "count": 4.0, "oldestat": null})
        );
        let mut n = 0;
        for row in &rows {
            n += row.get::<i64>("count").unwrap();
        }
        assert_eq!(n, 7);
        assert!(Rows::default().one().is_err());
    }
}
