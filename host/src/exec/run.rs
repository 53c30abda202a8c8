//! The three ways into a run: start a new one (`exec`), continue one that paused or was
//! interrupted (`resume`), and undo one (`rollback`). Each checks what it must before it
//! touches the run, opens the run the same way (a [`RunScope`] holding its plugins and
//! budgets), then hands it to the step loop or to the rollback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::drive::Drive;
use super::preflight::Plugins;
use super::report::StepReport;
use super::rollback::rollback_state;
use super::{ExecError, Executor, RunObserver, RunReport, RunScope, approval, lease};
use crate::capability::RunBudget;
use crate::spec::runbook::Runbook;
use crate::state::{
    NewAuditEntry, NewRun, RollbackEnd, RunDetail, RunState, RunStatus, StateError,
};
use crate::template::RunContext;

impl Executor<'_> {
    /// Starts a new run of `runbook` and drives it until it finishes or pauses.
    pub async fn execute(
        &self,
        runbook: &Runbook,
        given: &BTreeMap<String, Value>,
        operator: &str,
        observer: &mut dyn RunObserver,
    ) -> Result<RunReport, ExecError> {
        let params = runbook.resolve_params(given).map_err(ExecError::Params)?;
        let plugins = self.preflight(runbook, operator).await?;
        let concurrency_key = match &runbook.concurrency_key {
            Some(template) => Some(
                self.templates
                    .render_string(template, &json!({ "params": params }))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .map_err(|e| ExecError::Params(vec![format!("concurrency_key: {e}")]))?,
            ),
            None => None,
        };

        let run_id = uuid::Uuid::now_v7().to_string();
        let lease = lease::new_lease(self.lease_ttl);
        let dry_tx = match (&self.target, self.dry_run) {
            (Some(target), true) => Some(target.begin().await?),
            _ => None,
        };
        let started_audit = run_audit(
            &run_id,
            operator,
            "run.started",
            &runbook.name,
            json!({ "params": params, "dry_run": self.dry_run, "concurrency_key": concurrency_key }),
        );
        let created = self
            .state
            .create_run_with(
                &NewRun {
                    id: run_id.clone(),
                    runbook: runbook.name.clone(),
                    runbook_digest: runbook.digest.clone(),
                    params: Value::Object(params.clone()),
                    operator: operator.to_string(),
                    started_at: chrono::Utc::now(),
                    dry_run: self.dry_run,
                    concurrency_key: concurrency_key.clone(),
                    lease: Some(lease.clone()),
                },
                &[started_audit],
            )
            .await;
        if let Err(StateError::ConcurrentRun {
            run_id: holder,
            key,
        }) = created
        {
            return Err(ExecError::Concurrent {
                runbook: runbook.name.clone(),
                key,
                run_id: holder,
            });
        }
        // Nothing has run yet: a store that cannot record the run is the setup's fault
        // (read-only file, full disk, no permission), reported as such.
        created.map_err(ExecError::NotRecorded)?;
        observer.run_started(&run_id, runbook);
        let mut scope = RunScope::open(run_id, operator, operator, plugins, RunBudget::default());
        scope.dry_run = self.dry_run;
        scope.dry_tx = dry_tx;
        Drive::start(self, runbook, scope, lease, params, observer)
            .run(&[])
            .await
    }

    /// Continues a run that is paused for approval or was interrupted: completed steps
    /// keep their outputs, a step that was in flight runs again (its effects answered
    /// from the journal), and the rest run as usual.
    pub async fn resume(
        &self,
        runbook: &Runbook,
        run_id: &str,
        actor: &str,
        observer: &mut dyn RunObserver,
    ) -> Result<RunReport, ExecError> {
        let detail = self.recorded_run(runbook, run_id).await?;
        let record = &detail.run;
        if record.dry_run {
            return Err(ExecError::NotResumable {
                run_id: record.id.clone(),
                reason: "it is a dry run, whose database transaction ended with its process".into(),
            });
        }
        let plugins = self.preflight(runbook, actor).await?;
        let lease = lease::new_lease(self.lease_ttl);
        self.state
            .take_over(&record.id, &lease, chrono::Utc::now())
            .await
            .map_err(|e| match e {
                StateError::RunNotRunning { run_id, status } => ExecError::NotResumable {
                    run_id,
                    reason: format!("it has already {status}"),
                },
                other => other.into(),
            })?;
        self.state
            .append_audit(&[run_audit(
                &record.id,
                actor,
                "run.resumed",
                &runbook.name,
                json!({ "state": detail.state }),
            )])
            .await?;
        observer.run_started(&record.id, runbook);
        let params = match &record.params {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        let step_ids: Vec<String> = runbook.steps.iter().map(|s| s.id.clone()).collect();
        let budget = RunBudget::from_journal(&detail.calls, &step_ids);
        let scope = RunScope::open(record.id.clone(), &record.operator, actor, plugins, budget);
        Drive::start(self, runbook, scope, lease, params, observer)
            .run(&detail.steps)
            .await
    }

    /// Rolls back the completed steps of a finished (or abandoned) run, newest first.
    /// The run is claimed first, like a resume claims it: while another process holds it
    /// (its step loop, a resume, another rollback) the rollback is refused, so no
    /// compensation runs twice.
    pub async fn roll_back_run(
        &self,
        runbook: &Runbook,
        run_id: &str,
        actor: &str,
    ) -> Result<RunReport, ExecError> {
        let detail = self.recorded_run(runbook, run_id).await?;
        let run_id = detail.run.id.clone();
        if !runbook.rollback_approvers.is_empty()
            && !approval::is_listed(&runbook.rollback_approvers, actor, &self.groups)
        {
            return Err(ExecError::NotAllowed(format!(
                "{actor} may not roll back runs of `{}` (rollback_approvers: {})",
                runbook.name,
                runbook.rollback_approvers.join(", ")
            )));
        }
        let plugins = self.load_plugins(runbook, actor).await?;
        let lease = lease::new_lease(self.lease_ttl);
        self.state
            .claim_for_rollback(&run_id, &lease, chrono::Utc::now())
            .await?;
        let mut scope = RunScope::open(
            run_id.clone(),
            &detail.run.operator,
            actor,
            plugins,
            RunBudget::default(),
        );
        scope.lease = Some(lease.clone());
        let heartbeat = lease::Heartbeat::start(
            self.state.clone(),
            run_id.clone(),
            lease.clone(),
            self.lease_ttl,
            scope.watch.clone(),
        );
        let undone = self.roll_back_claimed(runbook, &mut scope, actor).await;
        heartbeat.stop();
        if undone.is_err() {
            // Whatever stopped it, the next rollback must not wait for the lease to lapse.
            if let Err(e) = self.state.release_lease(&run_id, &lease.owner).await {
                tracing::warn!(target: "runbook::lease", %run_id, "releasing the rollback's lease: {e}");
            }
        }
        undone
    }

    /// The rollback of a run this process holds: read again under the lease (another
    /// rollback may have finished since), undo what is left, end in one transaction.
    async fn roll_back_claimed(
        &self,
        runbook: &Runbook,
        scope: &mut RunScope,
        actor: &str,
    ) -> Result<RunReport, ExecError> {
        let started = Instant::now();
        let detail = self
            .state
            .run(&scope.run_id)
            .await?
            .ok_or_else(|| ExecError::NoSuchRun(scope.run_id.clone()))?;
        let context = context_from(&detail.run.params, &detail, scope, runbook);
        let rollbacks = self
            .roll_back(scope, runbook, runbook.steps.len(), &context)
            .await?;
        // An undo that failed before (by an earlier rollback) still counts: the run is
        // not wholly rolled back until every undo succeeded.
        let failed_before = detail.rollbacks.iter().any(|r| !r.succeeded);
        let state = match rollback_state(&rollbacks) {
            _ if failed_before => RunState::RollbackFailed,
            Some(state) => state,
            None => RunState::RolledBack,
        };
        let unfinished = detail.run.status == RunStatus::Running;
        let owner = scope.lease_owner().unwrap_or_default();
        self.state
            .end_rollback(
                &scope.run_id,
                &owner,
                &RollbackEnd {
                    fail_unfinished: unfinished
                        .then(|| format!("rolled back on demand by {actor}")),
                    state,
                    audit: vec![run_audit(
                        &scope.run_id,
                        actor,
                        "run.rolled_back",
                        &runbook.name,
                        json!({ "state": state, "steps": rollbacks.iter().map(|r| &r.step).collect::<Vec<_>>() }),
                    )],
                },
            )
            .await?;
        let detail = self
            .state
            .run(&scope.run_id)
            .await?
            .ok_or_else(|| ExecError::NoSuchRun(scope.run_id.clone()))?;
        Ok(RunReport {
            error: detail.run.error.clone(),
            steps: StepReport::from_records(runbook, &detail)?,
            rollbacks,
            ..RunReport::of(scope, runbook, started, detail.run.status, state)
        })
    }

    /// A run as recorded, which must have been started from this very runbook file.
    async fn recorded_run(&self, runbook: &Runbook, run_id: &str) -> Result<RunDetail, ExecError> {
        let detail = self
            .state
            .run(run_id)
            .await?
            .ok_or_else(|| ExecError::NoSuchRun(run_id.to_string()))?;
        let record = &detail.run;
        if record.runbook != runbook.name || record.runbook_digest != runbook.digest {
            return Err(ExecError::RunbookChanged {
                run_id: record.id.clone(),
                runbook: record.runbook.clone(),
            });
        }
        Ok(detail)
    }
}

impl RunScope {
    /// A run as this process holds it: no lease yet (the step loop takes it), not a dry
    /// run unless the caller says so.
    fn open(
        run_id: String,
        operator: &str,
        actor: &str,
        plugins: Plugins,
        budget: RunBudget,
    ) -> RunScope {
        RunScope {
            run_id,
            operator: operator.to_string(),
            actor: actor.to_string(),
            plugins: Arc::new(plugins),
            dry_run: false,
            budget: Arc::new(budget),
            dry_tx: None,
            lease: None,
            watch: lease::StepWatch::default(),
        }
    }
}

/// The template context of a run whose steps ran (partly) in another process.
fn context_from(
    params: &Value,
    detail: &RunDetail,
    scope: &RunScope,
    runbook: &Runbook,
) -> RunContext {
    let mut context = RunContext::new(params, &scope.run_id, false, &scope.operator);
    for record in &detail.steps {
        let step = usize::try_from(record.index)
            .ok()
            .and_then(|i| runbook.steps.get(i));
        if let Some(step) = step {
            context.set_step(
                &step.id,
                record.output.as_ref().unwrap_or(&Value::Null),
                record.status.as_str(),
            );
        }
    }
    context
}

/// An audit entry about the run as a whole (started, resumed, finished, rolled back).
pub(super) fn run_audit(
    run_id: &str,
    operator: &str,
    action: &str,
    runbook: &str,
    detail: Value,
) -> NewAuditEntry {
    NewAuditEntry {
        at: chrono::Utc::now(),
        actor: operator.to_string(),
        run_id: Some(run_id.to_string()),
        step_id: None,
        plugin: None,
        plugin_digest: None,
        action: action.into(),
        target: format!("runbook:{runbook}"),
        detail: detail.to_string(),
    }
}
