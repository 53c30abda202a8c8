//! Undoing a run: each completed step that declares a rollback, newest first, runs its
//! rollback plugin with what the step received, produced and did (its call journal).

use std::time::Instant;

use serde_json::{Value, json};

use super::report::RollbackReport;
use super::step::{Attempting, recording_limits, scope_plugin};
use super::{ExecError, Executor, RunScope};
use crate::capability::StepRecording;
use crate::contract::json::rollback::{Decision, JournalCall, RollbackInput, RolledBackStep};
use crate::spec::runbook::{RetryPolicy, Runbook, Step};
use crate::state::{
    AuditSpool, CallDecision, NewAuditEntry, RollbackRecord, RunDetail, RunState, StepStatus,
};
use crate::template::RunContext;

/// `rolled-back` if every rollback that ran succeeded, `rollback-failed` if one failed,
/// `None` if there was nothing to undo.
pub(super) fn rollback_state(rollbacks: &[RollbackReport]) -> Option<RunState> {
    if rollbacks.is_empty() {
        None
    } else if rollbacks.iter().all(|r| r.succeeded) {
        Some(RunState::RolledBack)
    } else {
        Some(RunState::RollbackFailed)
    }
}

/// How one rollback plugin's run ended.
struct Undone {
    succeeded: bool,
    output: Option<Value>,
    error: Option<String>,
    logs: Vec<crate::state::LogLine>,
    audit: AuditSpool,
}

/// The journal's decision as the contract names it; the test below keeps the two
/// spellings equal.
fn decision(decision: CallDecision) -> Decision {
    match decision {
        CallDecision::Allowed => Decision::Allowed,
        CallDecision::Denied => Decision::Denied,
        CallDecision::Replayed => Decision::Replayed,
        CallDecision::DryRun => Decision::DryRun,
        // The contract has no word for "possibly sent": a rollback plugin must treat the
        // effect as one it cannot be sure of, which `unknown` says.
        CallDecision::Intent | CallDecision::Unknown => Decision::Unknown,
    }
}

/// What rolling back a run would do now: the steps to undo, newest first, and the
/// completed steps that declare no rollback (they stay as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PendingUndo {
    pub undo: Vec<String>,
    pub without_rollback: Vec<String>,
}

impl PendingUndo {
    pub fn of(runbook: &Runbook, detail: &RunDetail) -> PendingUndo {
        let undo = undo_order(runbook, detail, runbook.steps.len())
            .map(|index| runbook.steps[index].id.clone())
            .collect();
        let without_rollback = runbook
            .steps
            .iter()
            .enumerate()
            .filter(|(index, step)| step.rollback.is_none() && succeeded(detail, *index))
            .map(|(_, step)| step.id.clone())
            .collect();
        PendingUndo {
            undo,
            without_rollback,
        }
    }
}

fn succeeded(detail: &RunDetail, index: usize) -> bool {
    detail
        .steps
        .iter()
        .any(|r| r.index == index as i64 && r.status == StepStatus::Succeeded)
}

/// The steps before `upto` that a rollback undoes, newest first: succeeded, declaring a
/// rollback, not undone yet.
fn undo_order<'a>(
    runbook: &'a Runbook,
    detail: &'a RunDetail,
    upto: usize,
) -> impl Iterator<Item = usize> + 'a {
    (0..upto.min(runbook.steps.len()))
        .rev()
        .filter(move |&index| {
            runbook.steps[index].rollback.is_some()
                && succeeded(detail, index)
                && !detail
                    .rollbacks
                    .iter()
                    .any(|r| r.step_index == index as i64)
        })
}

impl Executor<'_> {
    /// Rolls back the completed steps before `upto` (exclusive), newest first. A failed
    /// rollback is recorded and the others still run: undo as much as can be undone.
    pub(super) async fn roll_back(
        &self,
        scope: &mut RunScope,
        runbook: &Runbook,
        upto: usize,
        context: &RunContext,
    ) -> Result<Vec<RollbackReport>, ExecError> {
        let detail = self
            .state
            .run(&scope.run_id)
            .await?
            .ok_or_else(|| ExecError::NoSuchRun(scope.run_id.clone()))?;
        let mut reports = Vec::new();
        for index in undo_order(runbook, &detail, upto) {
            let step = &runbook.steps[index];
            let Some(rollback) = &step.rollback else {
                continue;
            };
            let Some(record) = detail.steps.iter().find(|r| r.index == index as i64) else {
                continue;
            };
            // A compensation runs only while this process still holds the run: one
            // that stalled past its lease stops before undoing anything more.
            if let Some(owner) = scope.lease_owner()
                && !self
                    .state
                    .holds_lease(&scope.run_id, &owner, chrono::Utc::now())
                    .await?
            {
                return Err(ExecError::LeaseLost {
                    run_id: scope.run_id.clone(),
                });
            }
            let started = Instant::now();
            let started_at = chrono::Utc::now();
            let calls: Vec<JournalCall> = detail
                .calls
                .iter()
                .filter(|c| c.step_index == index as i64)
                .map(|c| JournalCall {
                    attempt: c.attempt,
                    interface: c.interface.clone(),
                    operation: c.operation.clone(),
                    params: c.params.clone(),
                    decision: decision(c.decision),
                    ok: c.ok,
                    response: c.response.clone().unwrap_or(Value::Null),
                    error: c.error.clone(),
                })
                .collect();
            let rolled_back = RolledBackStep {
                id: step.id.clone(),
                input: record.input.clone(),
                output: record.output.clone().unwrap_or(Value::Null),
                calls,
            };
            let input = self
                .templates
                .render_input(&rollback.input, context)
                .map_err(|e| e.to_string())
                .and_then(|rendered| {
                    let mut extra = match rendered {
                        Value::Object(map) => map,
                        _ => Default::default(),
                    };
                    // `step` is the host's: a rendered key of that name never reaches the
                    // plugin (the flattened map would otherwise write it twice).
                    extra.remove("step");
                    let input = RollbackInput {
                        extra,
                        step: rolled_back,
                    };
                    // Through a `Value`, whose keys are sorted: the text plugins have always
                    // received.
                    serde_json::to_value(&input).map_err(|e| e.to_string())
                });
            let input = match input {
                Ok(input) => input,
                Err(e) => {
                    reports.push(
                        self.record_rollback(
                            scope,
                            (index, step),
                            (started, started_at),
                            Undone {
                                succeeded: false,
                                output: None,
                                error: Some(format!("rollback input: {e}")),
                                logs: Vec::new(),
                                audit: AuditSpool::new(),
                            },
                        )
                        .await?,
                    );
                    continue;
                }
            };
            // The rollback runs like a step of its own: its own grants, store and
            // transaction, journaled apart from the step (negative index) and with its
            // own idempotency keys.
            let undo = Step {
                id: format!("{}.rollback", step.id),
                name: None,
                plugin: rollback.plugin.clone(),
                when: None,
                // A rollback runs under the limits of the step it undoes.
                limits: step.limits,
                retry: RetryPolicy::default(),
                approval: None,
                on_failure: step.on_failure,
                rollback: None,
                input: Value::Null,
                grants: rollback.grants.clone(),
            };
            let plugins = scope.plugins.clone();
            let plugin = scope_plugin(&plugins, step, &rollback.plugin)?;
            let attempt = self
                .attempt(
                    scope,
                    Attempting {
                        journal_index: -(index as i64) - 1,
                        step: &undo,
                        plugin,
                    },
                    &input,
                    rollback.grants.clone(),
                    1,
                    StepRecording::new(recording_limits(&self.step_limits(&undo))),
                )
                .await;
            let (logs, audit) = attempt.recording.finish();
            if let Err(e) = self.state.record_calls(&scope.run_id, &attempt.calls).await {
                tracing::error!(target: "runbook::journal", "rollback call journal: {e}");
            }
            let succeeded = attempt.status == StepStatus::Succeeded;
            reports.push(
                self.record_rollback(
                    scope,
                    (index, step),
                    (started, started_at),
                    Undone {
                        succeeded,
                        output: attempt.output,
                        error: attempt.error,
                        logs,
                        audit,
                    },
                )
                .await?,
            );
        }
        Ok(reports)
    }

    async fn record_rollback(
        &self,
        scope: &RunScope,
        (index, step): (usize, &Step),
        (started, started_at): (Instant, chrono::DateTime<chrono::Utc>),
        Undone {
            succeeded,
            output,
            error,
            logs,
            mut audit,
        }: Undone,
    ) -> Result<RollbackReport, ExecError> {
        audit.push(NewAuditEntry {
            at: chrono::Utc::now(),
            actor: scope.actor.clone(),
            run_id: Some(scope.run_id.clone()),
            step_id: Some(step.id.clone()),
            plugin: step.rollback.as_ref().map(|r| r.plugin.clone()),
            plugin_digest: None,
            action: if succeeded {
                "step.rolled_back"
            } else {
                "step.rollback_failed"
            }
            .into(),
            target: format!("step:{}", step.id),
            detail: json!({ "output": output, "error": error }).to_string(),
        });
        let record = RollbackRecord {
            step_index: index as i64,
            succeeded,
            output: output.clone(),
            error: error.clone(),
            logs,
            started_at,
            duration_ms: started.elapsed().as_millis() as i64,
        };
        self.state
            .record_rollback(&scope.run_id, &record, audit)
            .await?;
        Ok(RollbackReport {
            step: step.id.clone(),
            succeeded,
            output,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_and_contract_spell_decisions_alike() {
        for d in [
            CallDecision::Allowed,
            CallDecision::Denied,
            CallDecision::Replayed,
            CallDecision::DryRun,
            CallDecision::Unknown,
        ] {
            assert_eq!(
                serde_json::to_value(d).unwrap(),
                serde_json::to_value(decision(d)).unwrap()
            );
        }
    }
}
