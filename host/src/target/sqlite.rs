//! SQLite: binding [`SqlValue`] parameters, decoding rows by each value's storage class,
//! and stopping a statement at the step's deadline (a progress handler).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow, SqliteValueRef};
use sqlx::{Column as _, Decode, Row, Sqlite, TypeInfo, ValueRef};

use super::TargetError;
use super::value::{Column, Gathered, ResultCaps, Rows, SqlValue, parse_timestamp};

/// Streams the result row by row, each decoded and counted against `caps` as it comes;
/// past a cap the stream is dropped (the statement stops sending) and the call fails
/// with [`TargetError::ResultTooLarge`]. Nothing but the rows kept is ever held.
pub(super) async fn query(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[SqlValue],
    caps: ResultCaps,
) -> Result<Rows, TargetError> {
    use futures_util::TryStreamExt as _;
    let mut stream = bind_all(sql, params)?.fetch(conn);
    let mut gathered = Gathered::new(caps);
    while let Some(row) = stream.try_next().await? {
        if gathered.rows.columns.is_empty() {
            gathered.rows.columns = columns_of(&row);
        }
        gathered.push(decode_row(&row, &gathered.rows.columns)?)?;
    }
    Ok(gathered.rows)
}

pub(super) async fn execute(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[SqlValue],
) -> Result<u64, TargetError> {
    let done = bind_all(sql, params)?.execute(conn).await?;
    Ok(done.rows_affected())
}

/// Transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`), unprepared.
pub(super) async fn control(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> Result<(), TargetError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await?;
    Ok(())
}

/// Virtual-machine instructions between two looks at the clock: a clock read per
/// thousands of instructions costs nothing measurable and stops a statement within
/// well under a millisecond of the deadline.
const PROGRESS_OPS: i32 = 4096;

const ARMED: u8 = 0;
const OFF: u8 = 1;
const NOW: u8 = 2;

/// What the connection's progress handler consults: stop at the deadline, never (the
/// step is over and its handler merely not replaced yet), or at once (the connection is
/// being given up).
#[derive(Clone)]
pub(super) struct Interrupt(Arc<(Instant, AtomicU8)>);

impl Interrupt {
    fn should_stop(&self) -> bool {
        let (deadline, state) = &*self.0;
        match state.load(Ordering::Relaxed) {
            ARMED => Instant::now() >= *deadline,
            OFF => false,
            _ => true,
        }
    }

    pub(super) fn disarm(&self) {
        self.0.1.store(OFF, Ordering::Relaxed);
    }

    pub(super) fn now(&self) {
        self.0.1.store(NOW, Ordering::Relaxed);
    }
}

/// Installs a progress handler on the connection that interrupts the running statement
/// (SQLITE_INTERRUPT) once `deadline` has passed. It runs in SQLite's own thread, so the
/// statement stops even when nobody awaits it. It replaces the handler of the
/// connection's previous step.
pub(super) async fn arm(
    conn: &mut SqliteConnection,
    deadline: Instant,
) -> Result<Interrupt, TargetError> {
    let interrupt = Interrupt(Arc::new((deadline, AtomicU8::new(ARMED))));
    let check = interrupt.clone();
    let mut handle = conn.lock_handle().await?;
    // The callback returns whether to go on.
    handle.set_progress_handler(PROGRESS_OPS, move || !check.should_stop());
    Ok(interrupt)
}

fn bind_all<'q>(
    sql: &str,
    params: &'q [SqlValue],
) -> Result<Query<'q, Sqlite, SqliteArguments>, TargetError> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (i, value) in params.iter().enumerate() {
        query = match value {
            SqlValue::Null => query.bind(None::<i64>),
            SqlValue::Boolean(b) => query.bind(*b),
            SqlValue::Integer(n) => query.bind(*n),
            SqlValue::Float(f) => query.bind(*f),
            SqlValue::Text(s) => query.bind(s.as_str()),
            SqlValue::Bytes(b) => query.bind(b.as_slice()),
            // SQLite has no timestamp type: bind the text form the reference schema stores
            // (`YYYY-MM-DD HH:MM:SS+00:00`, UTC), which SQLite's date functions read and
            // which orders correctly against stored values.
            SqlValue::Timestamp(text) => {
                let at = parse_timestamp(text).ok_or_else(|| TargetError::BadParameter {
                    index: i + 1,
                    reason: format!("`{text}` is not an RFC 3339 timestamp"),
                })?;
                query.bind(sqlite_timestamp(&at))
            }
        };
    }
    Ok(query)
}

/// `YYYY-MM-DD HH:MM:SS+00:00`, written digit by digit: a bulk step binds a timestamp
/// per row, and chrono's `format` parses its pattern on every call.
fn sqlite_timestamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let mut out = String::with_capacity(25);
    // parse_timestamp only accepts years the formats can express (0000-9999).
    digits(&mut out, at.year().clamp(0, 9999) as u32, 4);
    out.push('-');
    digits(&mut out, at.month(), 2);
    out.push('-');
    digits(&mut out, at.day(), 2);
    out.push(' ');
    digits(&mut out, at.hour(), 2);
    out.push(':');
    digits(&mut out, at.minute(), 2);
    out.push(':');
    digits(&mut out, at.second(), 2);
    out.push_str("+00:00");
    out
}

fn columns_of(row: &SqliteRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_info().name().to_string(),
        })
        .collect()
}

fn decode_row(row: &SqliteRow, columns: &[Column]) -> Result<Vec<SqlValue>, TargetError> {
    let mut values = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        values.push(decode_value(row.try_get_raw(i)?)?);
    }
    Ok(values)
}

fn decode_value(raw: SqliteValueRef<'_>) -> Result<SqlValue, TargetError> {
    if raw.is_null() {
        return Ok(SqlValue::Null);
    }
    fn get<'r, T: Decode<'r, Sqlite>>(raw: SqliteValueRef<'r>) -> Result<T, TargetError> {
        T::decode(raw).map_err(|e| TargetError::Sql(sqlx::Error::Decode(e)))
    }
    let storage = raw.type_info();
    Ok(match storage.name() {
        "INTEGER" | "BOOLEAN" => SqlValue::Integer(get(raw)?),
        "REAL" => SqlValue::Float(get(raw)?),
        "BLOB" => SqlValue::Bytes(get(raw)?),
        _ => SqlValue::Text(get(raw)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_bound_in_the_schema_text_form() {
        for text in [
            "2026-11-01T00:00:00Z",
            "1999-02-03T04:05:06.789Z",
            "2026-12-31 23:59:59+00:00",
            "0001-01-01T00:00:00Z",
        ] {
            let at = parse_timestamp(text).unwrap();
            assert_eq!(
                sqlite_timestamp(&at),
                at.format("%Y-%m-%d %H:%M:%S+00:00").to_string(),
                "{text}"
            );
        }
    }
}
