//! Runs and their steps: lifecycle writes (create, start, finish) and the listing and detail reads.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::audit::{NewAuditEntry, append_in_tx, append_spool_in_tx};
use super::journal::{CallRecord, insert_calls};
use super::spool::AuditSpool;
use super::{
    MIN_RUN_ID_PREFIX, StateError, StateStore, col, format_ts, from_json, is_unique_violation,
    parse_ts, to_json,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = StateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(StepStatus::Running),
            "succeeded" => Ok(StepStatus::Succeeded),
            "failed" => Ok(StepStatus::Failed),
            "skipped" => Ok(StepStatus::Skipped),
            _ => Err(StateError::InvalidStatus {
                kind: "step",
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
pub struct StepStart {
    pub index: i64,
    pub step_id: String,
    pub plugin: String,
    pub plugin_digest: String,
    pub input: Value,
    pub started_at: DateTime<Utc>,
    /// The attempt the step starts with (1, or more when resumed).
    pub attempts: i64,
    /// The owner of the executing process's lease. When given, the step is recorded only
    /// while that lease holds (checked in the same statement); a process that lost the
    /// run, or stalled past its lease, gets [`StateError::LeaseLost`]. Renewing the lease
    /// is the heartbeat's job.
    pub lease_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepOutcome {
    pub status: StepStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: String,
    /// "log", "stdout", "stderr" or "host".
    pub stream: String,
    pub message: String,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
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

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub index: i64,
    #[serde(default)]
    pub attempts: i64,
    pub step_id: String,
    pub plugin: String,
    pub plugin_digest: String,
    pub status: StepStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

fn run_status(location: impl FnOnce() -> String, text: &str) -> Result<RunStatus, StateError> {
    text.parse().map_err(|e: StateError| StateError::Corrupt {
        location: location(),
        reason: e.to_string(),
    })
}

fn step_status(location: impl FnOnce() -> String, text: &str) -> Result<StepStatus, StateError> {
    text.parse().map_err(|e: StateError| StateError::Corrupt {
        location: location(),
        reason: e.to_string(),
    })
}

fn opt_ts(
    location: impl FnOnce() -> String,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StateError> {
    text.map(|t| parse_ts(location, &t)).transpose()
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

fn step_from_row(run_id: &str, row: &AnyRow) -> Result<StepRecord, StateError> {
    let index: i64 = col(row, "step_index", || format!("steps row of run {run_id:?}"))?;
    let loc = || format!("steps row ({run_id:?}, {index})");
    let at = |c: &str| format!("steps row ({run_id:?}, {index}), column {c}");
    let status: String = col(row, "status", loc)?;
    let input: String = col(row, "input", loc)?;
    let output: Option<String> = col(row, "output", loc)?;
    let logs: String = col(row, "logs", loc)?;
    let started: String = col(row, "started_at", loc)?;
    let finished: Option<String> = col(row, "finished_at", loc)?;
    Ok(StepRecord {
        index,
        step_id: col(row, "step_id", loc)?,
        plugin: col(row, "plugin", loc)?,
        plugin_digest: col(row, "plugin_digest", loc)?,
        status: step_status(|| at("status"), &status)?,
        input: from_json(|| at("input"), &input)?,
        output: output.map(|o| from_json(|| at("output"), &o)).transpose()?,
        error: col(row, "error", loc)?,
        logs: from_json(|| at("logs"), &logs)?,
        started_at: parse_ts(|| at("started_at"), &started)?,
        finished_at: opt_ts(|| at("finished_at"), finished)?,
        duration_ms: col(row, "duration_ms", loc)?,
        attempts: col(row, "attempts", loc)?,
    })
}

/// The stored status of a run, read inside a transaction to explain a refused write.
async fn current_run_status(
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

/// A step's outcome with everything it recorded, stored in one transaction.
#[derive(Debug)]
pub struct StepFinish {
    pub index: i64,
    pub outcome: StepOutcome,
    /// Audit entries the step recorded, appended to the chain with the outcome.
    pub audit: AuditSpool,
    /// Calls of the step's last attempt not yet in the journal.
    pub calls: Vec<CallRecord>,
}

/// How a run ended, stored in one transaction by [`StateStore::end_run`].
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub status: RunStatus,
    pub error: Option<String>,
    /// Set when the run's completed steps were rolled back.
    pub rollback: Option<super::RunState>,
    /// The lease to release (this process's owner name).
    pub lease_owner: Option<String>,
    pub audit: Vec<NewAuditEntry>,
}

/// A step start with its text columns encoded, before any transaction is opened.
struct EncodedStart {
    input: String,
    started_at: String,
    /// When the lease must still be valid: now.
    lease_valid_at: String,
}

impl EncodedStart {
    fn new(step: &StepStart) -> Result<EncodedStart, StateError> {
        Ok(EncodedStart {
            input: to_json("step input", &step.input)?,
            started_at: format_ts("step start time", &step.started_at)?,
            lease_valid_at: format_ts("lease check time", &Utc::now())?,
        })
    }
}

async fn insert_start(
    conn: &mut AnyConnection,
    run_id: &str,
    step: &StepStart,
    encoded: EncodedStart,
) -> Result<(), StateError> {
    // One statement, so a run cannot finish (or change hands) between the check and the
    // insert.
    let sql = if step.lease_owner.is_some() {
        "INSERT INTO steps (run_id, step_index, step_id, plugin, plugin_digest, status, \
         input, logs, started_at, attempts) \
         SELECT $1, $2, $3, $4, $5, 'running', $6, '[]', $7, $8 \
         WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND status = 'running' \
         AND lease_owner = $9 AND lease_expires_at > $10)"
    } else {
        "INSERT INTO steps (run_id, step_index, step_id, plugin, plugin_digest, status, \
         input, logs, started_at, attempts) \
         SELECT $1, $2, $3, $4, $5, 'running', $6, '[]', $7, $8 \
         WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND status = 'running')"
    };
    let mut query = sqlx::query(sql)
        .bind(run_id)
        .bind(step.index)
        .bind(&step.step_id)
        .bind(&step.plugin)
        .bind(&step.plugin_digest)
        .bind(encoded.input)
        .bind(encoded.started_at)
        .bind(step.attempts);
    if let Some(owner) = &step.lease_owner {
        query = query.bind(owner).bind(encoded.lease_valid_at);
    }
    match query.execute(&mut *conn).await {
        Ok(r) if r.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(match current_run_status(conn, run_id).await? {
            None => StateError::RunNotFound(run_id.to_owned()),
            Some(RunStatus::Running) => StateError::LeaseLost {
                run_id: run_id.to_owned(),
            },
            Some(status) => StateError::RunNotRunning {
                run_id: run_id.to_owned(),
                status,
            },
        }),
        Err(e) if is_unique_violation(&e) => Err(StateError::StepExists {
            run_id: run_id.to_owned(),
            index: step.index,
        }),
        Err(e) => Err(e.into()),
    }
}

/// A step finish with its text columns encoded, before any transaction is opened.
struct EncodedFinish {
    finish: StepFinish,
    output: Option<String>,
    logs: String,
    finished_at: String,
}

impl EncodedFinish {
    fn new(finish: StepFinish) -> Result<EncodedFinish, StateError> {
        let outcome = &finish.outcome;
        if outcome.status == StepStatus::Running {
            return Err(StateError::InvalidInput {
                what: "step outcome",
                reason: "a finished step cannot be running".to_owned(),
            });
        }
        Ok(EncodedFinish {
            output: outcome
                .output
                .as_ref()
                .map(|o| to_json("step output", o))
                .transpose()?,
            logs: to_json("step logs", &outcome.logs)?,
            finished_at: format_ts("step finish time", &outcome.finished_at)?,
            finish,
        })
    }
}

async fn write_finish(
    conn: &mut AnyConnection,
    backend: super::Backend,
    run_id: &str,
    encoded: EncodedFinish,
) -> Result<(), StateError> {
    let EncodedFinish {
        finish,
        output,
        logs,
        finished_at,
    } = encoded;
    let step_index = finish.index;
    // Only a running step may finish: a second outcome must not silently overwrite the
    // first.
    let updated = sqlx::query(
        "UPDATE steps SET status = $1, output = $2, error = $3, logs = $4, \
         finished_at = $5, duration_ms = $6 \
         WHERE run_id = $7 AND step_index = $8 AND status = 'running'",
    )
    .bind(finish.outcome.status.as_str())
    .bind(output)
    .bind(&finish.outcome.error)
    .bind(logs)
    .bind(finished_at)
    .bind(finish.outcome.duration_ms)
    .bind(run_id)
    .bind(step_index)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM steps WHERE run_id = $1 AND step_index = $2")
                .bind(run_id)
                .bind(step_index)
                .fetch_optional(&mut *conn)
                .await?;
        return Err(match status {
            None => StateError::StepNotFound {
                run_id: run_id.to_owned(),
                index: step_index,
            },
            Some(s) => StateError::StepNotRunning {
                run_id: run_id.to_owned(),
                index: step_index,
                status: step_status(
                    || format!("steps row ({run_id:?}, {step_index}), column status"),
                    &s,
                )?,
            },
        });
    }
    insert_calls(conn, run_id, &finish.calls).await?;
    append_spool_in_tx(conn, backend, finish.audit).await
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
        tx.commit().await?;
        Ok(())
    }

    /// Records that step `step.index` of a running run has started.
    pub async fn start_step(&self, run_id: &str, step: &StepStart) -> Result<(), StateError> {
        self.start_step_after(run_id, None, step).await
    }

    /// Records the outcome of the step before (if any) and the start of the next one in
    /// one transaction: one commit per step boundary instead of two. The outcome is
    /// stored even when the lease turns out to be lost ([`StateError::LeaseLost`]); the
    /// start then is not.
    pub async fn start_step_after(
        &self,
        run_id: &str,
        previous: Option<StepFinish>,
        step: &StepStart,
    ) -> Result<(), StateError> {
        let start = EncodedStart::new(step)?;
        let previous = previous.map(EncodedFinish::new).transpose()?;
        let mut tx = self.begin_write().await?;
        if let Some(previous) = previous {
            write_finish(&mut tx, self.backend, run_id, previous).await?;
        }
        match insert_start(&mut tx, run_id, step, start).await {
            Err(lost @ StateError::LeaseLost { .. }) => {
                tx.commit().await?;
                Err(lost)
            }
            other => {
                other?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Records the outcome of a running step and appends `audit` to the chain,
    /// in one transaction: either both are stored or neither is.
    pub async fn finish_step(
        &self,
        run_id: &str,
        step_index: i64,
        outcome: &StepOutcome,
        audit: &[NewAuditEntry],
    ) -> Result<(), StateError> {
        self.finish_step_with(
            run_id,
            StepFinish {
                index: step_index,
                outcome: outcome.clone(),
                audit: audit.to_vec().into(),
                calls: Vec::new(),
            },
        )
        .await
    }

    /// Records the outcome of a running step, the calls of its last attempt and the
    /// audit entries it recorded, in one transaction: all are stored or none is.
    pub async fn finish_step_with(
        &self,
        run_id: &str,
        finish: StepFinish,
    ) -> Result<(), StateError> {
        let finish = EncodedFinish::new(finish)?;
        let mut tx = self.begin_write().await?;
        write_finish(&mut tx, self.backend, run_id, finish).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a running run finished now, as `status` (succeeded or failed).
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.end_run(
            run_id,
            None,
            &RunEnd {
                status,
                error: error.map(str::to_owned),
                rollback: None,
                lease_owner: None,
                audit: Vec::new(),
            },
        )
        .await
    }

    /// Ends a running run in one transaction: the outcome of its last step (if not yet
    /// stored), its status, how it was rolled back, the release of this process's lease
    /// and the run's closing audit entries.
    pub async fn end_run(
        &self,
        run_id: &str,
        last_step: Option<StepFinish>,
        end: &RunEnd,
    ) -> Result<(), StateError> {
        if end.status == RunStatus::Running {
            return Err(StateError::InvalidInput {
                what: "run status",
                reason: "a finished run cannot be running".to_owned(),
            });
        }
        let last_step = last_step.map(EncodedFinish::new).transpose()?;
        let finished_at = format_ts("run finish time", &Utc::now())?;
        let mut tx = self.begin_write().await?;
        if let Some(last_step) = last_step {
            write_finish(&mut tx, self.backend, run_id, last_step).await?;
        }
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2, error = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(end.status.as_str())
        .bind(finished_at)
        .bind(&end.error)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(match current_run_status(&mut tx, run_id).await? {
                None => StateError::RunNotFound(run_id.to_owned()),
                Some(status) => StateError::RunNotRunning {
                    run_id: run_id.to_owned(),
                    status,
                },
            });
        }
        if let Some(rollback) = end.rollback {
            super::control::set_rollback_status_in(&mut tx, run_id, rollback).await?;
        }
        if let Some(owner) = &end.lease_owner {
            super::control::release_lease_in(&mut tx, run_id, owner).await?;
        }
        append_in_tx(&mut tx, self.backend, &end.audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunSummary>, StateError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        // COUNT, not SUM: PostgreSQL's SUM over BIGINT is NUMERIC, which the
        // Any driver cannot decode.
        let rows = sqlx::query(
            "SELECT r.id, r.runbook, r.operator, r.status, r.started_at, r.finished_at, \
             r.lease_expires_at, r.rollback_status, \
             (SELECT COUNT(*) FROM approvals a JOIN steps s ON s.run_id = a.run_id \
              AND s.step_index = a.step_index WHERE a.run_id = r.id AND s.status = 'running') \
             AS waiting, \
             (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id) AS steps_total, \
             (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id AND s.status = 'failed') \
             AS steps_failed \
             FROM runs r ORDER BY r.started_at DESC, r.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let now = Utc::now();
        rows.iter().map(|r| summary_from_row(r, now)).collect()
    }

    /// The run `run_id` with its steps in index order.
    ///
    /// An exact id wins; otherwise `run_id` may be a prefix of at least
    /// [`MIN_RUN_ID_PREFIX`] characters matching exactly one run.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunDetail>, StateError> {
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
            return Ok(None);
        };
        let run = record_from_row(&row)?;
        let steps = sqlx::query(
            "SELECT step_index, step_id, plugin, plugin_digest, status, input, output, error, \
             logs, started_at, finished_at, duration_ms, attempts \
             FROM steps WHERE run_id = $1 ORDER BY step_index",
        )
        .bind(&run.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| step_from_row(&run.id, r))
        .collect::<Result<Vec<_>, _>>()?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::audit::AuditVerification;
    use super::super::testutil::on_all_backends;
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn new_run(id: &str, started: &str) -> NewRun {
        NewRun {
            concurrency_key: None,
            lease: None,
            dry_run: false,
            id: id.to_owned(),
            runbook: "refund-duplicate-charges".to_owned(),
            runbook_digest: "sha256:runbook".to_owned(),
            params: json!({"customer": "cus_123", "dry_run": true, "limit": 5}),
            operator: "alice@example.com".to_owned(),
            started_at: t(started),
        }
    }

    fn step_start(index: i64, step_id: &str) -> StepStart {
        StepStart {
            index,
            step_id: step_id.to_owned(),
            plugin: "stripe".to_owned(),
            plugin_digest: "sha256:plugin".to_owned(),
            input: json!({"index": index}),
            started_at: t("2025-06-01T10:00:01.000001Z"),
            attempts: 0,
            lease_owner: None,
        }
    }

    fn log(message: &str) -> LogLine {
        LogLine {
            at: t("2025-06-01T10:00:01.500000Z"),
            level: "info".to_owned(),
            stream: "log".to_owned(),
            message: message.to_owned(),
            fields: BTreeMap::from([("charge".to_owned(), "ch_1".to_owned())]),
        }
    }

    fn audit(run_id: &str, detail: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: t("2025-06-01T10:00:01.700000Z"),
            actor: "alice@example.com".to_owned(),
            run_id: Some(run_id.to_owned()),
            step_id: Some("lookup".to_owned()),
            plugin: Some("stripe".to_owned()),
            plugin_digest: Some("sha256:plugin".to_owned()),
            action: "http.request".to_owned(),
            target: "GET https://api.stripe.com/v1/charges".to_owned(),
            detail: detail.to_owned(),
        }
    }

    const RUN_A: &str = "0190aaaa-0000-7000-8000-000000000001";
    const RUN_B: &str = "0190bbbb-0000-7000-8000-000000000002";
    const RUN_B2: &str = "0190bbbb-0000-7000-8000-000000000003";

    #[test]
    fn statuses_round_trip_as_lowercase() {
        for s in [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed] {
            assert_eq!(s.to_string().parse::<RunStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for s in [
            StepStatus::Running,
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped,
        ] {
            assert_eq!(s.to_string().parse::<StepStatus>().unwrap(), s);
        }
        assert_eq!(StepStatus::Skipped.to_string(), "skipped");
        assert_eq!(
            serde_json::to_string(&RunStatus::Succeeded).unwrap(),
            "\"succeeded\""
        );
        assert!(matches!(
            "Running".parse::<RunStatus>(),
            Err(StateError::InvalidStatus { kind: "run", .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_lifecycle_round_trip() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let run_a = new_run(RUN_A, "2025-06-01T10:00:00.000000Z");
            store.create_run(&run_a).await.unwrap();
            assert!(matches!(
                store.create_run(&run_a).await,
                Err(StateError::RunExists(id)) if id == RUN_A
            ));

            store
                .start_step(RUN_A, &step_start(0, "lookup"))
                .await
                .unwrap();
            assert!(matches!(
                store.start_step(RUN_A, &step_start(0, "lookup")).await,
                Err(StateError::StepExists { index: 0, .. })
            ));
            let outcome0 = StepOutcome {
                status: StepStatus::Succeeded,
                output: Some(json!({"charges": ["ch_1", "ch_2"]})),
                error: None,
                logs: vec![log("found 2 charges"), log("done")],
                finished_at: t("2025-06-01T10:00:02.250000Z"),
                duration_ms: 1249,
            };
            store
                .finish_step(
                    RUN_A,
                    0,
                    &outcome0,
                    &[audit(RUN_A, "one"), audit(RUN_A, "two")],
                )
                .await
                .unwrap();
            // A second outcome for the same step is refused, and appends nothing.
            assert!(matches!(
                store
                    .finish_step(RUN_A, 0, &outcome0, &[audit(RUN_A, "x")])
                    .await,
                Err(StateError::StepNotRunning {
                    index: 0,
                    status: StepStatus::Succeeded,
                    ..
                })
            ));

            store
                .start_step(RUN_A, &step_start(1, "refund"))
                .await
                .unwrap();
            let outcome1 = StepOutcome {
                status: StepStatus::Failed,
                output: None,
                error: Some("card_declined".to_owned()),
                logs: vec![],
                finished_at: t("2025-06-01T10:00:03.000000Z"),
                duration_ms: 998,
            };
            store.finish_step(RUN_A, 1, &outcome1, &[]).await.unwrap();
            store
                .start_step(RUN_A, &step_start(2, "notify"))
                .await
                .unwrap();
            let outcome2 = StepOutcome {
                status: StepStatus::Skipped,
                output: Some(Value::Null),
                error: None,
                logs: vec![],
                finished_at: t("2025-06-01T10:00:03.000000Z"),
                duration_ms: 0,
            };
            store.finish_step(RUN_A, 2, &outcome2, &[]).await.unwrap();

            let before = Utc::now();
            store
                .finish_run(RUN_A, RunStatus::Failed, Some("step refund failed"))
                .await
                .unwrap();
            assert!(matches!(
                store.finish_run(RUN_A, RunStatus::Succeeded, None).await,
                Err(StateError::RunNotRunning {
                    status: RunStatus::Failed,
                    ..
                })
            ));
            assert!(matches!(
                store.start_step(RUN_A, &step_start(3, "late")).await,
                Err(StateError::RunNotRunning {
                    status: RunStatus::Failed,
                    ..
                })
            ));

            // A second, newer run still in progress.
            store
                .create_run(&new_run(RUN_B, "2025-06-02T08:00:00.000000Z"))
                .await
                .unwrap();
            store
                .start_step(RUN_B, &step_start(0, "lookup"))
                .await
                .unwrap();

            let list = store.list_runs(10).await.unwrap();
            assert_eq!(list.len(), 2);
            let b = &list[0];
            assert_eq!(b.id, RUN_B);
            assert_eq!(b.status, RunStatus::Running);
            assert_eq!(b.finished_at, None);
            assert_eq!(b.duration_ms, None);
            assert_eq!((b.steps_total, b.steps_failed), (1, 0));
            let a = &list[1];
            assert_eq!(a.id, RUN_A);
            assert_eq!(a.runbook, "refund-duplicate-charges");
            assert_eq!(a.operator, "alice@example.com");
            assert_eq!(a.status, RunStatus::Failed);
            assert_eq!(a.started_at, t("2025-06-01T10:00:00Z"));
            let finished = a.finished_at.expect("finished");
            // Stored to the microsecond.
            assert!(
                finished >= before - chrono::Duration::microseconds(1),
                "{finished}"
            );
            assert!(finished <= Utc::now());
            assert_eq!(
                a.duration_ms,
                Some((finished - a.started_at).num_milliseconds())
            );
            assert_eq!((a.steps_total, a.steps_failed), (3, 1));
            assert_eq!(store.list_runs(1).await.unwrap()[0].id, RUN_B);
            assert!(store.list_runs(0).await.unwrap().is_empty());

            let detail = store.run(RUN_A).await.unwrap().expect("run A");
            assert_eq!(
                detail.run,
                RunRecord {
                    id: RUN_A.to_owned(),
                    runbook: "refund-duplicate-charges".to_owned(),
                    runbook_digest: "sha256:runbook".to_owned(),
                    params: json!({"customer": "cus_123", "dry_run": true, "limit": 5}),
                    operator: "alice@example.com".to_owned(),
                    status: RunStatus::Failed,
                    started_at: t("2025-06-01T10:00:00Z"),
                    finished_at: Some(finished),
                    error: Some("step refund failed".to_owned()),
                    dry_run: false,
                }
            );
            assert_eq!(detail.steps.len(), 3);
            assert_eq!(
                detail.steps[0],
                StepRecord {
                    index: 0,
                    step_id: "lookup".to_owned(),
                    plugin: "stripe".to_owned(),
                    plugin_digest: "sha256:plugin".to_owned(),
                    status: StepStatus::Succeeded,
                    input: json!({"index": 0}),
                    output: Some(json!({"charges": ["ch_1", "ch_2"]})),
                    error: None,
                    logs: vec![log("found 2 charges"), log("done")],
                    started_at: t("2025-06-01T10:00:01.000001Z"),
                    finished_at: Some(t("2025-06-01T10:00:02.25Z")),
                    duration_ms: Some(1249),
                    attempts: 0,
                }
            );
            let s1 = &detail.steps[1];
            assert_eq!((s1.index, s1.step_id.as_str()), (1, "refund"));
            assert_eq!(s1.status, StepStatus::Failed);
            assert_eq!(s1.output, None);
            assert_eq!(s1.error.as_deref(), Some("card_declined"));
            assert_eq!(s1.logs, vec![]);
            assert_eq!(s1.duration_ms, Some(998));
            // Some(null) output stays distinct from no output.
            assert_eq!(detail.steps[2].status, StepStatus::Skipped);
            assert_eq!(detail.steps[2].output, Some(Value::Null));

            let running = store.run(RUN_B).await.unwrap().expect("run B");
            assert_eq!(running.run.status, RunStatus::Running);
            assert_eq!(running.run.finished_at, None);
            assert_eq!(running.steps[0].status, StepStatus::Running);
            assert_eq!(running.steps[0].output, None);
            assert_eq!(running.steps[0].logs, vec![]);
            assert_eq!(running.steps[0].finished_at, None);
            assert_eq!(running.steps[0].duration_ms, None);

            // finish_step's audit entries landed, in order, chained.
            let entries = store.audit_entries(Some(RUN_A), 10).await.unwrap();
            assert_eq!(
                entries
                    .iter()
                    .map(|e| (e.seq, e.detail.as_str()))
                    .collect::<Vec<_>>(),
                vec![(1, "one"), (2, "two")]
            );
            assert_eq!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact {
                    entries: 2,
                    head: Some(entries[1].hash.clone())
                }
            );

            // Prefixes.
            assert_eq!(
                store.run(&RUN_A[..8]).await.unwrap().map(|d| d.run.id),
                Some(RUN_A.to_owned())
            );
            assert_eq!(
                store
                    .run(&RUN_A[..20])
                    .await
                    .unwrap()
                    .map(|d| d.steps.len()),
                Some(3)
            );
            // Too short to be taken as a prefix.
            assert_eq!(store.run(&RUN_A[..7]).await.unwrap(), None);
            assert_eq!(store.run("0190cccc").await.unwrap(), None);
            assert_eq!(store.run("").await.unwrap(), None);
            // Prefixes are case-sensitive and `_`/`%` are not wildcards.
            assert_eq!(store.run("0190AAAA").await.unwrap(), None);
            assert_eq!(store.run("0190aaa_").await.unwrap(), None);
            assert_eq!(store.run("0190aaa%").await.unwrap(), None);

            store
                .create_run(&new_run(RUN_B2, "2025-06-02T09:00:00.000000Z"))
                .await
                .unwrap();
            match store.run("0190bbbb-0000").await {
                Err(StateError::AmbiguousRunId { prefix, candidates }) => {
                    assert_eq!(prefix, "0190bbbb-0000");
                    assert_eq!(candidates, vec![RUN_B.to_owned(), RUN_B2.to_owned()]);
                }
                other => panic!("expected AmbiguousRunId, got {other:?}"),
            }
            // A full id that is also a prefix of nothing else still resolves exactly.
            assert_eq!(
                store.run(RUN_B2).await.unwrap().map(|d| d.run.id),
                Some(RUN_B2.to_owned())
            );
            assert_eq!(
                store
                    .list_runs(10)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>(),
                vec![RUN_B2, RUN_B, RUN_A]
            );
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exact_id_wins_over_prefix_matches() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run("run-12345678", "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            store
                .create_run(&new_run("run-123456789", "2025-06-01T10:00:01Z"))
                .await
                .unwrap();
            assert_eq!(
                store.run("run-12345678").await.unwrap().map(|d| d.run.id),
                Some("run-12345678".to_owned())
            );
            assert!(matches!(
                store.run("run-1234").await,
                Err(StateError::AmbiguousRunId { .. })
            ));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lifecycle_errors_name_what_is_missing() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            assert!(matches!(
                store.start_step("ghost", &step_start(0, "x")).await,
                Err(StateError::RunNotFound(id)) if id == "ghost"
            ));
            assert!(matches!(
                store.finish_run("ghost", RunStatus::Succeeded, None).await,
                Err(StateError::RunNotFound(id)) if id == "ghost"
            ));
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            let outcome = StepOutcome {
                status: StepStatus::Succeeded,
                output: None,
                error: None,
                logs: vec![],
                finished_at: t("2025-06-01T10:00:01Z"),
                duration_ms: 1,
            };
            assert!(matches!(
                store
                    .finish_step(RUN_A, 7, &outcome, &[audit(RUN_A, "x")])
                    .await,
                Err(StateError::StepNotFound { index: 7, .. })
            ));
            assert!(matches!(
                store.finish_run(RUN_A, RunStatus::Running, None).await,
                Err(StateError::InvalidInput { .. })
            ));
            let mut running = outcome.clone();
            running.status = StepStatus::Running;
            assert!(matches!(
                store.finish_step(RUN_A, 0, &running, &[]).await,
                Err(StateError::InvalidInput { .. })
            ));
            assert!(matches!(
                store.create_run(&new_run("", "2025-06-01T10:00:00Z")).await,
                Err(StateError::InvalidInput { what: "run id", .. })
            ));
            // Refused writes appended nothing.
            assert!(store.audit_entries(None, 10).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finish_step_is_atomic_with_its_audit_entries() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            store
                .start_step(RUN_A, &step_start(0, "lookup"))
                .await
                .unwrap();
            let outcome = StepOutcome {
                status: StepStatus::Succeeded,
                output: Some(json!(1)),
                error: None,
                logs: vec![log("hi")],
                finished_at: t("2025-06-01T10:00:01Z"),
                duration_ms: 5,
            };
            // The second entry cannot be stored (its time is out of range),
            // after the step update and the first entry were written.
            let mut bad = audit(RUN_A, "bad");
            bad.at = chrono::TimeZone::with_ymd_and_hms(&Utc, 10000, 1, 1, 0, 0, 0).unwrap();
            assert!(matches!(
                store
                    .finish_step(RUN_A, 0, &outcome, &[audit(RUN_A, "good"), bad])
                    .await,
                Err(StateError::InvalidInput {
                    what: "audit entry time",
                    ..
                })
            ));
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps[0].status, StepStatus::Running);
            assert_eq!(detail.steps[0].output, None);
            assert!(store.audit_entries(None, 10).await.unwrap().is_empty());

            // And the store is still usable afterwards.
            store
                .finish_step(RUN_A, 0, &outcome, &[audit(RUN_A, "good")])
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps[0].status, StepStatus::Succeeded);
            assert_eq!(store.audit_entries(None, 10).await.unwrap().len(), 1);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_boundary_is_one_transaction_and_spooled_audit_chains_in_order() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let lease = super::super::Lease {
                owner: "pid 1 (test)".to_owned(),
                until: Utc::now() + chrono::Duration::seconds(60),
            };
            let mut run = new_run(RUN_A, "2025-06-01T10:00:00Z");
            run.lease = Some(lease.clone());
            store
                .create_run_with(&run, &[audit(RUN_A, "run.started")])
                .await
                .unwrap();
            let mut first = step_start(0, "lookup");
            first.lease_owner = Some(lease.owner.clone());
            first.attempts = 1;
            store.start_step(RUN_A, &first).await.unwrap();

            // Far more entries than the spool keeps in memory: most come back from its file.
            let mut spool = AuditSpool::new();
            for i in 0..3_000 {
                spool.push(audit(RUN_A, &format!("entry {i}")));
            }
            let outcome = StepOutcome {
                status: StepStatus::Succeeded,
                output: Some(json!({"rows": 3000})),
                error: None,
                logs: vec![],
                finished_at: t("2025-06-01T10:00:02Z"),
                duration_ms: 7,
            };
            let finish = StepFinish {
                index: 0,
                outcome,
                audit: spool,
                calls: Vec::new(),
            };
            let mut second = step_start(1, "refund");
            second.lease_owner = Some(lease.owner.clone());
            store
                .start_step_after(RUN_A, Some(finish), &second)
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps[0].status, StepStatus::Succeeded);
            assert_eq!(detail.steps[0].attempts, 1);
            assert_eq!(detail.steps[1].status, StepStatus::Running);
            let entries = store.audit_entries(Some(RUN_A), 5_000).await.unwrap();
            assert_eq!(entries.len(), 3_001);
            assert_eq!(entries[0].detail, "run.started");
            assert_eq!(entries[1].detail, "entry 0");
            assert_eq!(entries[3_000].detail, "entry 2999");
            assert!(matches!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact { entries: 3_001, .. }
            ));

            // Another process took the run over: the outcome is kept, the start refused.
            let thief = super::super::Lease {
                owner: "pid 2 (resume)".to_owned(),
                until: Utc::now() + chrono::Duration::seconds(60),
            };
            store.release_lease(RUN_A, &lease.owner).await.unwrap();
            store.take_over(RUN_A, &thief, Utc::now()).await.unwrap();
            let finish = StepFinish {
                index: 1,
                outcome: StepOutcome {
                    status: StepStatus::Failed,
                    output: None,
                    error: Some("declined".into()),
                    logs: vec![],
                    finished_at: t("2025-06-01T10:00:03Z"),
                    duration_ms: 1,
                },
                audit: vec![audit(RUN_A, "step 1")].into(),
                calls: Vec::new(),
            };
            let mut third = step_start(2, "notify");
            third.lease_owner = Some(lease.owner.clone());
            assert!(matches!(
                store.start_step_after(RUN_A, Some(finish), &third).await,
                Err(StateError::LeaseLost { .. })
            ));
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps.len(), 2);
            assert_eq!(detail.steps[1].status, StepStatus::Failed);

            // The run ends in one transaction: status, rollback state, lease, audit.
            store
                .end_run(
                    RUN_A,
                    None,
                    &RunEnd {
                        status: RunStatus::Failed,
                        error: Some("step `refund` failed".into()),
                        rollback: Some(super::super::RunState::RolledBack),
                        lease_owner: Some(thief.owner.clone()),
                        audit: vec![audit(RUN_A, "run.finished")],
                    },
                )
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.run.status, RunStatus::Failed);
            assert_eq!(detail.state, super::super::RunState::RolledBack);
            let entries = store.audit_entries(Some(RUN_A), 5_000).await.unwrap();
            assert_eq!(entries.last().unwrap().detail, "run.finished");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_rows_are_errors_not_panics() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            store
                .start_step(RUN_A, &step_start(0, "lookup"))
                .await
                .unwrap();

            sqlx::query("UPDATE steps SET logs = 'not json' WHERE run_id = $1")
                .bind(RUN_A)
                .execute(&store.pool)
                .await
                .unwrap();
            match store.run(RUN_A).await {
                Err(StateError::Corrupt { location, .. }) => {
                    assert_eq!(location, format!("steps row ({RUN_A:?}, 0), column logs"));
                }
                other => panic!("unexpected {other:?}"),
            }

            sqlx::query("UPDATE runs SET started_at = 'noon' WHERE id = $1")
                .bind(RUN_A)
                .execute(&store.pool)
                .await
                .unwrap();
            match store.list_runs(10).await {
                Err(StateError::Corrupt { location, reason }) => {
                    assert_eq!(location, format!("runs row {RUN_A:?}, column started_at"));
                    assert!(reason.contains("noon"), "{reason}");
                }
                other => panic!("unexpected {other:?}"),
            }
        })
        .await;
    }
}
