//! Running a runbook: load and grant-check every plugin before anything runs, then each
//! step in order in its own store and transaction, recording everything durably.

mod plan;
mod report;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

pub use plan::Plan;
pub use report::{RunReport, StepReport};

use crate::capability::{EffectSession, RunBudget, Services};
use crate::grant::{AnalysisCache, Capability, Grants};
use crate::plugin::PluginDirectory;
use crate::runbook::Templates;
use crate::runbook::{Runbook, Step};
use crate::runtime::{
    DbSession, Fault, LoadedPlugin, PluginOutcome, Runtime, RuntimeError, StepContext, StepLimits,
    StepState,
};
use crate::state::{
    CallRecord, LogLine, NewAuditEntry, NewRun, RunStatus, StateError, StateStore, StepOutcome,
    StepStart, StepStatus,
};
use crate::target::{StepTransaction, TargetDb, TargetError};

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
    State(#[from] StateError),
    #[error("target database: {0}")]
    Target(#[from] TargetError),
}

impl ExecError {
    /// Whether the error means nothing ran because the request itself was wrong.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, ExecError::State(_) | ExecError::Target(_))
    }
}

/// Progress callbacks for a terminal or a log.
pub trait RunObserver {
    fn run_started(&mut self, _run_id: &str, _runbook: &Runbook) {}
    fn step_started(&mut self, _index: usize, _step: &Step) {}
    fn step_finished(&mut self, _index: usize, _report: &StepReport) {}
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
}

/// What one attempt of a step produced.
struct Attempt {
    status: StepStatus,
    output: Option<Value>,
    error: Option<String>,
    /// A fault (trap, timeout) rather than an answer: worth another attempt.
    retryable: bool,
    logs: Vec<LogLine>,
    audit: Vec<NewAuditEntry>,
    calls: Vec<CallRecord>,
    /// The dry run's transaction, handed back to the run.
    tx: Option<StepTransaction>,
}

/// Per-run things every step shares.
struct RunScope<'r> {
    run_id: &'r str,
    operator: &'r str,
    budget: Arc<RunBudget>,
    /// Dry run only: the one transaction all steps write in, rolled back at the end.
    dry_tx: Option<StepTransaction>,
}

impl Executor<'_> {
    pub async fn execute(
        &self,
        runbook: &Runbook,
        given: &std::collections::BTreeMap<String, Value>,
        operator: &str,
        observer: &mut dyn RunObserver,
    ) -> Result<RunReport, ExecError> {
        let params = runbook.resolve_params(given).map_err(ExecError::Params)?;
        let loaded = self.load_plugins(runbook, operator).await?;

        let run_id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let dry_tx = match (&self.target, self.dry_run) {
            (Some(target), true) => Some(target.begin().await?),
            _ => None,
        };
        self.state
            .create_run(&NewRun {
                id: run_id.clone(),
                runbook: runbook.name.clone(),
                runbook_digest: runbook.digest.clone(),
                params: Value::Object(params.clone()),
                operator: operator.to_string(),
                started_at: chrono::Utc::now(),
                dry_run: self.dry_run,
            })
            .await?;
        self.state
            .append_audit(&[run_audit(
                &run_id,
                operator,
                "run.started",
                &runbook.name,
                json!({ "params": params, "dry_run": self.dry_run }),
            )])
            .await?;
        observer.run_started(&run_id, runbook);

        let mut scope = RunScope {
            run_id: &run_id,
            operator,
            budget: Arc::new(RunBudget::default()),
            dry_tx,
        };
        let mut context = json!({
            "params": params,
            "steps": {},
            "run": { "id": run_id, "dry_run": self.dry_run, "operator": operator, "attempt": 1 },
        });
        let mut reports = Vec::with_capacity(runbook.steps.len());
        let mut failure = None;
        for (index, step) in runbook.steps.iter().enumerate() {
            observer.step_started(index, step);
            let report = self
                .run_step(&mut scope, index, step, &loaded, &mut context)
                .await?;
            observer.step_finished(index, &report);
            context["steps"][&step.id] = json!({
                "output": report.output.clone().unwrap_or(Value::Null),
                "status": report.status,
            });
            let failed = report.status == StepStatus::Failed;
            if failed {
                failure = Some(format!(
                    "step `{}` failed: {}",
                    step.id,
                    report.error.clone().unwrap_or_default()
                ));
            }
            reports.push(report);
            if failed {
                break;
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
        let status = if failure.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.state
            .finish_run(&run_id, status, failure.as_deref())
            .await?;
        self.state
            .append_audit(&[run_audit(
                &run_id,
                operator,
                "run.finished",
                &runbook.name,
                json!({ "status": status, "error": failure, "dry_run": self.dry_run }),
            )])
            .await?;
        let plan = if self.dry_run {
            let step_ids: Vec<String> = runbook.steps.iter().map(|s| s.id.clone()).collect();
            Some(Plan::from_calls(
                &self.state.calls(&run_id).await?,
                &step_ids,
            ))
        } else {
            None
        };
        Ok(RunReport {
            run_id,
            runbook: runbook.name.clone(),
            status,
            error: failure,
            duration_ms: started.elapsed().as_millis() as i64,
            dry_run: self.dry_run,
            steps: reports,
            plan,
        })
    }

    /// Loads every plugin the runbook uses and compares each step's grant with what the
    /// component really imports. A refusal is audited and stops the run before it starts.
    async fn load_plugins(
        &self,
        runbook: &Runbook,
        operator: &str,
    ) -> Result<HashMap<String, LoadedPlugin>, ExecError> {
        let mut loaded: HashMap<String, LoadedPlugin> = HashMap::new();
        for step in &runbook.steps {
            if !loaded.contains_key(&step.plugin) {
                let entry =
                    self.plugins
                        .get(&step.plugin)
                        .ok_or_else(|| ExecError::MissingPlugin {
                            step: step.id.clone(),
                            plugin: step.plugin.clone(),
                        })?;
                let plugin = self.runtime.load(&step.plugin, &entry.wasm_path)?;
                loaded.insert(step.plugin.clone(), plugin);
            }
            let plugin = &loaded[&step.plugin];
            let ungranted = plugin.ungranted_imports(&step.grants);
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
                        plugin: Some(step.plugin.clone()),
                        plugin_digest: Some(plugin.digest.clone()),
                        action: "plugin.refused".into(),
                        target: format!("plugin:{}", step.plugin),
                        detail: detail.to_string(),
                    }])
                    .await?;
                return Err(ExecError::Refused {
                    step: step.id.clone(),
                    plugin: step.plugin.clone(),
                    interfaces: ungranted,
                });
            }
        }
        Ok(loaded)
    }

    async fn run_step(
        &self,
        scope: &mut RunScope<'_>,
        index: usize,
        step: &Step,
        loaded: &HashMap<String, LoadedPlugin>,
        context: &mut Value,
    ) -> Result<StepReport, ExecError> {
        let plugin = &loaded[&step.plugin];
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        let mut report = StepReport::new(step, plugin);

        // Templates are checked at load; a failure here is about run-time data (say, a
        // missing key in an earlier output), so it fails the step, not the process.
        context["run"]["attempt"] = json!(1);
        let prepared = self.prepare(step, context);
        let input = match &prepared {
            Ok(Some((input, _))) => input.clone(),
            _ => Value::Null,
        };
        self.state
            .start_step(
                scope.run_id,
                &StepStart {
                    index: index as i64,
                    step_id: step.id.clone(),
                    plugin: step.plugin.clone(),
                    plugin_digest: plugin.digest.clone(),
                    input: input.clone(),
                    started_at,
                },
            )
            .await?;

        let mut logs = Vec::new();
        let mut audit = Vec::new();
        let (mut status, mut output, mut error) = (StepStatus::Failed, None, None);
        match prepared {
            Err(message) => error = Some(message),
            Ok(None) => status = StepStatus::Skipped,
            Ok(Some((mut input, mut grants))) => {
                for attempt in 1..=step.attempts.max(1) {
                    if attempt > 1 {
                        context["run"]["attempt"] = json!(attempt);
                        match self.prepare(step, context) {
                            Ok(Some((i, g))) => (input, grants) = (i, g),
                            Ok(None) => break,
                            Err(message) => {
                                error = Some(message);
                                break;
                            }
                        }
                        logs.push(host_line(
                            "warn",
                            format!("attempt {attempt} of {}: the previous attempt faulted; effects it made are answered from the call journal", step.attempts),
                        ));
                    }
                    report.attempts = attempt;
                    let result = self
                        .attempt(scope, index, step, plugin, &input, grants.clone(), attempt)
                        .await;
                    if let Err(e) = self.state.record_calls(scope.run_id, &result.calls).await {
                        logs.push(host_line("error", format!("call journal: {e}")));
                    }
                    logs.extend(result.logs);
                    audit.extend(result.audit);
                    (status, output, error) = (result.status, result.output, result.error);
                    if status == StepStatus::Succeeded || !result.retryable {
                        break;
                    }
                }
            }
        }

        let duration_ms = started.elapsed().as_millis() as i64;
        let outcome = StepOutcome {
            status,
            output: output.clone(),
            error: error.clone(),
            logs,
            finished_at: chrono::Utc::now(),
            duration_ms,
        };
        self.state
            .finish_step(scope.run_id, index as i64, &outcome, &audit)
            .await?;
        report.status = status;
        report.output = output;
        report.error = error;
        report.duration_ms = duration_ms;
        report.audit_records = audit.len();
        Ok(report)
    }

    /// `Ok(None)`: the step's `when` is false. `Err`: its condition, input or a templated
    /// grant did not render.
    fn prepare(&self, step: &Step, context: &Value) -> Result<Option<(Value, Grants)>, String> {
        if let Some(condition) = &step.when {
            let run = self
                .templates
                .eval_condition(condition, context)
                .map_err(|e| format!("`when` condition: {e}"))?;
            if !run {
                return Ok(None);
            }
        }
        let input = self
            .templates
            .render_input(&step.input, context)
            .map_err(|e| format!("input: {e}"))?;
        let grants = self.render_grants(step, context)?;
        Ok(Some((input, grants)))
    }

    /// Email recipients written as templates become the addresses earlier steps found.
    fn render_grants(&self, step: &Step, context: &Value) -> Result<Grants, String> {
        let mut grants = step.grants.clone();
        let Some(email) = &mut grants.email else {
            return Ok(grants);
        };
        let mut recipients = Vec::new();
        for entry in &email.recipients {
            if !entry.contains("{{") {
                recipients.push(entry.clone());
                continue;
            }
            let rendered = self
                .templates
                .render_string(entry, context)
                .map_err(|e| format!("email recipients {entry:?}: {e}"))?;
            let mut push = |v: &Value| match v.as_str() {
                Some(s) if s.contains('@') && !s.contains('*') => {
                    recipients.push(s.trim().to_lowercase());
                    Ok(())
                }
                _ => Err(format!(
                    "email recipients {entry:?} rendered {v}, which is not an email address (patterns cannot come from data)"
                )),
            };
            match &rendered {
                Value::Array(items) => items.iter().try_for_each(&mut push)?,
                Value::Null => {}
                other => push(other)?,
            }
        }
        email.recipients = recipients;
        Ok(grants)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        scope: &mut RunScope<'_>,
        index: usize,
        step: &Step,
        plugin: &LoadedPlugin,
        input: &Value,
        grants: Grants,
        attempt: u32,
    ) -> Attempt {
        let limits = StepLimits {
            fuel: step.fuel.unwrap_or(self.limits.fuel),
            memory_bytes: step
                .memory_mb
                .map_or(self.limits.memory_bytes, |mb| (mb as usize) << 20),
            timeout: step.timeout.unwrap_or(self.limits.timeout),
        };
        // In a dry run every step writes inside the run's transaction, behind a savepoint
        // so a failed step's writes go and the earlier steps' stay visible.
        let mut tx = scope.dry_tx.take();
        if let Some(t) = &mut tx
            && let Err(e) = t.execute("SAVEPOINT runbook_step", &[]).await
        {
            return Attempt {
                status: StepStatus::Failed,
                output: None,
                error: Some(format!("dry run: savepoint: {e}")),
                retryable: false,
                logs: Vec::new(),
                audit: Vec::new(),
                calls: Vec::new(),
                tx,
            }
            .hand_back(scope);
        }
        let state = StepState::new(
            Arc::new(StepContext {
                run_id: scope.run_id.to_string(),
                step_id: step.id.clone(),
                plugin: step.plugin.clone(),
                plugin_digest: plugin.digest.clone(),
                operator: scope.operator.to_string(),
            }),
            Arc::new(grants),
            DbSession {
                target: self.target.clone(),
                tx,
                analysis: self.analysis.clone(),
                poisoned: None,
            },
            EffectSession::new(
                self.services.clone(),
                self.state.clone(),
                scope.budget.clone(),
                self.dry_run,
                index as i64,
                i64::from(attempt),
            ),
            limits.memory_bytes,
        );
        let (outcome, mut state) = self
            .runtime
            .invoke(plugin, state, &input.to_string(), limits)
            .await;
        let mut retryable = false;
        let (mut status, output, mut error) = match outcome {
            PluginOutcome::Returned(text) => match serde_json::from_str::<Value>(&text) {
                Ok(value) => (StepStatus::Succeeded, Some(value), None),
                Err(e) => (
                    StepStatus::Failed,
                    None,
                    Some(format!("plugin returned invalid JSON: {e}")),
                ),
            },
            PluginOutcome::Failed { code, message } => {
                (StepStatus::Failed, None, Some(format!("{code}: {message}")))
            }
            PluginOutcome::Fault(fault) => {
                retryable = matches!(
                    fault,
                    Fault::Timeout { .. } | Fault::Panic { .. } | Fault::Trap { .. }
                );
                (StepStatus::Failed, None, Some(format!("plugin {fault}")))
            }
        };

        let mut tx = state.db.tx.take();
        if self.dry_run {
            if let Some(t) = &mut tx {
                let sql = if status == StepStatus::Succeeded {
                    "RELEASE SAVEPOINT runbook_step"
                } else {
                    "ROLLBACK TO SAVEPOINT runbook_step"
                };
                if let Err(e) = t.execute(sql, &[]).await {
                    status = StepStatus::Failed;
                    error = Some(format!("dry run: {sql}: {e}"));
                }
            }
        } else if let Some(t) = tx.take() {
            // The step's writes stand or fall with the step.
            let result = if status == StepStatus::Succeeded {
                t.commit().await
            } else {
                t.rollback().await
            };
            if let Err(e) = result {
                status = StepStatus::Failed;
                error = Some(format!("database transaction could not be finished: {e}"));
            }
        }
        capture_output(&mut state, "stdout");
        capture_output(&mut state, "stderr");
        if state.record.dropped_logs > 0 {
            let dropped = state.record.dropped_logs;
            state.record.logs.push(host_line(
                "warn",
                format!("{dropped} further log lines were dropped"),
            ));
        }
        let mut audit = std::mem::take(&mut state.record.audit);
        if self.dry_run {
            // A dry run changed nothing, so it has nothing to attest to but refusals.
            for entry in audit.iter().filter(|e| e.action != "capability.denied") {
                state.record.logs.push(host_line(
                    "info",
                    format!("dry run: would audit {} on {}", entry.action, entry.target),
                ));
            }
            audit.retain(|e| e.action == "capability.denied");
        }
        let output = if status == StepStatus::Succeeded {
            output
        } else {
            None
        };
        Attempt {
            status,
            output,
            error,
            retryable,
            logs: std::mem::take(&mut state.record.logs),
            audit,
            calls: std::mem::take(&mut state.effects.pending),
            tx,
        }
        .hand_back(scope)
    }
}

impl Attempt {
    /// Returns the dry run's transaction to the run for the next step.
    fn hand_back(mut self, scope: &mut RunScope<'_>) -> Attempt {
        if let Some(tx) = self.tx.take() {
            scope.dry_tx = Some(tx);
        }
        self
    }
}

fn capture_output(state: &mut StepState, stream: &str) {
    let text = if stream == "stdout" {
        state.stdout()
    } else {
        state.stderr()
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut log = host_line("info", line.to_string());
        log.stream = stream.to_string();
        state.record.logs.push(log);
    }
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
