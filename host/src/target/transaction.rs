//! One step's transaction on a pooled connection, bounded by the step's deadline: a
//! statement still running at the deadline is stopped in the database (SQLite: a progress
//! handler; PostgreSQL: `statement_timeout` on the server and `pg_cancel_backend` at the
//! deadline), and a connection whose statement cannot be seen to stop is closed, never
//! waited for or returned to the pool.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Sqlite};

use super::sqlite_authorizer::{self, SqliteOpinion};
use super::value::{ResultCaps, Rows, SqlValue};
use super::{TargetError, postgres, sqlite};

/// How long a statement stopped at the deadline may take to hand its connection back
/// (and how long `ROLLBACK` may take) before the connection is given up instead.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// All of one step's statements. Dropping it without [`commit`](Self::commit) or
/// [`rollback`](Self::rollback) closes its connection (the database rolls back).
pub struct StepTransaction {
    /// `None` once the transaction is finished or its connection given up.
    conn: Option<Conn>,
    deadline: Option<Instant>,
    /// A statement started and was not seen to end (its future was dropped at the step's
    /// timeout, or it outlived the grace after the deadline): the connection is busy, and
    /// anything sent on it would wait behind that statement.
    busy: bool,
}

pub(super) enum Conn {
    Postgres {
        conn: PoolConnection<Postgres>,
        /// Where the cancel request comes from: another connection of the same pool.
        pool: PgPool,
        /// The connection's backend, captured when a deadline is first set.
        pid: Option<i32>,
    },
    Sqlite {
        conn: PoolConnection<Sqlite>,
        interrupt: Option<sqlite::Interrupt>,
    },
}

impl StepTransaction {
    pub(super) async fn begin(mut conn: Conn) -> Result<StepTransaction, TargetError> {
        let begun = match &mut conn {
            Conn::Postgres { conn, .. } => postgres::control(conn, "BEGIN").await,
            Conn::Sqlite { conn, .. } => sqlite::control(conn, "BEGIN").await,
        };
        let tx = StepTransaction {
            conn: Some(conn),
            deadline: None,
            busy: false,
        };
        begun?;
        Ok(tx)
    }

    /// The deadline set last (`None`: statements are not bounded).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Bounds every later statement by `deadline`: the step's timeout. A statement that
    /// would start after it is refused; one running at it is stopped. On PostgreSQL the
    /// server gets `statement_timeout` too, so the statement stops even if this process
    /// dies. Called once per step (the dry run's shared transaction, once per step too).
    pub async fn set_deadline(&mut self, deadline: Instant) -> Result<(), TargetError> {
        let conn = usable(&mut self.conn, self.busy)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TargetError::DeadlineExceeded);
        }
        match conn {
            Conn::Postgres { conn, pid, .. } => {
                *pid = Some(postgres::arm(conn, remaining).await?);
            }
            Conn::Sqlite { conn, interrupt } => {
                if let Some(old) = interrupt.take() {
                    old.disarm();
                }
                *interrupt = Some(sqlite::arm(conn, deadline).await?);
            }
        }
        self.deadline = Some(deadline);
        Ok(())
    }

    /// Lifts the deadline (the step ended): host statements on the dry run's shared
    /// transaction, and `COMMIT`/`ROLLBACK`, are not the plugin's and are not stopped.
    pub fn clear_deadline(&mut self) {
        self.deadline = None;
        if let Some(Conn::Sqlite {
            interrupt: Some(interrupt),
            ..
        }) = &mut self.conn
        {
            interrupt.disarm();
        }
    }

    /// Runs a statement and returns its rows, stopping it as soon as the result goes past
    /// `caps` ([`TargetError::ResultTooLarge`]). A statement stopped that way leaves the
    /// connection usable (SQLite: the dropped stream resets the statement; PostgreSQL:
    /// the rest is cancelled and read past), or, failing that within [`STOP_GRACE`],
    /// busy, so it is given up at rollback like a statement stopped at the deadline.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        caps: ResultCaps,
    ) -> Result<Rows, TargetError> {
        let deadline = self.open_deadline()?;
        let conn = usable(&mut self.conn, self.busy)?;
        self.busy = true;
        let result = match conn {
            Conn::Postgres { conn, pool, pid } => {
                let stop = cancel(pool, *pid);
                let result =
                    bounded(deadline, postgres::query(conn, sql, params, caps), stop).await;
                if let Bounded::Done(Err(e @ TargetError::ResultTooLarge { .. })) = result {
                    if skip_rest(conn, pool, *pid).await {
                        self.busy = false;
                    }
                    return Err(e);
                }
                result
            }
            Conn::Sqlite { conn, .. } => {
                // The progress handler stops the statement itself, in SQLite's thread.
                bounded(deadline, sqlite::query(conn, sql, params, caps), async {}).await
            }
        };
        self.settle(result)
    }

    pub async fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, TargetError> {
        let deadline = self.open_deadline()?;
        let conn = usable(&mut self.conn, self.busy)?;
        self.busy = true;
        let result = match conn {
            Conn::Postgres { conn, pool, pid } => {
                let stop = cancel(pool, *pid);
                bounded(deadline, postgres::execute(conn, sql, params), stop).await
            }
            Conn::Sqlite { conn, .. } => {
                bounded(deadline, sqlite::execute(conn, sql, params), async {}).await
            }
        };
        self.settle(result)
    }

    /// SQLite's own account of what `sql` reads and writes, from preparing it on this
    /// transaction's connection (see [`sqlite_authorizer`]); `None` on PostgreSQL, which
    /// has no authorizer.
    pub async fn sqlite_opinion(
        &mut self,
        sql: &str,
    ) -> Result<Option<SqliteOpinion>, TargetError> {
        self.open_deadline()?;
        match usable(&mut self.conn, self.busy)? {
            Conn::Sqlite { conn, .. } => sqlite_authorizer::opinion(conn, sql).await.map(Some),
            Conn::Postgres { .. } => Ok(None),
        }
    }

    pub async fn commit(mut self) -> Result<(), TargetError> {
        self.clear_deadline();
        let conn = usable(&mut self.conn, self.busy)?;
        self.busy = true;
        let done = match conn {
            // The step's statement_timeout (what was left of the step when it was set)
            // must not cut short the commit of a step that finished in time; one
            // round trip still.
            Conn::Postgres { conn, pid, .. } => {
                let sql = match pid {
                    Some(_) => "SET LOCAL statement_timeout TO DEFAULT; COMMIT",
                    None => "COMMIT",
                };
                postgres::control(conn, sql).await
            }
            Conn::Sqlite { conn, .. } => sqlite::control(conn, "COMMIT").await,
        };
        self.busy = false;
        done?;
        self.release();
        Ok(())
    }

    /// Rolls back; never waits on a busy connection: one whose statement did not stop is
    /// cancelled (PostgreSQL) or interrupted (SQLite) and closed, and the database rolls
    /// back when it goes.
    pub async fn rollback(mut self) -> Result<(), TargetError> {
        self.clear_deadline();
        if self.busy || self.conn.is_none() {
            self.abandon().await;
            return Ok(());
        }
        let conn = usable(&mut self.conn, self.busy)?;
        self.busy = true;
        let rolled = tokio::time::timeout(STOP_GRACE, async {
            match conn {
                Conn::Postgres { conn, .. } => postgres::control(conn, "ROLLBACK").await,
                Conn::Sqlite { conn, .. } => sqlite::control(conn, "ROLLBACK").await,
            }
        })
        .await;
        match rolled {
            Ok(result) => {
                self.busy = false;
                result?;
                self.release();
            }
            Err(_elapsed) => self.abandon().await,
        }
        Ok(())
    }

    /// The deadline, if it has not passed yet.
    fn open_deadline(&self) -> Result<Option<Instant>, TargetError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(TargetError::DeadlineExceeded),
            other => Ok(other),
        }
    }

    /// The connection is free again unless the statement was left running.
    fn settle<T>(&mut self, result: Bounded<T>) -> Result<T, TargetError> {
        match result {
            Bounded::Done(result) => {
                self.busy = false;
                result
            }
            Bounded::Stopped => {
                self.busy = false;
                Err(TargetError::DeadlineExceeded)
            }
            Bounded::StillRunning => Err(TargetError::DeadlineExceeded),
        }
    }

    /// A finished transaction's connection goes back to the pool.
    fn release(&mut self) {
        self.conn = None;
    }

    /// Stops whatever still runs on the connection and closes it without waiting.
    async fn abandon(&mut self) {
        match self.conn.take() {
            Some(Conn::Postgres { conn, pool, pid }) => {
                cancel(&pool, pid).await;
                drop(conn.detach());
            }
            Some(Conn::Sqlite { conn, interrupt }) => {
                if let Some(interrupt) = interrupt {
                    interrupt.now();
                }
                drop(conn.detach());
            }
            None => {}
        }
    }
}

impl Drop for StepTransaction {
    /// An unfinished transaction never goes back to the pool: a pooled connection left
    /// inside a transaction (or behind a running statement) would stall whoever gets it
    /// next, and closing the pool would wait for it.
    fn drop(&mut self) {
        match self.conn.take() {
            Some(Conn::Postgres { conn, .. }) => drop(conn.detach()),
            Some(Conn::Sqlite { conn, interrupt }) => {
                if let Some(interrupt) = interrupt {
                    interrupt.now();
                }
                drop(conn.detach());
            }
            None => {}
        }
    }
}

/// The connection, unless it is gone or busy with a statement nobody waits for.
fn usable(conn: &mut Option<Conn>, busy: bool) -> Result<&mut Conn, TargetError> {
    match conn {
        Some(conn) if !busy => Ok(conn),
        _ => Err(TargetError::Abandoned),
    }
}

/// How a statement ended relative to the deadline.
enum Bounded<T> {
    /// Before the deadline (or with no deadline).
    Done(Result<T, TargetError>),
    /// Stopped at the deadline; the connection is free.
    Stopped,
    /// Still running after the deadline and the grace: the connection is given up.
    StillRunning,
}

/// Runs `work` until `deadline`; then runs `stop` (which makes the database end it) and
/// gives `work` [`STOP_GRACE`] to come back.
async fn bounded<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, TargetError>>,
    stop: impl Future<Output = ()>,
) -> Bounded<T> {
    let Some(deadline) = deadline else {
        return Bounded::Done(work.await);
    };
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        result = &mut work => {
            // An error at the deadline is the interruption itself (SQLite's progress
            // handler, the server's statement_timeout), whatever its wording.
            return match result {
                Err(_) if Instant::now() >= deadline => Bounded::Stopped,
                other => Bounded::Done(other),
            };
        }
        () = tokio::time::sleep_until(deadline.into()) => {}
    }
    stop.await;
    match tokio::time::timeout(STOP_GRACE, work).await {
        Ok(_) => Bounded::Stopped,
        Err(_elapsed) => Bounded::StillRunning,
    }
}

/// After a result stopped part-way on PostgreSQL the server is still sending rows (maybe
/// without end): cancel the statement, then read past what is left with a statement of
/// our own, whose answer does not matter. `false`: the connection could not be brought
/// back in time (or there is no backend pid to cancel) and must be given up.
async fn skip_rest(conn: &mut sqlx::PgConnection, pool: &PgPool, pid: Option<i32>) -> bool {
    if pid.is_none() {
        return false;
    }
    cancel(pool, pid).await;
    tokio::time::timeout(STOP_GRACE, postgres::control(conn, "SELECT 1"))
        .await
        .is_ok()
}

/// Asks the server to cancel whatever backend `pid` runs, from another connection.
/// Bounded: if no connection can be had in time, the server's `statement_timeout` still
/// ends the statement.
async fn cancel(pool: &PgPool, pid: Option<i32>) {
    let Some(pid) = pid else { return };
    let sent = tokio::time::timeout(STOP_GRACE, postgres::cancel_backend(pool, pid)).await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(target: "runbook::db", pid, "cancelling the step's statement failed: {e}")
        }
        Err(_) => {
            tracing::warn!(target: "runbook::db", pid, "cancelling the step's statement timed out")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ResultCap, TargetDb};
    use super::*;

    /// Never ends by itself; the marker lets a test find it in `pg_stat_activity`.
    fn endless(marker: &str) -> String {
        format!(
            "/* {marker} */ WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
             SELECT count(*) FROM r"
        )
    }

    /// Long enough (hundreds of thousands of VM instructions) that a progress handler left
    /// armed with a past deadline would interrupt it.
    const FINITE: &str = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r \
                          WHERE n < 100000) SELECT count(*) FROM r";

    /// A hang is a failure, not a stuck test run; nothing here comes near it.
    const HANG: Duration = Duration::from_secs(60);

    /// A SQLite file always; PostgreSQL's `test` database when the server is reachable.
    async fn targets() -> Vec<(&'static str, TargetDb, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("target.db").display());
        let mut out = vec![("sqlite", TargetDb::connect(&url).await.unwrap(), Some(dir))];
        let pg = std::env::var("RUNBOOK_TEST_TARGET_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
        match TargetDb::connect(&pg).await {
            Ok(db) => out.push(("postgres", db, None)),
            Err(e) => eprintln!("note: PostgreSQL unreachable ({e}); SQLite only"),
        }
        out
    }

    async fn running(target: &TargetDb, marker: &str) -> i64 {
        let TargetDb::Postgres(pool) = target else {
            return 0;
        };
        let pattern = format!("/* {marker} */%");
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 \
             AND pid <> pg_backend_pid()",
        )
        .bind(pattern)
        .fetch_one(pool)
        .await
        .unwrap()
    }

    /// [`running`] once the server has caught up: a cancelled backend leaves
    /// `pg_stat_activity` on the server's own schedule, which a loaded machine stretches.
    async fn still_running(target: &TargetDb, marker: &str) -> i64 {
        let mut left = running(target, marker).await;
        for _ in 0..250 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = running(target, marker).await;
        }
        left
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_running_at_the_deadline_is_stopped_and_its_connection_reused() {
        for (label, target, _dir) in targets().await {
            let checks = async {
                let marker = uuid::Uuid::new_v4().simple().to_string();
                let mut tx = target.begin().await.unwrap();
                tx.set_deadline(Instant::now() + Duration::from_millis(300))
                    .await
                    .unwrap();
                let stopped = tx.query(&endless(&marker), &[], ResultCaps::NONE).await;
                assert!(
                    matches!(stopped, Err(TargetError::DeadlineExceeded)),
                    "{label}: {stopped:?}"
                );
                assert_eq!(
                    still_running(&target, &marker).await,
                    0,
                    "{label}: cancelled"
                );
                // Past the deadline nothing reaches the database.
                let refused = tx.execute("SELECT 1", &[]).await;
                assert!(matches!(refused, Err(TargetError::DeadlineExceeded)));
                tx.rollback().await.unwrap();
                // Every pooled connection still works, with no stale interruption.
                let mut open = Vec::new();
                for _ in 0..4 {
                    let mut tx = target.begin().await.unwrap();
                    let rows = tx.query(FINITE, &[], ResultCaps::NONE).await.unwrap();
                    assert_eq!(rows.rows.len(), 1, "{label}");
                    open.push(tx);
                }
                for tx in open {
                    tx.commit().await.unwrap();
                }
                target.close().await;
            };
            tokio::time::timeout(HANG, checks).await.expect(label);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_past_its_caps_is_stopped_and_the_connection_stays_usable() {
        for (label, target, _dir) in targets().await {
            let checks = async {
                let marker = uuid::Uuid::new_v4().simple().to_string();
                let endless_rows = format!(
                    "/* {marker} */ WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
                     SELECT n FROM r"
                );
                for (caps, cap) in [
                    (
                        ResultCaps {
                            max_rows: 1000,
                            max_bytes: u64::MAX,
                        },
                        ResultCap::Rows,
                    ),
                    (
                        ResultCaps {
                            max_rows: u64::MAX,
                            max_bytes: 64 << 10,
                        },
                        ResultCap::Bytes,
                    ),
                ] {
                    let mut tx = target.begin().await.unwrap();
                    tx.set_deadline(Instant::now() + Duration::from_secs(30))
                        .await
                        .unwrap();
                    let refused = tx.query(&endless_rows, &[], caps).await;
                    assert!(
                        matches!(refused, Err(TargetError::ResultTooLarge { cap: c, .. }) if c == cap),
                        "{label}: {refused:?}"
                    );
                    assert_eq!(still_running(&target, &marker).await, 0, "{label}: stopped");
                    if label == "sqlite" {
                        // Same transaction, same connection: nothing is left of the result.
                        let rows = tx.query(FINITE, &[], ResultCaps::NONE).await.unwrap();
                        assert_eq!(rows.rows.len(), 1);
                    }
                    tx.rollback().await.unwrap();
                }
                let mut open = Vec::new();
                for _ in 0..4 {
                    let mut tx = target.begin().await.unwrap();
                    let rows = tx.query(FINITE, &[], ResultCaps::NONE).await.unwrap();
                    assert_eq!(rows.rows.len(), 1, "{label}");
                    open.push(tx);
                }
                for tx in open {
                    tx.commit().await.unwrap();
                }
                target.close().await;
            };
            tokio::time::timeout(HANG, checks).await.expect(label);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_nobody_waits_for_holds_up_neither_rollback_nor_close() {
        for (label, target, _dir) in targets().await {
            let checks = async {
                let marker = uuid::Uuid::new_v4().simple().to_string();
                let mut tx = target.begin().await.unwrap();
                // The deadline is far away: the statement's future is dropped instead,
                // as the runtime's backstop does with a host call.
                tx.set_deadline(Instant::now() + Duration::from_secs(3600))
                    .await
                    .unwrap();
                let sql = endless(&marker);
                let gave_up = tokio::time::timeout(
                    Duration::from_millis(200),
                    tx.query(&sql, &[], ResultCaps::NONE),
                )
                .await;
                assert!(gave_up.is_err(), "{label}: the statement cannot have ended");
                let refused = tx.query("SELECT 1", &[], ResultCaps::NONE).await;
                assert!(
                    matches!(refused, Err(TargetError::Abandoned)),
                    "{label}: {refused:?}"
                );
                tx.rollback().await.unwrap();
                target.close().await;
                if label == "postgres" {
                    let again = TargetDb::connect(
                        &std::env::var("RUNBOOK_TEST_TARGET_URL")
                            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into()),
                    )
                    .await
                    .unwrap();
                    // The cancel was sent before the connection was closed; the server
                    // retires the backend on its own schedule.
                    let left = still_running(&again, &marker).await;
                    assert_eq!(left, 0, "the abandoned statement still runs on the server");
                    again.close().await;
                }
            };
            tokio::time::timeout(HANG, checks).await.expect(label);
        }
    }
}
