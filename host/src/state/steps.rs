//! Step rows: step statuses, what a step starts and ends with, and reading a run's steps.
//!
//! Steps are written only at step boundaries, in [`super::boundary`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::codec::{col, from_json, opt_ts, parse_ts};
use super::{StateError, StateStore};

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

pub(super) fn step_status(
    location: impl FnOnce() -> String,
    text: &str,
) -> Result<StepStatus, StateError> {
    text.parse().map_err(|e: StateError| StateError::Corrupt {
        location: location(),
        reason: e.to_string(),
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

impl StateStore {
    /// The steps of run `run_id`, in index order.
    pub(super) async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StateError> {
        sqlx::query(
            "SELECT step_index, step_id, plugin, plugin_digest, status, input, output, error, \
             logs, started_at, finished_at, duration_ms, attempts \
             FROM steps WHERE run_id = $1 ORDER BY step_index",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| step_from_row(run_id, r))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testutil::{RUN_A, new_run, on_all_backends, step_start};

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
