//! The target billing database.
//!
//! Every statement is checked by the host against the step's grant (statement kind and
//! every table it touches), and all statements of a step run in one transaction that
//! commits only if the step succeeds. Write one statement per call, bind every value as a
//! parameter (`$1`, `$2`, ... on both dialects) and never format values into SQL.

use crate::__private::wit::runbook::plugin::{db as wit, types};
use crate::{CallError, Column, Rows, Value};

/// The SQL dialect of the target database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// Choose between two spellings of a statement.
    pub fn pick<'a>(self, postgres: &'a str, sqlite: &'a str) -> &'a str {
        match self {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => sqlite,
        }
    }

    /// An expression giving the UTC month (`YYYY-MM`) of a timestamp column. Takes a
    /// `'static` column name because only the plugin's own SQL belongs in a statement.
    pub fn month_of(self, column: &'static str) -> String {
        match self {
            // AT TIME ZONE makes the month independent of the session's time zone.
            Dialect::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"),
            Dialect::Sqlite => format!("strftime('%Y-%m', {column})"),
        }
    }

    /// An expression giving the current UTC month (`YYYY-MM`) by the database's clock.
    pub fn current_month(self) -> &'static str {
        self.pick(
            "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM')",
            "strftime('%Y-%m', 'now')",
        )
    }
}

/// Which dialect the target database speaks.
pub fn dialect() -> Dialect {
    match wit::dialect() {
        wit::SqlDialect::Postgres => Dialect::Postgres,
        wit::SqlDialect::Sqlite => Dialect::Sqlite,
    }
}

/// Run exactly one statement that returns rows (`SELECT`, or `... RETURNING`).
pub fn query(sql: &str, params: &[Value]) -> Result<Rows, CallError> {
    let rows = wit::query(sql, &to_wit(params)).map_err(from_wit_error)?;
    let columns = rows
        .columns
        .into_iter()
        .map(|c| Column {
            name: c.name,
            type_name: c.type_name,
        })
        .collect();
    let values = rows
        .rows
        .into_iter()
        .map(|row| row.into_iter().map(from_wit).collect())
        .collect();
    Ok(Rows::new(columns, values))
}

/// Run exactly one statement and return how many rows it affected.
pub fn execute(sql: &str, params: &[Value]) -> Result<u64, CallError> {
    wit::execute(sql, &to_wit(params)).map_err(from_wit_error)
}

fn to_wit(params: &[Value]) -> Vec<types::Value> {
    params
        .iter()
        .map(|v| match v.clone() {
            Value::Null => types::Value::Null,
            Value::Boolean(b) => types::Value::Boolean(b),
            Value::Integer(i) => types::Value::Integer(i),
            Value::Float(f) => types::Value::Float(f),
            Value::Text(s) => types::Value::Text(s),
            Value::Bytes(b) => types::Value::Bytes(b),
            Value::Timestamp(t) => types::Value::Timestamp(t),
        })
        .collect()
}

fn from_wit(v: types::Value) -> Value {
    match v {
        types::Value::Null => Value::Null,
        types::Value::Boolean(b) => Value::Boolean(b),
        types::Value::Integer(i) => Value::Integer(i),
        types::Value::Float(f) => Value::Float(f),
        types::Value::Text(s) => Value::Text(s),
        types::Value::Bytes(b) => Value::Bytes(b),
        types::Value::Timestamp(t) => Value::Timestamp(t),
    }
}

pub(crate) fn from_wit_error(e: types::CallError) -> CallError {
    match e {
        types::CallError::Denied(m) => CallError::Denied(m),
        types::CallError::Invalid(m) => CallError::Invalid(m),
        types::CallError::Failed(m) => CallError::Failed(m),
        types::CallError::Unavailable(m) => CallError::Unavailable(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_expressions() {
        assert_eq!(
            Dialect::Postgres.month_of("paid_at"),
            "to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM')"
        );
        assert_eq!(
            Dialect::Sqlite.month_of("paid_at"),
            "strftime('%Y-%m', paid_at)"
        );
        assert_eq!(Dialect::Sqlite.pick("a", "b"), "b");
    }

    #[test]
    fn values_round_trip_through_wit() {
        let vals = vec![
            Value::Null,
            Value::Boolean(true),
            Value::Integer(-1),
            Value::Float(0.5),
            Value::Text("t".into()),
            Value::Bytes(vec![1, 2]),
            Value::Timestamp("2026-10-05T12:00:00Z".into()),
        ];
        let back: Vec<Value> = to_wit(&vals).into_iter().map(from_wit).collect();
        assert_eq!(back, vals);
    }
}
