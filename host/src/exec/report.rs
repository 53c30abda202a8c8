//! What a run produced, for the terminal summary and `--json`.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::{ExecError, RunScope};
use crate::runtime::CacheOutcome;
use crate::spec::runbook::{Runbook, Step};
use crate::state::{RunDetail, RunState, RunStatus, StateError, StepRecord, StepStatus};

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub runbook: String,
    pub status: RunStatus,
    /// Finer than `status`: `awaiting-approval`, `rolled-back`, `rollback-failed`, ...
    pub state: RunState,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub dry_run: bool,
    pub steps: Vec<StepReport>,
    /// How completed steps were undone after a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollbacks: Vec<RollbackReport>,
    /// What the paused run waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<AwaitingApproval>,
    /// A dry run's planned effects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<super::Plan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub name: Option<String>,
    /// Empty for an approval step.
    pub plugin: String,
    pub plugin_digest: String,
    /// Whether the plugin came from the precompiled cache or was compiled for this run;
    /// `None` for approvals and steps finished by an earlier process.
    pub plugin_cache: Option<CacheOutcome>,
    pub status: StepStatus,
    pub duration_ms: i64,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub audit_records: usize,
    /// Attempts made (more than one when a transient failure was retried).
    pub attempts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub step: String,
    pub succeeded: bool,
    pub output: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AwaitingApproval {
    pub step: String,
    pub message: String,
    pub approvers: Vec<String>,
    pub required: i64,
    pub approved_by: Vec<String>,
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

impl RunReport {
    /// A report of the run in `scope` that ended (or paused) in `status`/`state`: no
    /// error, steps, rollbacks, approval or plan yet (callers add theirs).
    pub(super) fn of(
        scope: &RunScope,
        runbook: &Runbook,
        started: Instant,
        status: RunStatus,
        state: RunState,
    ) -> RunReport {
        RunReport {
            run_id: scope.run_id.clone(),
            runbook: runbook.name.clone(),
            status,
            state,
            error: None,
            duration_ms: started.elapsed().as_millis() as i64,
            dry_run: scope.dry_run,
            steps: Vec::new(),
            rollbacks: Vec::new(),
            awaiting: None,
            plan: None,
        }
    }
}

impl StepReport {
    pub(super) fn new(step: &Step, digest: &str, cache: CacheOutcome) -> StepReport {
        StepReport {
            id: step.id.clone(),
            name: step.name.clone(),
            plugin: step.plugin.clone(),
            plugin_digest: digest.to_string(),
            plugin_cache: Some(cache),
            status: StepStatus::Running,
            duration_ms: 0,
            output: None,
            error: None,
            audit_records: 0,
            attempts: 0,
        }
    }

    pub(super) fn approval(step: &Step) -> StepReport {
        StepReport {
            plugin_cache: None,
            ..StepReport::new(step, "", CacheOutcome::Hit)
        }
    }

    /// A step finished by the process that ran it before this one.
    pub(super) fn from_record(step: &Step, record: &StepRecord) -> StepReport {
        StepReport {
            id: step.id.clone(),
            name: step.name.clone(),
            plugin: record.plugin.clone(),
            plugin_digest: record.plugin_digest.clone(),
            plugin_cache: None,
            status: record.status,
            duration_ms: record.duration_ms.unwrap_or(0),
            output: record.output.clone(),
            error: record.error.clone(),
            audit_records: 0,
            attempts: record.attempts.max(0) as u32,
        }
    }

    /// The recorded steps of a run, each named by its runbook step. A step index the
    /// runbook does not have means the state store was tampered with or corrupted.
    pub(super) fn from_records(
        runbook: &Runbook,
        detail: &RunDetail,
    ) -> Result<Vec<StepReport>, ExecError> {
        detail
            .steps
            .iter()
            .map(|record| {
                let step = usize::try_from(record.index)
                    .ok()
                    .and_then(|i| runbook.steps.get(i))
                    .ok_or_else(|| StateError::Corrupt {
                        location: format!("run {} step {}", detail.run.id, record.index),
                        reason: format!(
                            "runbook `{}` has {} steps",
                            runbook.name,
                            runbook.steps.len()
                        ),
                    })?;
                Ok(StepReport::from_record(step, record))
            })
            .collect()
    }
}
