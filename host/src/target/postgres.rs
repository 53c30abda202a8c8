//! PostgreSQL: binding [`SqlValue`] parameters, decoding rows by column type, and the
//! server side of a step's deadline (`statement_timeout`, `pg_cancel_backend`).

use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnection, PgRow, PgTypeInfo, PgValueRef};
use sqlx::query::Query;
use sqlx::types::{Decimal, Uuid};
use sqlx::{Column as _, Decode, PgPool, Postgres, Row, TypeInfo, ValueRef};

use super::TargetError;
use super::value::{Column, Gathered, ResultCaps, Rows, SqlValue, parse_timestamp};

/// Streams the result row by row, each decoded and counted against `caps` as it comes;
/// past a cap the stream is dropped (the statement stops sending) and the call fails
/// with [`TargetError::ResultTooLarge`]. Nothing but the rows kept is ever held.
pub(super) async fn query(
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
    sql: &str,
    params: &[SqlValue],
) -> Result<u64, TargetError> {
    let done = bind_all(sql, params)?.execute(conn).await?;
    Ok(done.rows_affected())
}

/// Transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`), unprepared.
pub(super) async fn control(conn: &mut PgConnection, sql: &'static str) -> Result<(), TargetError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets `statement_timeout` for the rest of the transaction to what is left of the step
/// (so the server stops a statement itself even if this process dies), and returns the
/// connection's backend pid, which a cancel request names. One round trip.
/// How long after the step's deadline the server stops a statement on its own.
const SERVER_TIMEOUT_MARGIN: Duration = Duration::from_millis(250);

pub(super) async fn arm(conn: &mut PgConnection, remaining: Duration) -> Result<i32, TargetError> {
    // The server's timeout is the backstop should this process die: it fires a little
    // after the step's deadline, at which the host cancels the statement itself, so a
    // statement stopped at the deadline always reads as the deadline (whole milliseconds
    // rounded down could otherwise let the server's error arrive just before it).
    let ms = (remaining + SERVER_TIMEOUT_MARGIN)
        .as_millis()
        .clamp(1, i32::MAX as u128)
        .to_string();
    let row = sqlx::query("SELECT pg_backend_pid(), set_config('statement_timeout', $1, true)")
        .bind(ms)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}

/// Cancels whatever backend `pid` is running, from another connection: the pool's, or a
/// new one when the pool has none free (the step's own holds the statement).
pub(super) async fn cancel_backend(pool: &PgPool, pid: i32) -> Result<(), TargetError> {
    let sql = "SELECT pg_cancel_backend($1)";
    match pool.try_acquire() {
        Some(mut conn) => {
            sqlx::query(sql).bind(pid).execute(&mut *conn).await?;
        }
        None => {
            use sqlx::Connection as _;
            let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
            sqlx::query(sql).bind(pid).execute(&mut conn).await?;
            conn.close().await?;
        }
    }
    Ok(())
}

fn bind_all<'q>(
    sql: &str,
    params: &'q [SqlValue],
) -> Result<Query<'q, Postgres, PgArguments>, TargetError> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (i, value) in params.iter().enumerate() {
        query = match value {
            // An untyped NULL lets Postgres infer the parameter's type from the statement;
            // a typed one (say TEXT) would break `INSERT ... VALUES ($1)` into a BIGINT column.
            SqlValue::Null => query.bind(UntypedNull),
            SqlValue::Boolean(b) => query.bind(*b),
            SqlValue::Integer(n) => query.bind(*n),
            SqlValue::Float(f) => query.bind(*f),
            SqlValue::Text(s) => query.bind(s.as_str()),
            SqlValue::Bytes(b) => query.bind(b.as_slice()),
            SqlValue::Timestamp(text) => {
                let at = parse_timestamp(text).ok_or_else(|| TargetError::BadParameter {
                    index: i + 1,
                    reason: format!("`{text}` is not an RFC 3339 timestamp"),
                })?;
                query.bind(at)
            }
        };
    }
    Ok(query)
}

struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        // OID 0 leaves the parameter's type unspecified in the Parse message.
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

fn columns_of(row: &PgRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_info().name().to_string(),
        })
        .collect()
}

fn decode_row(row: &PgRow, columns: &[Column]) -> Result<Vec<SqlValue>, TargetError> {
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        values.push(decode_value(row.try_get_raw(i)?, column)?);
    }
    Ok(values)
}

fn decode_value(raw: PgValueRef<'_>, column: &Column) -> Result<SqlValue, TargetError> {
    if raw.is_null() {
        return Ok(SqlValue::Null);
    }
    fn get<'r, T: Decode<'r, Postgres>>(raw: PgValueRef<'r>) -> Result<T, TargetError> {
        T::decode(raw).map_err(|e| TargetError::Sql(sqlx::Error::Decode(e)))
    }
    Ok(match column.type_name.as_str() {
        "BOOL" => SqlValue::Boolean(get(raw)?),
        "INT2" => SqlValue::Integer(get::<i16>(raw)?.into()),
        "INT4" => SqlValue::Integer(get::<i32>(raw)?.into()),
        "INT8" => SqlValue::Integer(get(raw)?),
        "OID" => SqlValue::Integer(get::<sqlx::postgres::types::Oid>(raw)?.0.into()),
        "FLOAT4" => SqlValue::Float(get::<f32>(raw)?.into()),
        "FLOAT8" => SqlValue::Float(get(raw)?),
        // SUM(bigint) is NUMERIC: keep whole numbers exact, and decimals as text so no
        // cent is lost to floating point.
        "NUMERIC" => {
            let d: Decimal = get(raw)?;
            match i64::try_from(d) {
                Ok(n) if d.fract().is_zero() => SqlValue::Integer(n),
                _ => SqlValue::Text(d.normalize().to_string()),
            }
        }
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" | "UNKNOWN" => {
            SqlValue::Text(get(raw)?)
        }
        "BYTEA" => SqlValue::Bytes(get(raw)?),
        "TIMESTAMPTZ" => {
            let at: chrono::DateTime<chrono::Utc> = get(raw)?;
            SqlValue::Timestamp(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        "TIMESTAMP" => {
            let at: chrono::NaiveDateTime = get(raw)?;
            SqlValue::Timestamp(
                at.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            )
        }
        "DATE" => SqlValue::Text(get::<chrono::NaiveDate>(raw)?.to_string()),
        "UUID" => SqlValue::Text(get::<Uuid>(raw)?.to_string()),
        "JSON" | "JSONB" => SqlValue::Text(get::<serde_json::Value>(raw)?.to_string()),
        other => {
            return Err(TargetError::UnsupportedType {
                column: column.name.clone(),
                type_name: other.to_string(),
            });
        }
    })
}
