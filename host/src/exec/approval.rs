//! Approval steps: the rendered request, who may decide, quorum, timeouts, and asking the
//! person at the terminal before pausing the run for others.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::report::{AwaitingApproval, StepReport};
use super::{ExecError, Executor, RunObserver, RunScope};
use crate::spec::runbook::{Approval, OnTimeout, Step};
use crate::state::{
    ApprovalDecision, ApprovalRecord, ApprovalRequest, Decision, NewAuditEntry, StepOutcome,
    StepStart, StepStatus,
};
use crate::template::RunContext;

/// Approver groups from `runbook.toml`: group name → member names.
pub type Groups = BTreeMap<String, Vec<String>>;

pub(super) enum Gate {
    /// Decided (approved, rejected or timed out): the step is finished.
    Open(StepReport),
    /// Waiting for people who are not here.
    Waiting(AwaitingApproval),
}

/// Whether `actor` is one of `approvers`, by name or through a `group:<name>`.
pub(super) fn is_listed(approvers: &[String], actor: &str, groups: &Groups) -> bool {
    approvers.iter().any(|a| match a.strip_prefix("group:") {
        Some(group) => groups
            .get(group)
            .is_some_and(|m| m.iter().any(|x| x == actor)),
        None => a == actor,
    })
}

/// Why someone may not decide on an approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEligible {
    #[error("{actor} is not an approver of this step (approvers: {})", approvers.join(", "))]
    NotAnApprover {
        actor: String,
        approvers: Vec<String>,
    },
    #[error("{actor} started this run and may not approve it (the step does not set allow_self)")]
    StartedTheRun { actor: String },
    #[error("{actor} has already decided on this approval")]
    AlreadyDecided { actor: String },
}

/// Whether `actor` may decide on `record`: named directly or through a group, not the
/// person who started the run unless the step allows it, and not twice.
pub fn may_approve(
    record: &ApprovalRecord,
    actor: &str,
    run_operator: &str,
    groups: &Groups,
) -> Result<(), NotEligible> {
    if !is_listed(&record.request.approvers, actor, groups) {
        return Err(NotEligible::NotAnApprover {
            actor: actor.to_string(),
            approvers: record.request.approvers.clone(),
        });
    }
    if actor == run_operator && !record.request.allow_self {
        return Err(NotEligible::StartedTheRun {
            actor: actor.to_string(),
        });
    }
    if record.decisions.iter().any(|d| d.actor == actor) {
        return Err(NotEligible::AlreadyDecided {
            actor: actor.to_string(),
        });
    }
    Ok(())
}

impl Executor<'_> {
    pub(super) async fn approval_step(
        &self,
        scope: &mut RunScope,
        (index, step): (usize, &Step),
        approval: &Approval,
        context: &RunContext,
        resumed: bool,
        observer: &mut dyn RunObserver,
    ) -> Result<Gate, ExecError> {
        let started = Instant::now();
        let mut report = StepReport::approval(step);
        if !resumed {
            self.state
                .start_step(
                    &scope.run_id,
                    &StepStart {
                        index: index as i64,
                        step_id: step.id.clone(),
                        plugin: String::new(),
                        plugin_digest: String::new(),
                        input: json!({ "approvers": approval.approvers, "required": approval.required }),
                        started_at: chrono::Utc::now(),
                        attempts: 0,
                        lease_owner: scope.lease_owner(),
                    },
                )
                .await?;
        }
        let condition = match &step.when {
            Some(when) => self.templates.eval_condition(when, context),
            None => Ok(true),
        };
        let message = self
            .templates
            .render_string(&approval.message, context)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        let (status, output, error) = match (condition, message) {
            (Err(e), _) => (
                StepStatus::Failed,
                None,
                Some(format!("`when` condition: {e}")),
            ),
            (Ok(false), _) => (StepStatus::Skipped, None, None),
            (_, Err(e)) => (
                StepStatus::Failed,
                None,
                Some(format!("approval message: {e}")),
            ),
            // A dry run plans; nobody is asked to approve what will not happen.
            (Ok(true), Ok(_)) if scope.dry_run => (
                StepStatus::Succeeded,
                Some(
                    json!({ "approved": true, "dry_run": true, "approvers": [], "timed_out": false }),
                ),
                None,
            ),
            (Ok(true), Ok(message)) => {
                match self
                    .decide_approval(scope, index, step, approval, message, observer)
                    .await?
                {
                    Ok(done) => done,
                    Err(waiting) => return Ok(Gate::Waiting(waiting)),
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        self.state
            .finish_step(
                &scope.run_id,
                index as i64,
                &StepOutcome {
                    status,
                    output: output.clone(),
                    error: error.clone(),
                    logs: Vec::new(),
                    finished_at: chrono::Utc::now(),
                    duration_ms,
                },
                &[],
            )
            .await?;
        report.status = status;
        report.output = output;
        report.error = error;
        report.duration_ms = duration_ms;
        Ok(Gate::Open(report))
    }

    /// `Ok(Ok(outcome))` when decided; `Ok(Err(waiting))` when the run must pause.
    #[allow(clippy::type_complexity)]
    async fn decide_approval(
        &self,
        scope: &mut RunScope,
        index: usize,
        step: &Step,
        approval: &Approval,
        message: String,
        observer: &mut dyn RunObserver,
    ) -> Result<Result<(StepStatus, Option<Value>, Option<String>), AwaitingApproval>, ExecError>
    {
        let run_id = scope.run_id.clone();
        let mut record = match self.state.approval(&run_id, index as i64).await? {
            Some(record) => record,
            None => {
                let now = chrono::Utc::now();
                let request = ApprovalRequest {
                    step_index: index as i64,
                    message,
                    approvers: approval.approvers.clone(),
                    required: i64::from(approval.required),
                    allow_self: approval.allow_self,
                    requested_at: now,
                    deadline: approval
                        .timeout
                        .and_then(|t| chrono::Duration::from_std(t).ok())
                        .map(|t| now + t),
                    on_timeout: approval.on_timeout.as_str().to_string(),
                };
                let audit = self.approval_audit(
                    scope,
                    step,
                    "approval.requested",
                    json!({
                        "message": request.message,
                        "approvers": request.approvers,
                        "required": request.required,
                        "deadline": request.deadline,
                    }),
                );
                self.state
                    .request_approval(&run_id, &request, &audit)
                    .await?;
                ApprovalRecord {
                    request,
                    decisions: Vec::new(),
                }
            }
        };
        loop {
            let approvers: Vec<&str> = record
                .decisions
                .iter()
                .filter(|d| d.decision == Decision::Approve)
                .map(|d| d.actor.as_str())
                .collect();
            if let Some(rejection) = record
                .decisions
                .iter()
                .find(|d| d.decision == Decision::Reject)
            {
                return Ok(Ok((
                    StepStatus::Failed,
                    None,
                    Some(format!(
                        "rejected by {}{}",
                        rejection.actor,
                        rejection
                            .comment
                            .as_ref()
                            .map_or(String::new(), |c| format!(": {c}"))
                    )),
                )));
            }
            if approvers.len() as i64 >= record.request.required {
                return Ok(Ok((
                    StepStatus::Succeeded,
                    Some(json!({ "approved": true, "approvers": approvers, "timed_out": false })),
                    None,
                )));
            }
            if let Some(deadline) = record.request.deadline
                && deadline <= chrono::Utc::now()
            {
                let audit = self.approval_audit(
                    scope,
                    step,
                    "approval.timed_out",
                    json!({
                        "deadline": deadline,
                        "approvals": approvers,
                        "on_timeout": record.request.on_timeout,
                    }),
                );
                self.state.append_audit(&[audit]).await?;
                return Ok(Ok(match approval.on_timeout {
                    OnTimeout::Reject => (
                        StepStatus::Failed,
                        None,
                        Some(format!(
                            "approval timed out at {deadline} with {} of {} approvals",
                            approvers.len(),
                            record.request.required
                        )),
                    ),
                    OnTimeout::Continue => (
                        StepStatus::Succeeded,
                        Some(
                            json!({ "approved": false, "approvers": approvers, "timed_out": true }),
                        ),
                        None,
                    ),
                }));
            }
            let eligible = may_approve(&record, &scope.actor, &scope.operator, &self.groups);
            let Some((decision, comment)) =
                observer.ask_approval(step, &record.request, &scope.actor, eligible.clone())
            else {
                return Ok(Err(self.waiting(step, &record)));
            };
            if eligible.is_err() {
                return Ok(Err(self.waiting(step, &record)));
            }
            let action = match decision {
                Decision::Approve => "approval.granted",
                Decision::Reject => "approval.rejected",
            };
            let audit = self.approval_audit(
                scope,
                step,
                action,
                json!({ "comment": comment, "at_terminal": true }),
            );
            self.state
                .decide(
                    &run_id,
                    index as i64,
                    &ApprovalDecision {
                        actor: scope.actor.clone(),
                        decision,
                        comment,
                        at: chrono::Utc::now(),
                    },
                    &audit,
                )
                .await?;
            record = self
                .state
                .approval(&run_id, index as i64)
                .await?
                .expect("the request was stored above");
        }
    }

    fn waiting(&self, step: &Step, record: &ApprovalRecord) -> AwaitingApproval {
        AwaitingApproval {
            step: step.id.clone(),
            message: record.request.message.clone(),
            approvers: record.request.approvers.clone(),
            required: record.request.required,
            approved_by: record
                .decisions
                .iter()
                .filter(|d| d.decision == Decision::Approve)
                .map(|d| d.actor.clone())
                .collect(),
            deadline: record.request.deadline,
        }
    }

    fn approval_audit(
        &self,
        scope: &RunScope,
        step: &Step,
        action: &str,
        detail: Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at: chrono::Utc::now(),
            actor: scope.actor.clone(),
            run_id: Some(scope.run_id.clone()),
            step_id: Some(step.id.clone()),
            plugin: None,
            plugin_digest: None,
            action: action.into(),
            target: format!("step:{}", step.id),
            detail: detail.to_string(),
        }
    }
}
