//! Plugin steps: rendering input and templated grants, one attempt in a fresh store (and
//! the dry run's shared transaction), and the retry loop around attempts.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::completion;
use super::preflight::Plugins;
use super::report::StepReport;
use super::{ExecError, Executor, RunScope, host_line};
use crate::capability::{
    CallSession, DbCaps, DbSession, Grants, RecordingLimits, StepCapabilities, StepContext,
    StepRecording,
};
use crate::runtime::{Fault, LoadedPlugin, PluginOutcome, StepLimits, StepState};
use crate::spec::runbook::Step;
use crate::state::{CallRecord, StepFinish, StepOutcome, StepRecord, StepStart, StepStatus};
use crate::target::{ResultCaps, StepTransaction};
use crate::template::{RunContext, TemplateError};

/// Why a step could not be made ready to run: its condition, input or a templated grant
/// did not render from the run's data.
#[derive(Debug, thiserror::Error)]
pub(super) enum PrepareError {
    #[error("`when` condition: {0}")]
    Condition(TemplateError),
    #[error("input: {0}")]
    Input(TemplateError),
    #[error("email recipients {entry:?}: {source}")]
    Recipients {
        entry: String,
        source: TemplateError,
    },
    #[error(
        "email recipients {entry:?} rendered {rendered}, which is not an email address (patterns cannot come from data)"
    )]
    NotAnAddress { entry: String, rendered: Value },
}

/// What an attempt runs: a step (or a rollback, as a step of its own) with its plugin,
/// journaled under `journal_index` (negative for rollbacks).
pub(super) struct Attempting<'s> {
    pub journal_index: i64,
    pub step: &'s Step,
    pub plugin: &'s LoadedPlugin,
}

/// A plugin the preflight loaded for `step`.
pub(super) fn scope_plugin<'p>(
    plugins: &'p Plugins,
    step: &Step,
    name: &str,
) -> Result<&'p LoadedPlugin, ExecError> {
    plugins.get(name).ok_or_else(|| ExecError::MissingPlugin {
        step: step.id.clone(),
        plugin: name.to_string(),
    })
}

/// What one attempt of a step produced.
pub(super) struct Attempt {
    pub status: StepStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// A fault (trap, timeout) or a transient failure rather than an answer: worth
    /// another attempt.
    pub retryable: bool,
    /// The step's log lines and audit entries so far (this attempt's added).
    pub recording: StepRecording,
    pub calls: Vec<CallRecord>,
    /// The dry run's transaction, handed back to the run.
    tx: Option<StepTransaction>,
}

impl Executor<'_> {
    /// Runs one plugin step (or re-runs one that was in flight when its process died),
    /// retrying transient failures with backoff. The step's start is stored (with the
    /// `previous` step's outcome, in one transaction) before its plugin runs; its own
    /// outcome is returned for the caller to store with whatever comes next.
    pub(super) async fn run_step(
        &self,
        scope: &mut RunScope,
        (index, step): (usize, &Step),
        context: &mut RunContext,
        in_flight: Option<&StepRecord>,
        previous: Option<StepFinish>,
    ) -> Result<(StepReport, StepFinish), ExecError> {
        let plugins = scope.plugins.clone();
        let plugin = scope_plugin(&plugins, step, &step.plugin)?;
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        let mut report = StepReport::new(step, &plugin.digest, plugin.cache);
        // A step that was in flight continues its attempt count, so its effects keep
        // their journal positions and idempotency keys.
        let first_attempt = in_flight.map_or(1, |r| r.attempts.max(1) as u32 + 1);

        // Templates are checked at load; a failure here is about run-time data (say, a
        // missing key in an earlier output), so it fails the step, not the process.
        context.set_attempt(first_attempt);
        let prepared = self.prepare(step, context);
        if in_flight.is_none() {
            let (input, attempts) = match &prepared {
                Ok(Some((input, _))) => (input.clone(), i64::from(first_attempt)),
                _ => (Value::Null, 0),
            };
            self.state
                .start_step_after(
                    &scope.run_id,
                    previous,
                    &StepStart {
                        index: index as i64,
                        step_id: step.id.clone(),
                        plugin: step.plugin.clone(),
                        plugin_digest: plugin.digest.clone(),
                        input,
                        started_at,
                        attempts,
                        lease_owner: scope.lease_owner(),
                    },
                )
                .await?;
        } else if let Some(previous) = previous {
            self.state.finish_step_with(&scope.run_id, previous).await?;
        }

        // One recording for all attempts: the step's volume caps are per step.
        let mut recording = StepRecording::new(recording_limits(&self.step_limits(step)));
        // The last attempt's calls are stored with the step's outcome; an attempt that is
        // followed by another is journaled before the backoff.
        let mut calls = Vec::new();
        let (mut status, mut output, mut error) = (StepStatus::Failed, None, None);
        if first_attempt > 1 {
            recording.log.push(host_line(
                "warn",
                format!("resumed: the step was in flight when its process stopped; attempt {first_attempt} answers effects already made from the call journal"),
            ));
        }
        match prepared {
            Err(e) => error = Some(e.to_string()),
            Ok(None) => status = StepStatus::Skipped,
            Ok(Some((mut input, mut grants))) => {
                let last = first_attempt + step.retry.attempts.max(1) - 1;
                for attempt in first_attempt..=last {
                    if attempt > first_attempt {
                        let wait = step.retry.delay_before(attempt - first_attempt + 1);
                        recording.log.push(host_line(
                            "warn",
                            format!(
                                "attempt {attempt} in {} ms: {}",
                                wait.as_millis(),
                                error.clone().unwrap_or_default()
                            ),
                        ));
                        tokio::time::sleep(wait).await;
                        context.set_attempt(attempt);
                        match self.prepare(step, context) {
                            Ok(Some((i, g))) => (input, grants) = (i, g),
                            Ok(None) => break,
                            Err(e) => {
                                error = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    report.attempts = attempt;
                    // A step's first attempt was stored with its start.
                    if attempt > first_attempt || in_flight.is_some() {
                        self.state
                            .set_step_attempts(&scope.run_id, index as i64, i64::from(attempt))
                            .await?;
                    }
                    let result = self
                        .attempt(
                            scope,
                            Attempting {
                                journal_index: index as i64,
                                step,
                                plugin,
                            },
                            &input,
                            grants.clone(),
                            attempt,
                            recording,
                        )
                        .await;
                    recording = result.recording;
                    (status, output, error) = (result.status, result.output, result.error);
                    if status == StepStatus::Succeeded || !result.retryable || attempt == last {
                        calls = result.calls;
                        break;
                    }
                    if let Err(e) = self.state.record_calls(&scope.run_id, &result.calls).await {
                        recording
                            .log
                            .push(host_line("error", format!("call journal: {e}")));
                    }
                }
            }
        }

        let duration_ms = started.elapsed().as_millis() as i64;
        let (logs, audit) = recording.finish();
        let outcome = StepOutcome {
            status,
            output: output.clone(),
            error: error.clone(),
            logs,
            finished_at: chrono::Utc::now(),
            duration_ms,
        };
        report.status = status;
        report.output = output;
        report.error = error;
        report.duration_ms = duration_ms;
        report.audit_records = audit.len();
        let finish = StepFinish {
            index: index as i64,
            outcome,
            audit,
            calls,
        };
        Ok((report, finish))
    }

    /// `Ok(None)`: the step's `when` is false. `Err`: its condition, input or a templated
    /// grant did not render.
    pub(super) fn prepare(
        &self,
        step: &Step,
        context: &RunContext,
    ) -> Result<Option<(Value, Grants)>, PrepareError> {
        if let Some(condition) = &step.when {
            let run = self
                .templates
                .eval_condition(condition, context)
                .map_err(PrepareError::Condition)?;
            if !run {
                return Ok(None);
            }
        }
        let input = self
            .templates
            .render_input(&step.input, context)
            .map_err(PrepareError::Input)?;
        let grants = self.render_grants(step, context)?;
        Ok(Some((input, grants)))
    }

    /// Email recipients written as templates become the addresses earlier steps found.
    fn render_grants(&self, step: &Step, context: &RunContext) -> Result<Grants, PrepareError> {
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
                .map_err(|source| PrepareError::Recipients {
                    entry: entry.clone(),
                    source,
                })?;
            let mut push = |v: &Value| match v.as_str() {
                Some(s) if s.contains('@') && !s.contains('*') => {
                    recipients.push(s.trim().to_lowercase());
                    Ok(())
                }
                _ => Err(PrepareError::NotAnAddress {
                    entry: entry.clone(),
                    rendered: v.clone(),
                }),
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

    pub(super) async fn attempt(
        &self,
        scope: &mut RunScope,
        Attempting {
            journal_index,
            step,
            plugin,
        }: Attempting<'_>,
        input: &Value,
        grants: Grants,
        attempt: u32,
        recording: StepRecording,
    ) -> Attempt {
        let limits = self.step_limits(step);
        // One deadline for the whole attempt: the runtime's epoch deadline stops the
        // plugin's code, the database stops its statement, the heartbeat watches both.
        let deadline = Instant::now() + limits.timeout;
        let watching = scope.watch.attempt(deadline);
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
                recording,
                calls: Vec::new(),
                tx,
            }
            .hand_back(scope);
        }
        let mut calls = CallSession::new(
            Arc::new(StepContext {
                run_id: scope.run_id.clone(),
                step_id: step.id.clone(),
                plugin: step.plugin.clone(),
                plugin_digest: plugin.digest.clone(),
                operator: scope.actor.clone(),
            }),
            self.state.clone(),
            scope.budget.clone(),
            scope.dry_run,
            journal_index,
            i64::from(attempt),
        );
        calls.recording = recording;
        let db = DbSession {
            target: self.target.clone(),
            tx,
            analysis: self.analysis.clone(),
            poisoned: None,
            deadline: Some(deadline),
            caps: DbCaps {
                statement_bytes: limits.max_statement_bytes,
                param_bytes: limits.max_param_bytes,
                params_bytes: limits.max_params_bytes,
                result: ResultCaps {
                    max_rows: limits.max_result_rows,
                    max_bytes: limits.max_result_bytes,
                },
            },
        };
        let capabilities = StepCapabilities::prepare(calls, grants, &self.services, db);
        let state = StepState::new(capabilities, limits.memory_bytes);
        let (outcome, mut state) = self
            .runtime
            .invoke(plugin, state, &input.to_string(), limits)
            .await;
        // The plugin's part is over (rolling back is bounded; committing is the host's
        // own work, however long it takes).
        drop(watching);
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

        // A failure the plugin reported after a transient error (Stripe 5xx after the
        // capability's retries, a serialization conflict) is worth another attempt; a
        // denial never is.
        if status == StepStatus::Failed && state.capabilities.calls.transient.is_some() {
            retryable = true;
        }
        if state.capabilities.calls.denied {
            retryable = false;
        }
        // The audit cap is the step's, across attempts: another attempt would only be
        // refused again.
        if let Some(reached) = state.capabilities.calls.recording.audit.limit_reached() {
            retryable = false;
            error = Some(format!("plugin stopped: {reached}"));
        }
        let mut tx = state.capabilities.db.session.tx.take();
        // The plugin is done: what the host still sends (savepoints, commit) is not bound
        // by its deadline.
        if let Some(t) = &mut tx {
            t.clear_deadline();
        }
        if scope.dry_run
            && let Some(t) = &mut tx
        {
            let sql = if status == StepStatus::Succeeded {
                "RELEASE SAVEPOINT runbook_step"
            } else {
                "ROLLBACK TO SAVEPOINT runbook_step"
            };
            if let Err(e) = t.execute(sql, &[]).await {
                status = StepStatus::Failed;
                // A timed-out step's own error says more than the savepoint's.
                error.get_or_insert(format!("dry run: {sql}: {e}"));
            }
        }
        capture_output(&mut state, "stdout");
        capture_output(&mut state, "stderr");
        let mut recording = std::mem::take(&mut state.capabilities.calls.recording);
        let calls = state.capabilities.take_calls();
        if !scope.dry_run
            && let Some(t) = tx.take()
        {
            // The step's writes stand or fall with the step, and with the record that it
            // finished (see `completion.rs`).
            let finished = if status == StepStatus::Succeeded {
                let committing = completion::Committing {
                    run_id: &scope.run_id,
                    step_index: journal_index,
                    attempt,
                    step_id: &step.id,
                    output: output.as_ref(),
                    calls: &calls,
                    aborted: state.capabilities.db.session.poisoned.is_some(),
                };
                completion::commit_step(t, committing, &mut recording).await
            } else {
                t.rollback()
                    .await
                    .map_err(|e| format!("database transaction could not be finished: {e}"))
            };
            if let Err(e) = finished {
                status = StepStatus::Failed;
                error = Some(e);
            }
        }
        if scope.dry_run {
            // A dry run changed nothing, so it has nothing to attest to but refusals.
            let StepRecording { audit, log } = &mut recording;
            let filtered = audit.map_spool(|spool| {
                spool.filter(
                    |e| e.action == "capability.denied",
                    |e| {
                        log.push(host_line(
                            "info",
                            format!("dry run: would audit {} on {}", e.action, e.target),
                        ));
                    },
                )
            });
            if let Err(e) = filtered {
                status = StepStatus::Failed;
                error = Some(format!("dry run: {e}"));
            }
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
            recording,
            calls,
            tx,
        }
        .hand_back(scope)
    }
}

impl Attempt {
    /// Returns the dry run's transaction to the run for the next step.
    fn hand_back(mut self, scope: &mut RunScope) -> Attempt {
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
        // Captured output counts against the step's log bytes like any other line.
        state.capabilities.calls.recording.log.push(log);
    }
}

impl Executor<'_> {
    /// The step's limits: its own where it sets them, the configuration's otherwise.
    pub(super) fn step_limits(&self, step: &Step) -> StepLimits {
        step.limits.apply(self.limits)
    }
}

/// The volume caps a step's recording enforces.
pub(super) fn recording_limits(limits: &StepLimits) -> RecordingLimits {
    RecordingLimits {
        max_log_bytes: usize::try_from(limits.max_log_bytes).unwrap_or(usize::MAX),
        max_audit_entries: usize::try_from(limits.max_audit_entries).unwrap_or(usize::MAX),
        max_audit_bytes: usize::try_from(limits.max_audit_bytes).unwrap_or(usize::MAX),
    }
}
