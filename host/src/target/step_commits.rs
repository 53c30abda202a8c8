//! The host's own table in the target database, `runbook_step_commits`: the record that a
//! step finished, written inside the step's own transaction just before it commits, so
//! the step's writes and the record of them commit together or not at all. Plugins never
//! reach it: grants may not name a table starting with [`HOST_TABLE_PREFIX`].

use sqlx::Row;

use super::{SqlValue, StepTransaction, TargetDb, TargetError};

/// Table names starting with this belong to the host; no grant may name one.
pub const HOST_TABLE_PREFIX: &str = "runbook_";

/// The completion records' table.
pub const STEP_COMMITS: &str = "runbook_step_commits";

/// The table as both backends take it. The record's parts are JSON text the host
/// encodes and decodes itself (see `exec/completion.rs`).
const CREATE: &str = "CREATE TABLE IF NOT EXISTS runbook_step_commits (\
     run_id TEXT NOT NULL, \
     step_index BIGINT NOT NULL, \
     attempt BIGINT NOT NULL, \
     output TEXT NOT NULL, \
     audit TEXT NOT NULL, \
     calls TEXT NOT NULL, \
     logs TEXT NOT NULL, \
     committed_at TEXT NOT NULL, \
     PRIMARY KEY (run_id, step_index))";

/// A statement that succeeds exactly when the table is there and readable.
const PROBE: &str = "SELECT run_id FROM runbook_step_commits WHERE 1 = 0";

/// Whether `table` (plain or schema-qualified, any case) is one of the host's own.
pub fn is_host_table(table: &str) -> bool {
    let name = table.rsplit('.').next().unwrap_or(table);
    let name = name.trim_matches('"').to_ascii_lowercase();
    name.starts_with(HOST_TABLE_PREFIX)
}

/// One finished step as recorded in the target: its parts as the host encoded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCommit {
    pub run_id: String,
    pub step_index: i64,
    pub attempt: i64,
    pub output: String,
    pub audit: String,
    pub calls: String,
    pub logs: String,
    pub committed_at: String,
}

impl TargetDb {
    /// Makes sure the completion records' table exists: looked for first (a role that
    /// may not create tables is fine once `runbook db init` created it), created if it
    /// is missing. A target where neither works cannot promise that a step whose writes
    /// committed is never run again, so runs stop here, before anything ran.
    pub async fn ensure_step_commits(&self) -> Result<(), TargetError> {
        if self.simple(PROBE).await.is_ok() {
            return Ok(());
        }
        self.simple(CREATE).await.map_err(|e| {
            TargetError::HostTable(format!(
                "it is missing and could not be created ({e}); create it with `runbook db init` \
                 (as a role that may create tables): the host records there which steps \
                 committed their writes, so that a resumed run never repeats one"
            ))
        })
    }

    /// The completion record of step `step_index` of run `run_id`, if its transaction
    /// committed.
    pub async fn step_commit(
        &self,
        run_id: &str,
        step_index: i64,
    ) -> Result<Option<StepCommit>, TargetError> {
        const SELECT: &str = "SELECT run_id, step_index, attempt, output, audit, calls, logs, \
             committed_at FROM runbook_step_commits WHERE run_id = $1 AND step_index = $2";
        let row = match self {
            TargetDb::Postgres(pool) => sqlx::query(SELECT)
                .bind(run_id)
                .bind(step_index)
                .fetch_optional(pool)
                .await?
                .map(|r| decode(|i| r.try_get::<String, _>(i), |i| r.try_get::<i64, _>(i))),
            TargetDb::Sqlite(pool) => sqlx::query(SELECT)
                .bind(run_id)
                .bind(step_index)
                .fetch_optional(pool)
                .await?
                .map(|r| decode(|i| r.try_get::<String, _>(i), |i| r.try_get::<i64, _>(i))),
        };
        Ok(row.transpose()?)
    }

    async fn simple(&self, sql: &'static str) -> Result<(), sqlx::Error> {
        match self {
            TargetDb::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            TargetDb::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
    }
}

fn decode(
    text: impl Fn(usize) -> Result<String, sqlx::Error>,
    int: impl Fn(usize) -> Result<i64, sqlx::Error>,
) -> Result<StepCommit, sqlx::Error> {
    Ok(StepCommit {
        run_id: text(0)?,
        step_index: int(1)?,
        attempt: int(2)?,
        output: text(3)?,
        audit: text(4)?,
        calls: text(5)?,
        logs: text(6)?,
        committed_at: text(7)?,
    })
}

impl StepTransaction {
    /// Writes `commit` as part of this transaction: call it last, right before
    /// [`commit`](Self::commit), so the record stands exactly when the step's writes do.
    pub async fn record_step_commit(&mut self, commit: &StepCommit) -> Result<(), TargetError> {
        let inserted = self
            .execute(
                "INSERT INTO runbook_step_commits (run_id, step_index, attempt, output, audit, \
                 calls, logs, committed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    SqlValue::Text(commit.run_id.clone()),
                    SqlValue::Integer(commit.step_index),
                    SqlValue::Integer(commit.attempt),
                    SqlValue::Text(commit.output.clone()),
                    SqlValue::Text(commit.audit.clone()),
                    SqlValue::Text(commit.calls.clone()),
                    SqlValue::Text(commit.logs.clone()),
                    SqlValue::Text(commit.committed_at.clone()),
                ],
            )
            .await?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(TargetError::HostTable(format!(
                "recording step {} of run {} inserted {inserted} rows",
                commit.step_index, commit.run_id
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tables_are_recognised_however_written() {
        for name in [
            "runbook_step_commits",
            "RUNBOOK_STEP_COMMITS",
            "public.runbook_step_commits",
            "db.public.\"Runbook_x\"",
        ] {
            assert!(is_host_table(name), "{name}");
        }
        for name in [
            "invoices",
            "billing.invoices",
            "my_runbook_notes",
            "runbook",
        ] {
            assert!(!is_host_table(name), "{name}");
        }
    }

    async fn sqlite() -> (tempfile::TempDir, TargetDb) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = TargetDb::connect(&url).await.unwrap();
        (dir, db)
    }

    fn commit(index: i64) -> StepCommit {
        StepCommit {
            run_id: "run-1".into(),
            step_index: index,
            attempt: 2,
            output: "{\"ok\":true}".into(),
            audit: "[]".into(),
            calls: "[]".into(),
            logs: "[]".into(),
            committed_at: "2026-12-06T04:00:00.000000Z".into(),
        }
    }

    #[tokio::test]
    async fn a_record_stands_only_if_its_transaction_commits() {
        let (_dir, db) = sqlite().await;
        db.ensure_step_commits().await.unwrap();
        db.ensure_step_commits().await.unwrap();

        let mut tx = db.begin().await.unwrap();
        tx.record_step_commit(&commit(0)).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(db.step_commit("run-1", 0).await.unwrap(), None);

        let mut tx = db.begin().await.unwrap();
        tx.record_step_commit(&commit(1)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.step_commit("run-1", 1).await.unwrap(), Some(commit(1)));
        assert_eq!(db.step_commit("run-2", 1).await.unwrap(), None);

        // One record per step: a second is refused, so a step cannot finish twice.
        let mut tx = db.begin().await.unwrap();
        assert!(tx.record_step_commit(&commit(1)).await.is_err());
        tx.rollback().await.unwrap();
    }
}
