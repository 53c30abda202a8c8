//! Running a runbook: load and grant-check every plugin before anything runs, then each
//! step in order in its own store and transaction, recording everything durably.

mod report;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

pub use report::{RunReport, StepReport};

use crate::grant::{AnalysisCache, Capability};
use crate::plugin::PluginDirectory;
use crate::runbook::Templates;
use crate::runbook::{Runbook, Step};
use crate::runtime::{
    DbSession, LoadedPlugin, PluginOutcome, Runtime, RuntimeError, StepContext, StepLimits,
    StepState,
};
use crate::state::{
    LogLine, NewAuditEntry, NewRun, RunStatus, StateError, StateStore, StepOutcome, StepStart,
    StepStatus,
};
use crate::target::TargetDb;

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
}

impl ExecError {
    /// Whether the error means nothing ran because the request itself was wrong.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, ExecError::State(_))
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
        self.state
            .create_run(&NewRun {
                id: run_id.clone(),
                runbook: runbook.name.clone(),
                runbook_digest: runbook.digest.clone(),
                params: Value::Object(params.clone()),
                operator: operator.to_string(),
                started_at: chrono::Utc::now(),
            })
            .await?;
        self.state
            .append_audit(&[run_audit(
                &run_id,
                operator,
                "run.started",
                &runbook.name,
                json!({ "params": params }),
            )])
            .await?;
        observer.run_started(&run_id, runbook);

        let mut context = json!({ "params": params, "steps": {} });
        let mut reports = Vec::with_capacity(runbook.steps.len());
        let mut failure = None;
        for (index, step) in runbook.steps.iter().enumerate() {
            observer.step_started(index, step);
            let report = self
                .run_step(&run_id, operator, index, step, &loaded, &context)
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
                json!({ "status": status, "error": failure }),
            )])
            .await?;
        Ok(RunReport {
            run_id,
            runbook: runbook.name.clone(),
            status,
            error: failure,
            duration_ms: started.elapsed().as_millis() as i64,
            steps: reports,
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
        run_id: &str,
        operator: &str,
        index: usize,
        step: &Step,
        loaded: &HashMap<String, LoadedPlugin>,
        context: &Value,
    ) -> Result<StepReport, ExecError> {
        let plugin = &loaded[&step.plugin];
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        let mut report = StepReport::new(step, plugin);

        // Templates are checked at load; a failure here is about run-time data (say, a
        // missing key in an earlier output), so it fails the step, not the process.
        let prepared = self.prepare(step, context);
        let input = match &prepared {
            Ok(Some(input)) => input.clone(),
            _ => Value::Null,
        };
        self.state
            .start_step(
                run_id,
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

        let (status, output, error, logs, audit) = match prepared {
            Err(message) => (
                StepStatus::Failed,
                None,
                Some(message),
                Vec::new(),
                Vec::new(),
            ),
            Ok(None) => (StepStatus::Skipped, None, None, Vec::new(), Vec::new()),
            Ok(Some(input)) => self.invoke(run_id, operator, step, plugin, &input).await,
        };

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
            .finish_step(run_id, index as i64, &outcome, &audit)
            .await?;
        report.status = status;
        report.output = output;
        report.error = error;
        report.duration_ms = duration_ms;
        report.audit_records = audit.len();
        Ok(report)
    }

    /// `Ok(None)`: the step's `when` is false. `Err`: its condition or input did not render.
    fn prepare(&self, step: &Step, context: &Value) -> Result<Option<Value>, String> {
        if let Some(condition) = &step.when {
            let run = self
                .templates
                .eval_condition(condition, context)
                .map_err(|e| format!("`when` condition: {e}"))?;
            if !run {
                return Ok(None);
            }
        }
        self.templates
            .render_input(&step.input, context)
            .map(Some)
            .map_err(|e| format!("input: {e}"))
    }

    async fn invoke(
        &self,
        run_id: &str,
        operator: &str,
        step: &Step,
        plugin: &LoadedPlugin,
        input: &Value,
    ) -> (
        StepStatus,
        Option<Value>,
        Option<String>,
        Vec<LogLine>,
        Vec<NewAuditEntry>,
    ) {
        let limits = StepLimits {
            fuel: step.fuel.unwrap_or(self.limits.fuel),
            memory_bytes: step
                .memory_mb
                .map_or(self.limits.memory_bytes, |mb| (mb as usize) << 20),
            timeout: step.timeout.unwrap_or(self.limits.timeout),
        };
        let state = StepState::new(
            Arc::new(StepContext {
                run_id: run_id.to_string(),
                step_id: step.id.clone(),
                plugin: step.plugin.clone(),
                plugin_digest: plugin.digest.clone(),
                operator: operator.to_string(),
            }),
            Arc::new(step.grants.clone()),
            DbSession {
                target: self.target.clone(),
                tx: None,
                analysis: self.analysis.clone(),
                poisoned: None,
            },
            limits.memory_bytes,
        );
        let (outcome, mut state) = self
            .runtime
            .invoke(plugin, state, &input.to_string(), limits)
            .await;
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
                (StepStatus::Failed, None, Some(format!("plugin {fault}")))
            }
        };

        // The step's writes stand or fall with the step.
        if let Some(tx) = state.db.tx.take() {
            let result = if status == StepStatus::Succeeded {
                tx.commit().await
            } else {
                tx.rollback().await
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
        let output = if status == StepStatus::Succeeded {
            output
        } else {
            None
        };
        (status, output, error, state.record.logs, state.record.audit)
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
