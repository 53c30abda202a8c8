//! The target billing database: connection by URL, one transaction per step, typed rows.
//!
//! sqlx's `Any` driver cannot carry booleans or timestamps faithfully, so each backend
//! uses its native driver and this module hides the difference behind [`TargetDb`] and
//! [`StepTransaction`].

mod postgres;
mod sqlite;
mod sqlite_authorizer;
mod step_commits;
mod transaction;
mod value;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

pub use sqlite_authorizer::{SqliteOpinion, TableAccess, TableAction};
pub use step_commits::{HOST_TABLE_PREFIX, STEP_COMMITS, StepCommit, is_host_table};
use transaction::Conn;
pub use transaction::StepTransaction;
pub use value::{Column, ResultCap, ResultCaps, Rows, SqlValue};

/// How long closing a pool may wait for its connections. A step's connection is never
/// left busy (see [`StepTransaction`]), so this only guards against a server that stopped
/// answering: the process ends anyway, and the server rolls back what it held.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Which SQL database the target is; decides how statements are parsed and how
/// identifiers compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unsupported target database URL `{0}` (expected postgres://... or sqlite://...)")]
    UnsupportedUrl(String),
    #[error(
        "the target database {} does not exist (`runbook db init` creates it; or add `?mode=rwc` to the [target] url to create it on first use)",
        .0.display()
    )]
    Missing(std::path::PathBuf),
    #[error("cannot connect to the target database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    /// SQLite could not prepare the statement for its second opinion (the same error
    /// running it would give).
    #[error("{0}")]
    Prepare(String),
    #[error(
        "column `{column}` has type {type_name}, which the db capability cannot return; cast it to text in SQL"
    )]
    UnsupportedType { column: String, type_name: String },
    #[error("parameter ${index}: {reason}")]
    BadParameter { index: usize, reason: String },
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the step's deadline passed: the statement was stopped")]
    DeadlineExceeded,
    #[error("the step's connection was given up after its deadline")]
    Abandoned,
    /// The result went past a cap while it streamed in: the statement was stopped.
    #[error("{}", too_large(*.cap, *.limit))]
    ResultTooLarge { cap: ResultCap, limit: u64 },
    /// The host's own table (`runbook_step_commits`) is missing and cannot be created,
    /// or holds a record the host cannot use.
    #[error("the host's table `runbook_step_commits` in the target database: {0}")]
    HostTable(String),
}

fn too_large(cap: ResultCap, limit: u64) -> String {
    let (what, key) = match cap {
        ResultCap::Rows => (format!("{limit} rows"), "max_result_rows"),
        ResultCap::Bytes => (format!("{limit} bytes"), "max_result_bytes"),
    };
    format!(
        "the result is larger than {what} (`{key}`): the statement was stopped; \
         select less (LIMIT, paging, fewer columns) or raise `{key}` in the step's \
         `[steps.limits]` or in `[limits]` of runbook.toml"
    )
}

impl TargetError {
    /// A failure worth another attempt of the step: serialization conflicts, deadlocks,
    /// a busy SQLite file, a dropped connection. Never a bad statement.
    pub fn is_transient(&self) -> bool {
        match self {
            TargetError::Sql(sqlx::Error::Database(e)) => matches!(
                e.code().as_deref(),
                Some("40001" | "40P01" | "5" | "6" | "517")
            ),
            TargetError::Sql(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => true,
            _ => false,
        }
    }
}

/// A connection pool to the database the runbooks act on.
#[derive(Clone, Debug)]
pub enum TargetDb {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl TargetDb {
    /// Connects to a target that must exist: a SQLite file that is not there is
    /// [`TargetError::Missing`] unless the URL asks for creation (`mode=rwc`), so a
    /// mistyped path is reported instead of becoming an empty database.
    pub async fn connect_existing(url: &str) -> Result<TargetDb, TargetError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(TargetError::Connect)?;
            let creates = url
                .split_once('?')
                .is_some_and(|(_, query)| query.split('&').any(|kv| kv == "mode=rwc"));
            let path = options.get_filename();
            if !creates && path != Path::new(":memory:") && !path.exists() {
                return Err(TargetError::Missing(path.to_path_buf()));
            }
        }
        TargetDb::connect(url).await
    }

    /// Connects to `postgres://...` or `sqlite://path` (the SQLite file is created if missing).
    pub async fn connect(url: &str) -> Result<TargetDb, TargetError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(TargetError::Connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(TargetError::Connect)?;
            Ok(TargetDb::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(TargetError::Connect)?;
            // The embedded default lives under `.runbook/`, which may not exist yet.
            if let Some(parent) = options.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| TargetError::Connect(e.into()))?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(TargetError::Connect)?;
            Ok(TargetDb::Sqlite(pool))
        } else {
            Err(TargetError::UnsupportedUrl(url.to_string()))
        }
    }

    pub fn dialect(&self) -> SqlDialect {
        match self {
            TargetDb::Postgres(_) => SqlDialect::Postgres,
            TargetDb::Sqlite(_) => SqlDialect::Sqlite,
        }
    }

    /// A transaction on a connection of its own; see [`StepTransaction::set_deadline`].
    pub async fn begin(&self) -> Result<StepTransaction, TargetError> {
        let conn = match self {
            TargetDb::Postgres(pool) => Conn::Postgres {
                conn: pool.acquire().await?,
                pool: pool.clone(),
                pid: None,
            },
            TargetDb::Sqlite(pool) => Conn::Sqlite {
                conn: pool.acquire().await?,
                interrupt: None,
            },
        };
        StepTransaction::begin(conn).await
    }

    /// Applies the migrations in `dir` (sqlx's runtime migrator, tracked in `_sqlx_migrations`).
    pub async fn migrate(&self, dir: &std::path::Path) -> Result<(), TargetError> {
        let migrator = sqlx::migrate::Migrator::new(dir).await?;
        match self {
            TargetDb::Postgres(pool) => migrator.run(pool).await?,
            TargetDb::Sqlite(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Runs a script of several statements outside any grant: only for host-owned set-up
    /// such as loading demo data, never on behalf of a plugin.
    pub async fn run_script(&self, sql: &str) -> Result<(), TargetError> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            TargetDb::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop)?,
            TargetDb::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes the pool, waiting at most [`CLOSE_WAIT`] for its connections.
    pub async fn close(&self) {
        let closed = match self {
            TargetDb::Postgres(pool) => tokio::time::timeout(CLOSE_WAIT, pool.close()).await,
            TargetDb::Sqlite(pool) => tokio::time::timeout(CLOSE_WAIT, pool.close()).await,
        };
        if closed.is_err() {
            tracing::warn!(target: "runbook::db", "the target database's connections did not close in time");
        }
    }
}
