//! Running a runbook: load and grant-check every plugin before anything runs, then each
//! step in order in its own store and transaction, recording everything durably.

mod approval;
mod lease;
mod plan;
mod report;
mod rollback;
mod step;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

pub use approval::{Groups, may_approve};
pub use plan::Plan;
pub use report::{AwaitingApproval, RollbackReport, RunReport, StepReport};

use approval::Gate;
use rollback::rollback_state;

use crate::capability::{RunBudget, Services};
use crate::grant::{AnalysisCache, Capability};
use crate::plugin::PluginDirectory;
use crate::runbook::{OnFailure, Runbook, Step};
use crate::runtime::{LoadedPlugin, Runtime, RuntimeError, StepLimits};
use crate::state::{
    LogLine, NewAuditEntry, NewRun, RunEnd, RunState, RunStatus, StateError, StateStore,
    StepFinish, StepRecord, StepStatus,
};
use crate::target::{StepTransaction, TargetDb, TargetError};
use crate::template::{RunContext, Templates};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("invalid parameters:\n  {}", .0.join("\n  "))]
    Params(Vec<String>),
    #[error("step `{step}`: plugin `{plugin}` is not installed (looked in the plugin folders)")]
    MissingPlugin { step: String, plugin: String },
    #[error(transparent)]
    Load(#[from] RuntimeError),
    #[error(
        "step `{step}`: plugin `{plugin}` imports the `{}` interface, which the step does not grant; refused before running anything",
        .interfaces.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("`, `")
    )]
    Refused {
        step: String,
        plugin: String,
        interfaces: Vec<Capability>,
    },
    #[error("state store: {0}")]
    State(StateError),
    #[error("target database: {0}")]
    Target(#[from] TargetError),
    #[error(
        "runbook `{runbook}` is already running with concurrency key {key:?}: run {run_id} (resume it, or roll it back, before starting another)"
    )]
    Concurrent {
        runbook: String,
        key: String,
        run_id: String,
    },
    #[error("no run `{0}`")]
    NoSuchRun(String),
    #[error(
        "run {run_id} was started from a different version of runbook `{runbook}`; it can only be continued with the runbook it started with"
    )]
    RunbookChanged { run_id: String, runbook: String },
    #[error("run {run_id} cannot be resumed: {reason}")]
    NotResumable { run_id: String, reason: String },
    #[error("step `{step}`: approver group `{group}` is not defined in runbook.toml (`[groups]`)")]
    UnknownGroup { step: String, group: String },
    #[error("{0}")]
    NotAllowed(String),
    #[error(
        "run {run_id}: this process lost the run's lease (it stalled longer than the lease, and the run may have been resumed elsewhere); stopped before the next step"
    )]
    LeaseLost { run_id: String },
}

impl From<StateError> for ExecError {
    fn from(e: StateError) -> ExecError {
        match e {
            StateError::LeaseLost { run_id } => ExecError::LeaseLost { run_id },
            other => ExecError::State(other),
        }
    }
}

impl ExecError {
    /// Whether the error means nothing ran because the request itself was wrong.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            ExecError::State(_) | ExecError::Target(_) | ExecError::LeaseLost { .. }
        )
    }
}

/// Progress callbacks for a terminal or a log, and the person at the terminal.
pub trait RunObserver {
    fn run_started(&mut self, _run_id: &str, _runbook: &Runbook) {}
    fn step_started(&mut self, _index: usize, _step: &Step) {}
    fn step_finished(&mut self, _index: usize, _report: &StepReport) {}
    /// An approval step needs a decision. `eligible` says whether `actor` may give it
    /// (and if not, why). `None`: nobody here can or will decide; the run pauses.
    fn ask_approval(
        &mut self,
        _step: &Step,
        _request: &crate::state::ApprovalRequest,
        _actor: &str,
        _eligible: Result<(), String>,
    ) -> Option<(crate::state::Decision, Option<String>)> {
        None
    }
}

/// An observer that shows nothing.
pub struct Silent;
impl RunObserver for Silent {}

pub struct Executor<'a> {
    pub runtime: &'a Runtime,
    pub plugins: &'a PluginDirectory,
    pub target: Option<TargetDb>,
    pub state: &'a StateStore,
    pub limits: StepLimits,
    pub analysis: Arc<AnalysisCache>,
    pub templates: Templates,
    pub services: Arc<Services>,
    /// Plan instead of act: database writes are rolled back at the end of the run,
    /// Stripe and webhook writes and emails are recorded, not sent.
    pub dry_run: bool,
    /// Approver groups from `runbook.toml`.
    pub groups: Groups,
    /// How long a run's lease lasts without a heartbeat before it counts as interrupted.
    pub lease_ttl: Duration,
}

/// Per-run things every step shares.
pub(crate) struct RunScope {
    run_id: String,
    /// Who started the run.
    operator: String,
    /// Who is acting in this process (the operator, or whoever resumed the run).
    actor: String,
    dry_run: bool,
    budget: Arc<RunBudget>,
    /// Dry run only: the one transaction all steps write in, rolled back at the end.
    dry_tx: Option<StepTransaction>,
    /// This process's lease on the run (renewed by the heartbeat), checked whenever a
    /// step starts.
    lease: Option<crate::state::Lease>,
}

impl RunScope {
    /// Whose lease must still hold when the next step starts.
    fn lease_owner(&self) -> Option<String> {
        self.lease.as_ref().map(|l| l.owner.clone())
    }
}

impl Executor<'_> {
    /// Starts a new run of `runbook` and drives it until it finishes or pauses.
    pub async fn execute(
        &self,
        runbook: &Runbook,
        given: &std::collections::BTreeMap<String, Value>,
        operator: &str,
        observer: &mut dyn RunObserver,
    ) -> Result<RunReport, ExecError> {
        let params = runbook.resolve_params(given).map_err(ExecError::Params)?;
        self.check_groups(runbook)?;
        let loaded = self.load_plugins(runbook, operator).await?;
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
        created?;
        observer.run_started(&run_id, runbook);
        let scope = RunScope {
            run_id,
            operator: operator.to_string(),
            actor: operator.to_string(),
            dry_run: self.dry_run,
            budget: Arc::new(RunBudget::default()),
            dry_tx,
            lease: None,
        };
        self.drive(runbook, scope, lease, params, Vec::new(), &loaded, observer)
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
        if record.dry_run {
            return Err(ExecError::NotResumable {
                run_id: record.id.clone(),
                reason: "it is a dry run, whose database transaction ended with its process".into(),
            });
        }
        self.check_groups(runbook)?;
        let loaded = self.load_plugins(runbook, actor).await?;
        let lease = lease::new_lease(self.lease_ttl);
        self.state
            .take_over(&record.id, &lease, chrono::Utc::now())
            .await
            .map_err(|e| match e {
                StateError::RunNotRunning { run_id, status } => ExecError::NotResumable {
                    run_id,
                    reason: format!("it has already {status}"),
                },
                other => ExecError::State(other),
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
        let scope = RunScope {
            run_id: record.id.clone(),
            operator: record.operator.clone(),
            actor: actor.to_string(),
            dry_run: false,
            budget: Arc::new(RunBudget::from_journal(&detail.calls, &step_ids)),
            dry_tx: None,
            lease: None,
        };
        self.drive(
            runbook,
            scope,
            lease,
            params,
            detail.steps,
            &loaded,
            observer,
        )
        .await
    }

    /// Rolls back the completed steps of a finished (or abandoned) run, newest first.
    pub async fn roll_back_run(
        &self,
        runbook: &Runbook,
        run_id: &str,
        actor: &str,
    ) -> Result<RunReport, ExecError> {
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
        if !runbook.rollback_approvers.is_empty()
            && !approval::is_listed(&runbook.rollback_approvers, actor, &self.groups)
        {
            return Err(ExecError::NotAllowed(format!(
                "{actor} may not roll back runs of `{}` (rollback_approvers: {})",
                runbook.name,
                runbook.rollback_approvers.join(", ")
            )));
        }
        let loaded = self.load_plugins(runbook, actor).await?;
        let lease = lease::new_lease(self.lease_ttl);
        let unfinished = record.status == RunStatus::Running;
        if unfinished {
            self.state
                .take_over(&record.id, &lease, chrono::Utc::now())
                .await?;
        }
        let scope = RunScope {
            run_id: record.id.clone(),
            operator: record.operator.clone(),
            actor: actor.to_string(),
            dry_run: false,
            budget: Arc::new(RunBudget::default()),
            dry_tx: None,
            lease: None,
        };
        let started = Instant::now();
        let context = context_from(&record.params, &detail.steps, &scope, runbook);
        let mut scope = scope;
        let rollbacks = self
            .roll_back(&mut scope, runbook, &loaded, runbook.steps.len(), &context)
            .await?;
        let state = rollback_state(&rollbacks).unwrap_or(RunState::RolledBack);
        let message = format!("rolled back on demand by {actor}");
        if unfinished {
            self.state
                .finish_run(&record.id, RunStatus::Failed, Some(&message))
                .await?;
            self.state.release_lease(&record.id, &lease.owner).await?;
        }
        self.state.set_rollback_status(&record.id, state).await?;
        self.state
            .append_audit(&[run_audit(
                &record.id,
                actor,
                "run.rolled_back",
                &runbook.name,
                json!({ "state": state, "steps": rollbacks.iter().map(|r| &r.step).collect::<Vec<_>>() }),
            )])
            .await?;
        let detail = self
            .state
            .run(&record.id)
            .await?
            .ok_or_else(|| ExecError::NoSuchRun(record.id.clone()))?;
        Ok(RunReport {
            run_id: record.id.clone(),
            runbook: runbook.name.clone(),
            status: detail.run.status,
            state,
            error: detail.run.error.clone(),
            duration_ms: started.elapsed().as_millis() as i64,
            dry_run: false,
            steps: detail
                .steps
                .iter()
                .map(|r| StepReport::from_record(&runbook.steps[r.index as usize], r))
                .collect(),
            rollbacks,
            awaiting: None,
            plan: None,
        })
    }

    /// The step loop shared by new and resumed runs.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        runbook: &Runbook,
        mut scope: RunScope,
        lease: crate::state::Lease,
        params: Map<String, Value>,
        prior: Vec<StepRecord>,
        loaded: &HashMap<String, LoadedPlugin>,
        observer: &mut dyn RunObserver,
    ) -> Result<RunReport, ExecError> {
        let started = Instant::now();
        scope.lease = Some(lease.clone());
        let heartbeat = lease::Heartbeat::start(
            self.state.clone(),
            scope.run_id.clone(),
            lease.clone(),
            self.lease_ttl,
        );
        let mut context = RunContext::new(
            &Value::Object(params),
            &scope.run_id,
            scope.dry_run,
            &scope.operator,
        );
        let mut reports = Vec::with_capacity(runbook.steps.len());
        // The outcome of the step that just ran, stored with the next step's start (or
        // the run's end) so that each step boundary costs one commit.
        let mut pending: Option<StepFinish> = None;
        let mut failure = None;
        let mut failed_at = None;
        let mut awaiting = None;
        for (index, step) in runbook.steps.iter().enumerate() {
            let earlier = prior.iter().find(|r| r.index == index as i64);
            if let Some(record) = earlier
                && record.status != StepStatus::Running
            {
                // Finished before this process took the run over: it is not run again.
                let report = StepReport::from_record(step, record);
                observer.step_finished(index, &report);
                context.set_step(
                    &step.id,
                    report.output.as_ref().unwrap_or(&Value::Null),
                    report.status.as_str(),
                );
                reports.push(report);
                continue;
            }
            // A process that stalled past its lease may have lost the run to a resume
            // elsewhere: it must not start another step. A new step's start is recorded
            // only while the lease holds; a step that was in flight renews it here.
            if earlier.is_some()
                && !self
                    .state
                    .renew_lease(&scope.run_id, &lease::renewed(&lease, self.lease_ttl))
                    .await?
            {
                heartbeat.stop();
                return Err(ExecError::LeaseLost {
                    run_id: scope.run_id.clone(),
                });
            }
            observer.step_started(index, step);
            let report = if let Some(approval) = &step.approval {
                self.store_pending(&scope, &mut pending).await?;
                match self
                    .approval_step(
                        &mut scope,
                        index,
                        step,
                        approval,
                        &context,
                        earlier.is_some(),
                        observer,
                    )
                    .await?
                {
                    Gate::Open(report) => report,
                    Gate::Waiting(pending) => {
                        awaiting = Some(pending);
                        break;
                    }
                }
            } else {
                let previous = pending.take();
                let (report, finish) = self
                    .run_step(
                        &mut scope,
                        index,
                        step,
                        loaded,
                        &mut context,
                        earlier,
                        previous,
                    )
                    .await?;
                pending = Some(finish);
                report
            };
            observer.step_finished(index, &report);
            if failpoint_after_step(&step.id) {
                self.store_pending(&scope, &mut pending).await?;
                die_by_failpoint(&step.id);
            }
            context.set_step(
                &step.id,
                report.output.as_ref().unwrap_or(&Value::Null),
                report.status.as_str(),
            );
            let failed = report.status == StepStatus::Failed;
            let error = report.error.clone().unwrap_or_default();
            reports.push(report);
            if failed {
                match step.on_failure {
                    OnFailure::Continue => continue,
                    OnFailure::Abort | OnFailure::Rollback => {
                        failure = Some(format!("step `{}` failed: {error}", step.id));
                        if step.on_failure == OnFailure::Rollback {
                            failed_at = Some(index);
                        }
                        break;
                    }
                }
            }
        }

        // A dry run leaves the target database exactly as it found it.
        if let Some(tx) = scope.dry_tx.take()
            && let Err(e) = tx.rollback().await
        {
            failure.get_or_insert(format!(
                "the dry run's transaction could not be rolled back: {e}"
            ));
        }
        if let Some(waiting) = awaiting {
            self.store_pending(&scope, &mut pending).await?;
            heartbeat.stop();
            self.state
                .release_lease(&scope.run_id, &lease.owner)
                .await?;
            return Ok(RunReport {
                run_id: scope.run_id.clone(),
                runbook: runbook.name.clone(),
                status: RunStatus::Running,
                state: RunState::AwaitingApproval,
                error: None,
                duration_ms: started.elapsed().as_millis() as i64,
                dry_run: scope.dry_run,
                steps: reports,
                rollbacks: Vec::new(),
                awaiting: Some(waiting),
                plan: None,
            });
        }
        let rollbacks = match failed_at {
            Some(index) if !scope.dry_run => {
                // The failed step's outcome is stored before anything is undone.
                self.store_pending(&scope, &mut pending).await?;
                self.roll_back(&mut scope, runbook, loaded, index, &context)
                    .await?
            }
            _ => Vec::new(),
        };
        let status = if failure.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        heartbeat.stop();
        let rolled = rollback_state(&rollbacks);
        let finished = run_audit(
            &scope.run_id,
            &scope.actor,
            "run.finished",
            &runbook.name,
            json!({ "status": status, "error": failure, "dry_run": scope.dry_run, "rollback": rolled }),
        );
        self.state
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
            let mut plan = Plan::from_calls(&self.state.calls(&scope.run_id).await?, &step_ids);
            plan.approvals = reports
                .iter()
                .filter(|r| r.plugin.is_empty())
                .map(|r| r.id.clone())
                .collect();
            Some(plan)
        } else {
            None
        };
        Ok(RunReport {
            run_id: scope.run_id.clone(),
            runbook: runbook.name.clone(),
            status,
            state: rolled.unwrap_or(match status {
                RunStatus::Succeeded => RunState::Succeeded,
                _ => RunState::Failed,
            }),
            error: failure,
            duration_ms: started.elapsed().as_millis() as i64,
            dry_run: scope.dry_run,
            steps: reports,
            rollbacks,
            awaiting: None,
            plan,
        })
    }

    /// Stores the outcome of the step that ran last, if it is not stored yet.
    async fn store_pending(
        &self,
        scope: &RunScope,
        pending: &mut Option<StepFinish>,
    ) -> Result<(), ExecError> {
        if let Some(finish) = pending.take() {
            self.state.finish_step_with(&scope.run_id, finish).await?;
        }
        Ok(())
    }

    /// Every `group:<name>` an approval names must exist in `runbook.toml`.
    fn check_groups(&self, runbook: &Runbook) -> Result<(), ExecError> {
        for step in &runbook.steps {
            let Some(approval) = &step.approval else {
                continue;
            };
            for approver in &approval.approvers {
                if let Some(group) = approver.strip_prefix("group:")
                    && !self.groups.contains_key(group)
                {
                    return Err(ExecError::UnknownGroup {
                        step: step.id.clone(),
                        group: group.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Loads every plugin the runbook uses (rollback plugins too) and compares each
    /// step's grant with what the component really imports. A refusal is audited and
    /// stops the run before it starts.
    async fn load_plugins(
        &self,
        runbook: &Runbook,
        operator: &str,
    ) -> Result<HashMap<String, LoadedPlugin>, ExecError> {
        let mut loaded: HashMap<String, LoadedPlugin> = HashMap::new();
        let uses = runbook.steps.iter().flat_map(|step| {
            let main = (!step.plugin.is_empty()).then_some((step, &step.plugin, &step.grants));
            let undo = step.rollback.as_ref().map(|r| (step, &r.plugin, &r.grants));
            main.into_iter().chain(undo)
        });
        for (step, name, grants) in uses {
            if !loaded.contains_key(name) {
                let entry = self
                    .plugins
                    .get(name)
                    .ok_or_else(|| ExecError::MissingPlugin {
                        step: step.id.clone(),
                        plugin: name.clone(),
                    })?;
                let plugin = self.runtime.load(name, &entry.wasm_path)?;
                loaded.insert(name.clone(), plugin);
            }
            let plugin = &loaded[name];
            let ungranted = plugin.ungranted_imports(grants);
            if !ungranted.is_empty() {
                let detail = json!({
                    "runbook": runbook.name,
                    "step": step.id,
                    "plugin_digest": plugin.digest,
                    "ungranted_interfaces": ungranted,
                });
                self.state
                    .append_audit(&[NewAuditEntry {
                        at: chrono::Utc::now(),
                        actor: operator.to_string(),
                        run_id: None,
                        step_id: Some(step.id.clone()),
                        plugin: Some(name.clone()),
                        plugin_digest: Some(plugin.digest.clone()),
                        action: "plugin.refused".into(),
                        target: format!("plugin:{name}"),
                        detail: detail.to_string(),
                    }])
                    .await?;
                return Err(ExecError::Refused {
                    step: step.id.clone(),
                    plugin: name.clone(),
                    interfaces: ungranted,
                });
            }
        }
        Ok(loaded)
    }
}

/// Crash-safety failpoint: `RUNBOOK_FAILPOINT=after-step:<id>` sends the process
/// SIGKILL the moment step `<id>` is recorded, as `kill -9` or a power cut would, so
/// tests (and operators rehearsing recovery) can check that `runbook resume` continues
/// with the next step.
fn failpoint_after_step(step_id: &str) -> bool {
    std::env::var("RUNBOOK_FAILPOINT")
        .is_ok_and(|point| point.strip_prefix("after-step:") == Some(step_id))
}

fn die_by_failpoint(step_id: &str) -> ! {
    eprintln!("failpoint after-step:{step_id}: kill -9");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // Should `kill` be missing, die anyway, just as abruptly.
    std::process::abort();
}

/// The template context of a run whose steps ran (partly) in another process.
fn context_from(
    params: &Value,
    steps: &[StepRecord],
    scope: &RunScope,
    runbook: &Runbook,
) -> RunContext {
    let mut context = RunContext::new(params, &scope.run_id, false, &scope.operator);
    for record in steps {
        if let Some(step) = runbook.steps.get(record.index as usize) {
            context.set_step(
                &step.id,
                record.output.as_ref().unwrap_or(&Value::Null),
                record.status.as_str(),
            );
        }
    }
    context
}

fn host_line(level: &str, message: String) -> LogLine {
    LogLine {
        at: chrono::Utc::now(),
        level: level.into(),
        stream: "host".into(),
        message,
        fields: Default::default(),
    }
}

fn run_audit(
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

/// Parameters given on the command line, as `name=value` text, typed by the runbook.
pub fn parse_cli_params(
    runbook: &Runbook,
    pairs: &[String],
) -> Result<std::collections::BTreeMap<String, Value>, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for pair in pairs {
        let Some((name, raw)) = pair.split_once('=') else {
            errors.push(format!("`{pair}` is not name=value"));
            continue;
        };
        match runbook.params.iter().find(|p| p.name == name) {
            Some(param) => match param.kind.parse_value(raw) {
                Ok(v) => {
                    out.insert(name.to_string(), v);
                }
                Err(e) => errors.push(format!("--param {name}: {e}")),
            },
            None => errors.push(format!(
                "`{name}` is not a parameter of runbook `{}`",
                runbook.name
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
