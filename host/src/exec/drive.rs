//! The step loop shared by new and resumed runs: each step in order (steps an earlier
//! process finished are not run again), approvals, the failure policy, then the run's end
//! (rollback, the final commit, the dry run's plan). Each step boundary is one commit:
//! a step's outcome is stored with the next step's start, or with the run's end.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::approval::Gate;
use super::report::{AwaitingApproval, StepReport};
use super::rollback::rollback_state;
use super::run::run_audit;
use super::step::scope_plugin;
use super::{ExecError, Executor, Plan, RunObserver, RunReport, RunScope, lease};
use crate::failpoint;
use crate::spec::runbook::{OnFailure, Runbook, Step};
use crate::state::{
    Lease, RunEnd, RunState, RunStatus, StateStore, StepFinish, StepRecord, StepStatus,
};
use crate::template::RunContext;

/// How the loop over the steps ended.
enum Stop {
    /// Every step ran (or failed with `on_failure = continue`).
    Completed,
    /// A step failed and the run stops; `rollback_from` is its index when completed
    /// steps are to be undone.
    Failed {
        error: String,
        rollback_from: Option<usize>,
    },
    /// An approval step waits for people who are not here.
    Awaiting(AwaitingApproval),
}

/// One run being driven by this process.
pub(super) struct Drive<'a, 'o> {
    exec: &'a Executor<'a>,
    runbook: &'a Runbook,
    observer: &'o mut dyn RunObserver,
    scope: RunScope,
    lease: Lease,
    heartbeat: lease::Heartbeat,
    context: RunContext,
    reports: Vec<StepReport>,
    /// The outcome of the step that just ran, not stored yet: it goes with the next
    /// step's start (or the run's end) so that each step boundary costs one commit.
    pending: Option<StepFinish>,
    started: Instant,
}

impl<'a, 'o> Drive<'a, 'o> {
    /// Takes the run's lease (renewed by a heartbeat from now on).
    pub(super) fn start(
        exec: &'a Executor<'a>,
        runbook: &'a Runbook,
        mut scope: RunScope,
        lease: Lease,
        params: Map<String, Value>,
        observer: &'o mut dyn RunObserver,
    ) -> Drive<'a, 'o> {
        scope.lease = Some(lease.clone());
        let heartbeat = lease::Heartbeat::start(
            exec.state.clone(),
            scope.run_id.clone(),
            lease.clone(),
            exec.lease_ttl,
            scope.watch.clone(),
        );
        let context = RunContext::new(
            &Value::Object(params),
            &scope.run_id,
            scope.dry_run,
            &scope.operator,
        );
        Drive {
            exec,
            runbook,
            observer,
            scope,
            lease,
            heartbeat,
            context,
            reports: Vec::with_capacity(runbook.steps.len()),
            pending: None,
            started: Instant::now(),
        }
    }

    /// Runs the steps `prior` (the run's steps recorded by earlier processes) does not
    /// show as finished, then ends or pauses the run. Should that fail (a step's outcome
    /// the store refused, say), the run is ended as failed with the reason rather than
    /// left `running` (see [`give_up`]).
    pub(super) async fn run(mut self, prior: &[StepRecord]) -> Result<RunReport, ExecError> {
        let held = Held {
            state: self.exec.state.clone(),
            run_id: self.scope.run_id.clone(),
            owner: self.lease.owner.clone(),
            actor: self.scope.actor.clone(),
            runbook: self.runbook.name.clone(),
            dry_run: self.scope.dry_run,
        };
        let result = match self.steps(prior).await {
            Ok(stop) => self.finish(stop).await,
            Err(e) => {
                // Stops the heartbeat: from here on the lease is released or lapses.
                drop(self);
                Err(e)
            }
        };
        match result {
            Err(e) => Err(give_up(held, e).await),
            ok => ok,
        }
    }

    async fn steps(&mut self, prior: &[StepRecord]) -> Result<Stop, ExecError> {
        let runbook = self.runbook;
        for (index, step) in runbook.steps.iter().enumerate() {
            let earlier = prior.iter().find(|r| r.index == index as i64);
            if let Some(record) = earlier
                && record.status != StepStatus::Running
            {
                // Finished before this process took the run over: it is not run again.
                let report = StepReport::from_record(step, record);
                self.observer.step_finished(index, &report);
                self.remember(step, report);
                continue;
            }
            // A process that stalled past its lease may have lost the run to a resume
            // elsewhere: it must not start another step. A new step's start is recorded
            // only while the lease holds; a step that was in flight renews it here.
            if earlier.is_some() && !self.renew_lease().await? {
                return Err(ExecError::LeaseLost {
                    run_id: self.scope.run_id.clone(),
                });
            }
            self.observer.step_started(index, step);
            let report = match self.step(index, step, earlier).await? {
                Gate::Open(report) => report,
                Gate::Waiting(waiting) => return Ok(Stop::Awaiting(waiting)),
            };
            self.observer.step_finished(index, &report);
            // `after-step:<id>`: the moment the step is recorded, so a resume must
            // continue with the next one.
            if failpoint::armed("after-step", &step.id) {
                self.store_pending().await?;
                failpoint::die("after-step", &step.id);
            }
            let failed = report.status == StepStatus::Failed;
            let error = report.error.clone().unwrap_or_default();
            self.remember(step, report);
            if failed && step.on_failure != OnFailure::Continue {
                return Ok(Stop::Failed {
                    error: format!("step `{}` failed: {error}", step.id),
                    rollback_from: (step.on_failure == OnFailure::Rollback).then_some(index),
                });
            }
        }
        Ok(Stop::Completed)
    }

    /// One step that has not finished yet: an approval gate or a plugin step.
    async fn step(
        &mut self,
        index: usize,
        step: &Step,
        earlier: Option<&StepRecord>,
    ) -> Result<Gate, ExecError> {
        if let Some(approval) = &step.approval {
            self.store_pending().await?;
            return self
                .exec
                .approval_step(
                    &mut self.scope,
                    (index, step),
                    approval,
                    &self.context,
                    earlier.is_some(),
                    &mut *self.observer,
                )
                .await;
        }
        // A step in flight whose target transaction committed is finished: its
        // completion record, not another attempt, supplies its outcome.
        if let Some(in_flight) = earlier
            && !self.scope.dry_run
        {
            let plugins = self.scope.plugins.clone();
            let plugin = scope_plugin(&plugins, step, &step.plugin)?;
            let recorded = self
                .exec
                .finished_in_target(&self.scope.run_id, (index, step), plugin, in_flight)
                .await?;
            if let Some((report, finish)) = recorded {
                self.store_pending().await?;
                self.pending = Some(finish);
                return Ok(Gate::Open(report));
            }
        }
        let previous = self.pending.take();
        let (report, finish) = self
            .exec
            .run_step(
                &mut self.scope,
                (index, step),
                &mut self.context,
                earlier,
                previous,
            )
            .await?;
        self.pending = Some(finish);
        Ok(Gate::Open(report))
    }

    /// Makes a finished step's output and status visible to later steps' templates.
    fn remember(&mut self, step: &Step, report: StepReport) {
        self.context.set_step(
            &step.id,
            report.output.as_ref().unwrap_or(&Value::Null),
            report.status.as_str(),
        );
        self.reports.push(report);
    }

    async fn renew_lease(&mut self) -> Result<bool, ExecError> {
        let renewed = lease::renewed(&self.lease, self.exec.lease_ttl);
        Ok(self
            .exec
            .state
            .renew_lease(&self.scope.run_id, &renewed)
            .await?)
    }

    /// Stores the outcome of the step that ran last, if it is not stored yet.
    async fn store_pending(&mut self) -> Result<(), ExecError> {
        if let Some(finish) = self.pending.take() {
            self.exec
                .state
                .finish_step_with(&self.scope.run_id, finish)
                .await?;
        }
        Ok(())
    }

    /// Ends the run as `stop` says, or pauses it for approval.
    async fn finish(mut self, stop: Stop) -> Result<RunReport, ExecError> {
        let (mut failure, rollback_from, awaiting) = match stop {
            Stop::Completed => (None, None, None),
            Stop::Failed {
                error,
                rollback_from,
            } => (Some(error), rollback_from, None),
            Stop::Awaiting(waiting) => (None, None, Some(waiting)),
        };
        // A dry run leaves the target database exactly as it found it.
        if let Some(tx) = self.scope.dry_tx.take()
            && let Err(e) = tx.rollback().await
        {
            failure.get_or_insert(format!(
                "the dry run's transaction could not be rolled back: {e}"
            ));
        }
        if let Some(waiting) = awaiting {
            return self.pause(waiting).await;
        }
        let rollbacks = match rollback_from {
            Some(index) if !self.scope.dry_run => {
                // The failed step's outcome is stored before anything is undone.
                self.store_pending().await?;
                self.exec
                    .roll_back(&mut self.scope, self.runbook, index, &self.context)
                    .await?
            }
            _ => Vec::new(),
        };
        let status = if failure.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let Drive {
            exec,
            runbook,
            scope,
            lease,
            heartbeat,
            reports,
            mut pending,
            started,
            ..
        } = self;
        heartbeat.stop();
        let rolled = rollback_state(&rollbacks);
        let finished = run_audit(
            &scope.run_id,
            &scope.actor,
            "run.finished",
            &runbook.name,
            json!({ "status": status, "error": failure, "dry_run": scope.dry_run, "rollback": rolled }),
        );
        exec.state
            .end_run(
                &scope.run_id,
                pending.take(),
                &RunEnd {
                    status,
                    error: failure.clone(),
                    rollback: rolled,
                    lease_owner: Some(lease.owner.clone()),
                    audit: vec![finished],
                },
            )
            .await?;
        let plan = if scope.dry_run {
            let step_ids: Vec<String> = runbook.steps.iter().map(|s| s.id.clone()).collect();
            let mut plan = Plan::from_calls(&exec.state.calls(&scope.run_id).await?, &step_ids);
            plan.approvals = reports
                .iter()
                .filter(|r| r.plugin.is_empty())
                .map(|r| r.id.clone())
                .collect();
            Some(plan)
        } else {
            None
        };
        let state = rolled.unwrap_or(match status {
            RunStatus::Succeeded => RunState::Succeeded,
            _ => RunState::Failed,
        });
        Ok(RunReport {
            error: failure,
            steps: reports,
            rollbacks,
            plan,
            ..RunReport::of(&scope, runbook, started, status, state)
        })
    }

    /// Stores what ran, lets go of the run and reports what it waits for.
    async fn pause(mut self, waiting: AwaitingApproval) -> Result<RunReport, ExecError> {
        self.store_pending().await?;
        let Drive {
            exec,
            runbook,
            scope,
            lease,
            heartbeat,
            reports,
            started,
            ..
        } = self;
        heartbeat.stop();
        exec.state
            .release_lease(&scope.run_id, &lease.owner)
            .await?;
        Ok(RunReport {
            steps: reports,
            awaiting: Some(waiting),
            ..RunReport::of(
                &scope,
                runbook,
                started,
                RunStatus::Running,
                RunState::AwaitingApproval,
            )
        })
    }
}

/// What ending a run needs once its [`Drive`] is gone.
struct Held {
    state: StateStore,
    run_id: String,
    owner: String,
    actor: String,
    runbook: String,
    dry_run: bool,
}

/// This process gives up on a run it holds because of `error`: one try to end it as
/// failed with the reason (a small write of host text only, which cannot hit the limit a
/// refused outcome did), releasing the lease; failing that, one try to release the lease
/// alone, so the run shows as interrupted at once rather than when the lease lapses.
/// A lost lease means another process may hold the run: it is left alone.
async fn give_up(held: Held, error: ExecError) -> ExecError {
    if matches!(error, ExecError::LeaseLost { .. }) {
        return error;
    }
    let reason = error.to_string();
    tracing::error!(target: "runbook::run", run_id = %held.run_id, "ending the run as failed: {reason}");
    let closing = run_audit(
        &held.run_id,
        &held.actor,
        "run.finished",
        &held.runbook,
        json!({ "status": RunStatus::Failed, "error": reason, "dry_run": held.dry_run, "outcome_recorded": false }),
    );
    let ended = held
        .state
        .abandon_run(&held.run_id, &held.owner, &reason, Some(closing))
        .await;
    let Err(end_error) = ended else {
        return ExecError::RunEndedAfter {
            run_id: held.run_id,
            error: Box::new(error),
        };
    };
    let lease_released = match held.state.release_lease(&held.run_id, &held.owner).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(target: "runbook::run", run_id = %held.run_id, "could not release the run's lease: {e}");
            false
        }
    };
    ExecError::RunAbandoned {
        run_id: held.run_id,
        error: Box::new(error),
        end_error,
        lease_released,
    }
}
