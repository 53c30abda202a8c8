//! Control flow in the state store: the lease that says which process holds a run (and so
//! which runs are interrupted), approvals and their decisions, rollbacks, and the derived
//! state a run is in.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Transaction};

use super::audit::{NewAuditEntry, append_in_tx, append_spool_in_tx};
use super::codec::{col, format_ts, from_json, is_unique_violation, parse_ts, to_json};
use super::spool::AuditSpool;
use super::undo::{ClaimFor, claim_in};
use super::{Backend, LogLine, StateError, StateStore};

/// Key of the PostgreSQL advisory lock that serialises run creation with a concurrency
/// key: the first 8 bytes of sha256("runbook.runs.concurrency") as a big-endian i64.
const PG_RUNS_LOCK: i64 = 0x1c5e_9a0f_3b7d_2e41;

/// A process's claim on a running run, renewed by its heartbeat.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// What a run is doing, derived from its status, lease, approvals and rollbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// A process holds it and is executing it.
    Running,
    /// Paused at an approval step.
    AwaitingApproval,
    /// Unfinished and nobody holds it: its process died. `runbook resume` continues it.
    Interrupted,
    Succeeded,
    Failed,
    /// Failed, and its completed steps were undone.
    RolledBack,
    /// Failed, and at least one undo failed.
    RollbackFailed,
}

impl RunState {
    pub const ALL: [RunState; 7] = [
        RunState::Running,
        RunState::AwaitingApproval,
        RunState::Interrupted,
        RunState::Succeeded,
        RunState::Failed,
        RunState::RolledBack,
        RunState::RollbackFailed,
    ];
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::AwaitingApproval => "awaiting-approval",
            RunState::Interrupted => "interrupted",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::RolledBack => "rolled-back",
            RunState::RollbackFailed => "rollback-failed",
        })
    }
}

/// What an approval step asks, as rendered when the run reached it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalRequest {
    pub step_index: i64,
    pub message: String,
    /// `user` or `group:<name>` entries, as written in the runbook.
    pub approvers: Vec<String>,
    pub required: i64,
    pub allow_self: bool,
    pub requested_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    /// `reject` or `continue`.
    pub on_timeout: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalDecision {
    pub actor: String,
    pub decision: Decision,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalRecord {
    pub request: ApprovalRequest,
    pub decisions: Vec<ApprovalDecision>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RollbackRecord {
    pub step_index: i64,
    pub succeeded: bool,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
}

/// Serialises concurrency-key checks: on SQLite the write transaction already does.
pub(super) async fn lock_runs(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
) -> Result<(), StateError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)")
            .bind(PG_RUNS_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Releases `owner`'s lease on the run; `false` if `owner` did not hold it.
pub(super) async fn release_lease_in(
    conn: &mut AnyConnection,
    run_id: &str,
    owner: &str,
) -> Result<bool, StateError> {
    let released = sqlx::query(
        "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND lease_owner = $2",
    )
    .bind(run_id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(released.rows_affected() == 1)
}

pub(super) async fn set_rollback_status_in(
    conn: &mut AnyConnection,
    run_id: &str,
    status: RunState,
) -> Result<(), StateError> {
    sqlx::query("UPDATE runs SET rollback_status = $1 WHERE id = $2")
        .bind(status.to_string())
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl StateStore {
    /// Extends this process's lease; `false` if the run is no longer ours.
    pub async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<bool, StateError> {
        let updated =
            sqlx::query("UPDATE runs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(format_ts("lease", &lease.until)?)
                .bind(run_id)
                .bind(&lease.owner)
                .execute(&self.pool)
                .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Gives the run up (paused for approval, or finished).
    pub async fn release_lease(&self, run_id: &str, owner: &str) -> Result<(), StateError> {
        let mut conn = self.pool.acquire().await?;
        release_lease_in(&mut conn, run_id, owner).await?;
        Ok(())
    }

    /// Claims an unfinished run nobody holds (paused, or its process died).
    pub async fn take_over(
        &self,
        run_id: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        claim_in(&mut tx, self.backend, run_id, lease, now, ClaimFor::Resume).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// Marks a step that is being re-run (resume of a step that was in flight).
    pub async fn set_step_attempts(
        &self,
        run_id: &str,
        step_index: i64,
        attempts: i64,
    ) -> Result<(), StateError> {
        sqlx::query("UPDATE steps SET attempts = $1 WHERE run_id = $2 AND step_index = $3")
            .bind(attempts)
            .bind(run_id)
            .bind(step_index)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores the approval request of a step (once; a resumed run keeps the first one).
    pub async fn request_approval(
        &self,
        run_id: &str,
        request: &ApprovalRequest,
        audit: &NewAuditEntry,
    ) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT step_index FROM approvals WHERE run_id = $1 AND step_index = $2",
        )
        .bind(run_id)
        .bind(request.step_index)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_some() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO approvals (run_id, step_index, message, approvers, required, \
             allow_self, requested_at, deadline, on_timeout) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(run_id)
        .bind(request.step_index)
        .bind(&request.message)
        .bind(to_json("approvers", &request.approvers)?)
        .bind(request.required)
        .bind(i64::from(request.allow_self))
        .bind(format_ts("approval request time", &request.requested_at)?)
        .bind(
            request
                .deadline
                .as_ref()
                .map(|d| format_ts("approval deadline", d))
                .transpose()?,
        )
        .bind(&request.on_timeout)
        .execute(&mut *tx)
        .await?;
        append_in_tx(&mut tx, self.backend, std::slice::from_ref(audit)).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// The approval of step `step_index`, with every decision so far.
    pub async fn approval(
        &self,
        run_id: &str,
        step_index: i64,
    ) -> Result<Option<ApprovalRecord>, StateError> {
        let Some(row) = sqlx::query(
            "SELECT step_index, message, approvers, required, allow_self, requested_at, \
             deadline, on_timeout FROM approvals WHERE run_id = $1 AND step_index = $2",
        )
        .bind(run_id)
        .bind(step_index)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let request = request_from_row(run_id, &row)?;
        let decisions = sqlx::query(
            "SELECT actor, decision, comment, at FROM approval_decisions \
             WHERE run_id = $1 AND step_index = $2 ORDER BY at, actor",
        )
        .bind(run_id)
        .bind(step_index)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| decision_from_row(run_id, r))
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ApprovalRecord { request, decisions }))
    }

    /// The approval a paused run is waiting for: the request of its running step.
    pub async fn pending_approval(
        &self,
        run_id: &str,
    ) -> Result<Option<ApprovalRecord>, StateError> {
        let index: Option<i64> = sqlx::query_scalar(
            "SELECT a.step_index FROM approvals a JOIN steps s \
             ON s.run_id = a.run_id AND s.step_index = a.step_index \
             WHERE a.run_id = $1 AND s.status = 'running' ORDER BY a.step_index LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        match index {
            Some(i) => self.approval(run_id, i).await,
            None => Ok(None),
        }
    }

    /// Records one person's decision and its audit entry together. A second decision by
    /// the same person on the same approval is refused.
    pub async fn decide(
        &self,
        run_id: &str,
        step_index: i64,
        decision: &ApprovalDecision,
        audit: &NewAuditEntry,
    ) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "INSERT INTO approval_decisions (run_id, step_index, actor, decision, comment, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id)
        .bind(step_index)
        .bind(&decision.actor)
        .bind(match decision.decision {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        })
        .bind(&decision.comment)
        .bind(format_ts("decision time", &decision.at)?)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StateError::InvalidInput {
                    what: "decision",
                    reason: format!("{} has already decided on this approval", decision.actor),
                });
            }
            Err(e) => return Err(e.into()),
        }
        append_in_tx(&mut tx, self.backend, std::slice::from_ref(audit)).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// Records how one step was undone, with its audit entries.
    pub async fn record_rollback(
        &self,
        run_id: &str,
        rollback: &RollbackRecord,
        audit: AuditSpool,
    ) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rollbacks (run_id, step_index, status, output, error, logs, \
             started_at, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(run_id)
        .bind(rollback.step_index)
        .bind(if rollback.succeeded {
            "succeeded"
        } else {
            "failed"
        })
        .bind(
            rollback
                .output
                .as_ref()
                .map(|o| to_json("rollback output", o))
                .transpose()?,
        )
        .bind(&rollback.error)
        .bind(to_json("rollback logs", &rollback.logs)?)
        .bind(format_ts("rollback start", &rollback.started_at)?)
        .bind(rollback.duration_ms)
        .execute(&mut *tx)
        .await?;
        append_spool_in_tx(&mut tx, self.backend, audit).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    pub async fn rollbacks(&self, run_id: &str) -> Result<Vec<RollbackRecord>, StateError> {
        sqlx::query(
            "SELECT step_index, status, output, error, logs, started_at, duration_ms \
             FROM rollbacks WHERE run_id = $1 ORDER BY started_at",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| rollback_from_row(run_id, r))
        .collect()
    }

    /// How a failed run's rollback ended: `rolled-back` or `rollback-failed`.
    pub async fn set_rollback_status(
        &self,
        run_id: &str,
        status: RunState,
    ) -> Result<(), StateError> {
        let mut conn = self.pool.acquire().await?;
        set_rollback_status_in(&mut conn, run_id, status).await
    }

    /// The derived state of one run (see [`RunState`]).
    pub async fn run_state(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RunState, StateError> {
        let row = sqlx::query(
            "SELECT status, lease_owner, lease_expires_at, rollback_status, \
             (SELECT COUNT(*) FROM approvals a JOIN steps s ON s.run_id = a.run_id \
              AND s.step_index = a.step_index WHERE a.run_id = r.id AND s.status = 'running') \
             AS waiting FROM runs r WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StateError::RunNotFound(run_id.to_owned()))?;
        state_from_row(run_id, &row, now)
    }

    /// Unfinished runs, oldest first, with their derived state.
    pub async fn unfinished_runs(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, RunState)>, StateError> {
        let rows = sqlx::query(
            "SELECT id, status, lease_owner, lease_expires_at, rollback_status, \
             (SELECT COUNT(*) FROM approvals a JOIN steps s ON s.run_id = a.run_id \
              AND s.step_index = a.step_index WHERE a.run_id = r.id AND s.status = 'running') \
             AS waiting FROM runs r WHERE status = 'running' ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = col(row, "id", || "runs row".to_owned())?;
                let state = state_from_row(&id, row, now)?;
                Ok((id, state))
            })
            .collect()
    }
}

pub(super) fn state_from_row(
    run_id: &str,
    row: &AnyRow,
    now: DateTime<Utc>,
) -> Result<RunState, StateError> {
    let loc = || format!("runs row {run_id:?}");
    let status: String = col(row, "status", loc)?;
    let rollback: Option<String> = col(row, "rollback_status", loc)?;
    // A rollback (after a failure, or on demand after success) says more than the status.
    match (status.as_str(), rollback.as_deref()) {
        ("succeeded" | "failed", Some("rolled-back")) => return Ok(RunState::RolledBack),
        ("succeeded" | "failed", Some("rollback-failed")) => return Ok(RunState::RollbackFailed),
        _ => {}
    }
    Ok(match status.as_str() {
        "succeeded" => RunState::Succeeded,
        "failed" => RunState::Failed,
        _ => {
            let waiting: i64 = col(row, "waiting", loc)?;
            let until: Option<String> = col(row, "lease_expires_at", loc)?;
            let held = match until {
                Some(u) => parse_ts(|| format!("runs row {run_id:?}, lease"), &u)? > now,
                None => false,
            };
            if held {
                RunState::Running
            } else if waiting > 0 {
                RunState::AwaitingApproval
            } else {
                RunState::Interrupted
            }
        }
    })
}

fn request_from_row(run_id: &str, row: &AnyRow) -> Result<ApprovalRequest, StateError> {
    let loc = || format!("approvals row of run {run_id:?}");
    let at = |c: &str| format!("approvals row of run {run_id:?}, column {c}");
    let approvers: String = col(row, "approvers", loc)?;
    let requested: String = col(row, "requested_at", loc)?;
    let deadline: Option<String> = col(row, "deadline", loc)?;
    Ok(ApprovalRequest {
        step_index: col(row, "step_index", loc)?,
        message: col(row, "message", loc)?,
        approvers: from_json(|| at("approvers"), &approvers)?,
        required: col(row, "required", loc)?,
        allow_self: col::<i64>(row, "allow_self", loc)? != 0,
        requested_at: parse_ts(|| at("requested_at"), &requested)?,
        deadline: deadline
            .map(|d| parse_ts(|| at("deadline"), &d))
            .transpose()?,
        on_timeout: col(row, "on_timeout", loc)?,
    })
}

fn decision_from_row(run_id: &str, row: &AnyRow) -> Result<ApprovalDecision, StateError> {
    let loc = || format!("approval_decisions row of run {run_id:?}");
    let decision: String = col(row, "decision", loc)?;
    let at: String = col(row, "at", loc)?;
    Ok(ApprovalDecision {
        actor: col(row, "actor", loc)?,
        decision: if decision == "reject" {
            Decision::Reject
        } else {
            Decision::Approve
        },
        comment: col(row, "comment", loc)?,
        at: parse_ts(loc, &at)?,
    })
}

fn rollback_from_row(run_id: &str, row: &AnyRow) -> Result<RollbackRecord, StateError> {
    let loc = || format!("rollbacks row of run {run_id:?}");
    let at = |c: &str| format!("rollbacks row of run {run_id:?}, column {c}");
    let status: String = col(row, "status", loc)?;
    let output: Option<String> = col(row, "output", loc)?;
    let logs: String = col(row, "logs", loc)?;
    let started: String = col(row, "started_at", loc)?;
    Ok(RollbackRecord {
        step_index: col(row, "step_index", loc)?,
        succeeded: status == "succeeded",
        output: output.map(|o| from_json(|| at("output"), &o)).transpose()?,
        error: col(row, "error", loc)?,
        logs: from_json(|| at("logs"), &logs)?,
        started_at: parse_ts(|| at("started_at"), &started)?,
        duration_ms: col(row, "duration_ms", loc)?,
    })
}
