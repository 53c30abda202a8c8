//! Run rows: run statuses, creating a run, and the listing and detail reads.
//!
//! How a run ends is a step-boundary commit, in [`super::boundary`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::audit::{NewAuditEntry, append_in_tx};
use super::codec::{col, format_ts, from_json, is_unique_violation, opt_ts, parse_ts, to_json};
use super::steps::StepRecord;
use super::{StateError, StateStore};

/// Shortest run-id prefix [`StateStore::run`] resolves; shorter ones would match
/// too much by accident.
pub const MIN_RUN_ID_PREFIX: usize = 8;

/// How many candidates an [`StateError::AmbiguousRunId`] lists.
const AMBIGUOUS_CANDIDATES: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = StateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            _ => Err(StateError::InvalidStatus {
                kind: "run",
                value: s.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewRun {
    /// A dry run: recorded like any other, its effects only planned.
    pub dry_run: bool,
    pub id: String,
    pub runbook: String,
    pub runbook_digest: String,
    pub params: Value,
    pub operator: String,
    pub started_at: DateTime<Utc>,
    /// While another unfinished run of the same runbook has this key, creating is refused.
    pub concurrency_key: Option<String>,
    /// The creating process holds the run until then (renewed by its heartbeat).
    pub lease: Option<super::control::Lease>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub runbook: String,
    pub operator: String,
    pub status: RunStatus,
    /// Finer than `status`: awaiting approval, interrupted, rolled back, ...
    pub state: super::control::RunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub steps_total: i64,
    pub steps_failed: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub state: super::control::RunState,
    /// The approval the run waits for, if it is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<super::control::ApprovalRecord>,
    #[serde(default)]
    pub rollbacks: Vec<super::control::RollbackRecord>,
    pub steps: Vec<StepRecord>,
    /// Every capability call of the run (see [`super::journal`]).
    #[serde(default)]
    pub calls: Vec<super::journal::CallRecord>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    #[serde(default)]
    pub dry_run: bool,
    pub id: String,
    pub runbook: String,
    pub runbook_digest: String,
    pub params: Value,
    pub operator: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

pub(super) fn run_status(
    location: impl FnOnce() -> String,
    text: &str,
) -> Result<RunStatus, StateError> {
    text.parse().map_err(|e: StateError| StateError::Corrupt {
        location: location(),
        reason: e.to_string(),
    })
}

fn summary_from_row(row: &AnyRow, now: DateTime<Utc>) -> Result<RunSummary, StateError> {
    let id: String = col(row, "id", || "runs row".to_owned())?;
    let state = super::control::state_from_row(&id, row, now)?;
    let loc = || format!("runs row {id:?}");
    let status: String = col(row, "status", loc)?;
    let started: String = col(row, "started_at", loc)?;
    let finished: Option<String> = col(row, "finished_at", loc)?;
    let started_at = parse_ts(|| format!("runs row {id:?}, column started_at"), &started)?;
    let finished_at = opt_ts(|| format!("runs row {id:?}, column finished_at"), finished)?;
    Ok(RunSummary {
        runbook: col(row, "runbook", loc)?,
        operator: col(row, "operator", loc)?,
        status: run_status(|| format!("runs row {id:?}, column status"), &status)?,
        started_at,
        finished_at,
        // A clock that stepped backwards must not yield a negative duration.
        duration_ms: finished_at.map(|f| (f - started_at).num_milliseconds().max(0)),
        steps_total: col(row, "steps_total", loc)?,
        steps_failed: col(row, "steps_failed", loc)?,
        state,
        id,
    })
}

fn record_from_row(row: &AnyRow) -> Result<RunRecord, StateError> {
    let id: String = col(row, "id", || "runs row".to_owned())?;
    let loc = || format!("runs row {id:?}");
    let params: String = col(row, "params", loc)?;
    let status: String = col(row, "status", loc)?;
    let started: String = col(row, "started_at", loc)?;
    let finished: Option<String> = col(row, "finished_at", loc)?;
    Ok(RunRecord {
        runbook: col(row, "runbook", loc)?,
        runbook_digest: col(row, "runbook_digest", loc)?,
        params: from_json(|| format!("runs row {id:?}, column params"), &params)?,
        operator: col(row, "operator", loc)?,
        status: run_status(|| format!("runs row {id:?}, column status"), &status)?,
        started_at: parse_ts(|| format!("runs row {id:?}, column started_at"), &started)?,
        finished_at: opt_ts(|| format!("runs row {id:?}, column finished_at"), finished)?,
        error: col(row, "error", loc)?,
        dry_run: col::<i64>(row, "dry_run", loc)? != 0,
        id,
    })
}

/// The stored status of a run, read inside a transaction to explain a refused write.
pub(super) async fn current_run_status(
    conn: &mut AnyConnection,
    run_id: &str,
) -> Result<Option<RunStatus>, StateError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?;
    status
        .map(|s| run_status(|| format!("runs row {run_id:?}, column status"), &s))
        .transpose()
}

impl StateStore {
    /// Records a new run in status `running`, unless another unfinished run of the same
    /// runbook has the same concurrency key ([`StateError::ConcurrentRun`]).
    pub async fn create_run(&self, run: &NewRun) -> Result<(), StateError> {
        self.create_run_with(run, &[]).await
    }

    /// [`create_run`](Self::create_run), with the run's opening audit entries appended
    /// in the same transaction.
    pub async fn create_run_with(
        &self,
        run: &NewRun,
        audit: &[NewAuditEntry],
    ) -> Result<(), StateError> {
        if run.id.is_empty() {
            return Err(StateError::InvalidInput {
                what: "run id",
                reason: "it is empty".to_owned(),
            });
        }
        let params = to_json("run params", &run.params)?;
        let started_at = format_ts("run start time", &run.started_at)?;
        let (lease_owner, lease_until) = match &run.lease {
            Some(l) => (Some(l.owner.clone()), Some(format_ts("lease", &l.until)?)),
            None => (None, None),
        };
        let mut tx = self.begin_write().await?;
        if let Some(key) = &run.concurrency_key {
            super::control::lock_runs(&mut tx, self.backend).await?;
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT id FROM runs WHERE runbook = $1 AND concurrency_key = $2 \
                 AND status = 'running' ORDER BY started_at LIMIT 1",
            )
            .bind(&run.runbook)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(holder) = holder {
                return Err(StateError::ConcurrentRun {
                    run_id: holder,
                    key: key.clone(),
                });
            }
        }
        let result = sqlx::query(
            "INSERT INTO runs (id, runbook, runbook_digest, params, operator, status, started_at, \
             dry_run, concurrency_key, lease_owner, lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10)",
        )
        .bind(&run.id)
        .bind(&run.runbook)
        .bind(&run.runbook_digest)
        .bind(params)
        .bind(&run.operator)
        .bind(started_at)
        .bind(i64::from(run.dry_run))
        .bind(&run.concurrency_key)
        .bind(lease_owner)
        .bind(lease_until)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StateError::RunExists(run.id.clone())),
            Err(e) => return Err(e.into()),
        }
        append_in_tx(&mut tx, self.backend, audit).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunSummary>, StateError> {
        self.find_runs(&RunFilter::default(), limit).await
    }

    /// The newest `limit` runs that `filter` keeps, newest first.
    pub async fn find_runs(
        &self,
        filter: &RunFilter,
        limit: i64,
    ) -> Result<Vec<RunSummary>, StateError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let since = filter
            .since
            .as_ref()
            .map(|at| format_ts("--since", at))
            .transpose()?;
        // The state and the parameters are judged after reading (one is derived, the
        // other JSON), so rows are read a page at a time until enough are kept.
        let page = if filter.judged_after_reading() {
            PAGE
        } else {
            limit
        };
        let mut kept = Vec::new();
        let mut offset = 0i64;
        let now = Utc::now();
        loop {
            // COUNT, not SUM: PostgreSQL's SUM over BIGINT is NUMERIC, which the
            // Any driver cannot decode.
            let rows = sqlx::query(
                "SELECT r.id, r.runbook, r.operator, r.status, r.started_at, r.finished_at, \
                 r.lease_expires_at, r.rollback_status, r.params, \
                 (SELECT COUNT(*) FROM approvals a JOIN steps s ON s.run_id = a.run_id \
                  AND s.step_index = a.step_index WHERE a.run_id = r.id AND s.status = 'running') \
                 AS waiting, \
                 (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id) AS steps_total, \
                 (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id AND s.status = 'failed') \
                 AS steps_failed \
                 FROM runs r WHERE ($3 IS NULL OR r.runbook = $3) \
                 AND ($4 IS NULL OR r.operator = $4) AND ($5 IS NULL OR r.started_at >= $5) \
                 ORDER BY r.started_at DESC, r.id DESC LIMIT $1 OFFSET $2",
            )
            .bind(page)
            .bind(offset)
            .bind(filter.runbook.as_deref())
            .bind(filter.operator.as_deref())
            .bind(since.as_deref())
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                let summary = summary_from_row(row, now)?;
                let params: String = col(row, "params", || format!("runs row {:?}", summary.id))?;
                if filter.keeps(&summary, &params) {
                    kept.push(summary);
                }
            }
            if kept.len() as i64 >= limit || (rows.len() as i64) < page {
                kept.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                return Ok(kept);
            }
            offset += page;
        }
    }

    /// The run `run_id` with its steps in index order.
    ///
    /// An exact id wins; otherwise `run_id` may be a prefix of at least
    /// [`MIN_RUN_ID_PREFIX`] characters matching exactly one run, or `last` (the newest
    /// run) or `last:<runbook>` (the newest run of that runbook).
    pub async fn run(&self, reference: &str) -> Result<Option<RunDetail>, StateError> {
        let newest;
        let run_id = match reference.strip_prefix("last") {
            Some(rest) if rest.is_empty() || rest.starts_with(':') => {
                let runbook = rest.strip_prefix(':');
                newest = sqlx::query_scalar::<_, String>(
                    "SELECT id FROM runs WHERE ($1 IS NULL OR runbook = $1) \
                     ORDER BY started_at DESC, id DESC LIMIT 1",
                )
                .bind(runbook)
                .fetch_optional(&self.pool)
                .await?;
                match &newest {
                    Some(id) => id.as_str(),
                    None => return Ok(None),
                }
            }
            _ => reference,
        };
        const RUN_COLUMNS: &str = "SELECT id, runbook, runbook_digest, params, operator, status, started_at, \
             finished_at, error, dry_run FROM runs WHERE id = $1";
        let mut row = sqlx::query(RUN_COLUMNS)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        let prefix_len = run_id.chars().count();
        if row.is_none() && prefix_len >= MIN_RUN_ID_PREFIX {
            // substr rather than LIKE: LIKE is case-insensitive on SQLite and
            // would treat `_` and `%` in the prefix as wildcards.
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM runs WHERE substr(id, 1, CAST($2 AS INTEGER)) = $1 \
                 ORDER BY id LIMIT $3",
            )
            .bind(run_id)
            .bind(i64::try_from(prefix_len).unwrap_or(i64::MAX))
            .bind(AMBIGUOUS_CANDIDATES)
            .fetch_all(&self.pool)
            .await?;
            match ids.as_slice() {
                [] => {}
                [only] => {
                    row = sqlx::query(RUN_COLUMNS)
                        .bind(only)
                        .fetch_optional(&self.pool)
                        .await?;
                }
                _ => {
                    return Err(StateError::AmbiguousRunId {
                        prefix: run_id.to_owned(),
                        candidates: ids,
                    });
                }
            }
        }
        let Some(row) = row else {
            if prefix_len < MIN_RUN_ID_PREFIX && !reference.starts_with("last") {
                return Err(StateError::RunIdTooShort {
                    prefix: run_id.to_owned(),
                    min: MIN_RUN_ID_PREFIX,
                });
            }
            return Ok(None);
        };
        let run = record_from_row(&row)?;
        let steps = self.steps(&run.id).await?;
        let calls = self.calls(&run.id).await?;
        let state = self.run_state(&run.id, Utc::now()).await?;
        let pending_approval = self.pending_approval(&run.id).await?;
        let rollbacks = self.rollbacks(&run.id).await?;
        Ok(Some(RunDetail {
            run,
            state,
            pending_approval,
            rollbacks,
            steps,
            calls,
        }))
    }
}

mod filter;
#[cfg(test)]
mod tests;

use filter::PAGE;
pub use filter::RunFilter;
