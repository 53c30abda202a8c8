//! The bookkeeping every capability call of a step shares, whatever its interface: who
//! is calling (the step's identity), call numbering, the call journal with replay of
//! effects an earlier attempt already made, denials (audit, log line, journal), the run's
//! budgets, and what the step recorded (audit entries and log lines) until it ends.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::budget::RunBudget;
use super::recording::StepRecording;
use crate::contract::types::CallError;
use crate::state::{CallDecision, CallRecord, LogLine, NewAuditEntry, StateStore};

/// Who is doing what: stamped on every audit record the step writes.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub run_id: String,
    pub step_id: String,
    pub plugin: String,
    pub plugin_digest: String,
    pub operator: String,
}

pub struct CallSession {
    pub context: Arc<StepContext>,
    pub state: StateStore,
    pub budget: Arc<RunBudget>,
    pub dry_run: bool,
    pub step_index: i64,
    /// 1 for the first attempt of the step.
    pub attempt: i64,
    next_seq: i64,
    /// Calls not yet stored: stored with the step's outcome.
    pub pending: Vec<CallRecord>,
    /// A transient failure the plugin was answered with (Stripe 429/5xx after the
    /// capability's own retries, a serialization conflict): makes the step retryable.
    pub transient: Option<String>,
    /// Whether any call was denied: a step with a denial is never retried.
    pub denied: bool,
    /// The step's log lines and audit entries, under its volume caps. The executor
    /// hands in the step's recording (it spans attempts) and takes it back after.
    pub recording: StepRecording,
}

impl CallSession {
    pub fn new(
        context: Arc<StepContext>,
        state: StateStore,
        budget: Arc<RunBudget>,
        dry_run: bool,
        step_index: i64,
        attempt: i64,
    ) -> CallSession {
        CallSession {
            context,
            state,
            budget,
            dry_run,
            step_index,
            attempt,
            next_seq: 0,
            pending: Vec::new(),
            transient: None,
            denied: false,
            recording: StepRecording::default(),
        }
    }

    pub(crate) fn next_seq(&mut self) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Adds a line to the step's log, unless the step's `max_log_bytes` is used up
    /// (then it is counted in the log's marker line).
    pub fn push_log(&mut self, line: LogLine) {
        self.recording.log.push(line);
    }

    /// An audit record stamped with this step's identity.
    pub fn audit_entry(&self, action: &str, target: &str, detail: String) -> NewAuditEntry {
        let c = &self.context;
        NewAuditEntry {
            at: chrono::Utc::now(),
            actor: c.operator.clone(),
            run_id: Some(c.run_id.clone()),
            step_id: Some(c.step_id.clone()),
            plugin: Some(c.plugin.clone()),
            plugin_digest: Some(c.plugin_digest.clone()),
            action: action.to_string(),
            target: target.to_string(),
            detail,
        }
    }

    /// Journals a call that was allowed and made: what the other side answered (the
    /// response kept for replay, if any) or the error it failed with.
    pub(crate) async fn journal_made(
        &mut self,
        call: &Call,
        outcome: Result<Option<Value>, &CallError>,
        idempotency_key: Option<String>,
    ) {
        let record = self.made_record(call, outcome, idempotency_key);
        self.journal(record).await;
    }

    /// Journals the outcome of a call whose intent was journaled before it left
    /// (replacing the intent), at once whether it succeeded or failed: an intent left
    /// standing reads as "possibly sent" after a crash.
    pub(crate) async fn journal_sent(
        &mut self,
        call: &Call,
        outcome: Result<Option<Value>, &CallError>,
        id: &str,
    ) {
        let record = self.made_record(call, outcome, Some(id.to_string()));
        self.journal_now(record).await;
    }

    fn made_record(
        &self,
        call: &Call,
        outcome: Result<Option<Value>, &CallError>,
        idempotency_key: Option<String>,
    ) -> CallRecord {
        match outcome {
            Ok(response) => self.record(
                call,
                CallDecision::Allowed,
                true,
                response,
                None,
                idempotency_key,
            ),
            Err(e) => self.record(
                call,
                CallDecision::Allowed,
                false,
                None,
                Some(e.message()),
                idempotency_key,
            ),
        }
    }

    /// Answers a call that an earlier attempt of this step already made with this very
    /// request from the journal (journaling it as `replayed`): `None` when there is none.
    /// The answer is the recorded response (`null` if none was kept) or its error.
    pub(crate) async fn replay(&mut self, call: &Call) -> Option<Result<Value, CallError>> {
        let done = self.completed_effect(call).await?;
        let response = done.response.clone().unwrap_or(Value::Null);
        // A call answered as "unknown, possibly sent" stays unknown on later attempts.
        let decision = if done.decision == CallDecision::Unknown {
            CallDecision::Unknown
        } else {
            CallDecision::Replayed
        };
        let record = self.record(
            call,
            decision,
            done.ok,
            done.response,
            done.error.clone(),
            done.idempotency_key,
        );
        self.journal(record).await;
        Some(match done.error {
            Some(e) if !done.ok => Err(CallError::Failed(e)),
            _ => Ok(response),
        })
    }
}

/// The text of any call error, for the journal and logs.
impl CallError {
    pub(crate) fn message(&self) -> String {
        match self {
            CallError::Denied(m)
            | CallError::Invalid(m)
            | CallError::Failed(m)
            | CallError::Unavailable(m) => m.clone(),
        }
    }
}

/// Calls kept in memory before they are written to the journal mid-step.
const PENDING_CALLS: usize = 4_096;

/// One call about to be made, identified for the journal.
pub(crate) struct Call {
    pub interface: &'static str,
    pub operation: String,
    /// Already redacted.
    pub params: Value,
    pub digest: String,
    pub effect: bool,
    pub seq: i64,
    pub started: Instant,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl Call {
    /// The same request made again must have the same digest: interface, operation and
    /// the unredacted parameters as the plugin sent them.
    pub fn digest(interface: &str, operation: &str, request: &str) -> String {
        let mut h = Sha256::new();
        for part in [interface, operation, request] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

impl CallSession {
    pub(crate) fn begin_call(
        &mut self,
        interface: &'static str,
        operation: &str,
        request: &str,
        params: Value,
        effect: bool,
    ) -> Call {
        let seq = self.next_seq();
        Call {
            interface,
            operation: operation.to_string(),
            params,
            digest: Call::digest(interface, operation, request),
            effect,
            seq,
            started: Instant::now(),
            started_at: chrono::Utc::now(),
        }
    }

    /// The idempotency key of an effect: the same on every attempt of the step, and
    /// different for every other call of any run.
    pub(crate) fn idempotency_key(&self, call: &Call) -> String {
        format!(
            "runbook-{}-{}-{}",
            self.context.run_id, self.context.step_id, call.seq
        )
    }

    /// An effect an earlier attempt of this step already made with this very request.
    pub(crate) async fn completed_effect(&mut self, call: &Call) -> Option<CallRecord> {
        if self.attempt <= 1 {
            return None;
        }
        match self
            .state
            .completed_effect(
                &self.context.run_id,
                self.step_index,
                call.seq,
                &call.digest,
            )
            .await
        {
            Ok(found) => found,
            Err(e) => {
                // Not knowing is not the same as "not done": refuse rather than repeat.
                tracing::error!(target: "runbook::journal", "journal lookup failed: {e}");
                Some(CallRecord {
                    ok: false,
                    error: Some(format!(
                        "the call journal could not be read ({e}); not repeating a call that may have been made"
                    )),
                    ..self.record(call, CallDecision::Denied, false, None, None, None)
                })
            }
        }
    }

    pub(crate) fn record(
        &self,
        call: &Call,
        decision: CallDecision,
        ok: bool,
        response: Option<Value>,
        error: Option<String>,
        idempotency_key: Option<String>,
    ) -> CallRecord {
        CallRecord {
            step_index: self.step_index,
            attempt: self.attempt,
            seq: call.seq,
            interface: call.interface.to_string(),
            operation: call.operation.clone(),
            params: call.params.clone(),
            request_digest: call.digest.clone(),
            decision,
            ok,
            effect: call.effect,
            response,
            error,
            idempotency_key,
            started_at: call.started_at,
            duration_us: call.started.elapsed().as_micros() as i64,
        }
    }

    /// Journals a finished call. An effect that was really made is stored at once, so a
    /// crash or a fault right after it cannot make a re-run repeat it.
    pub(crate) async fn journal(&mut self, record: CallRecord) {
        let durable_now = record.effect && record.ok && record.decision == CallDecision::Allowed;
        if durable_now {
            self.journal_now(record).await;
            return;
        }
        self.pending.push(record);
    }

    /// Stores a call at once (kept for the step's outcome if the store fails).
    pub(crate) async fn journal_now(&mut self, record: CallRecord) {
        if let Err(e) = self
            .state
            .record_calls(&self.context.run_id, std::slice::from_ref(&record))
            .await
        {
            tracing::error!(target: "runbook::journal", "could not journal an effect: {e}");
            self.push_log(LogLine {
                at: chrono::Utc::now(),
                level: "error".into(),
                stream: "host".into(),
                message: format!(
                    "could not journal an effect at once ({e}); kept for the step's outcome"
                ),
                fields: Default::default(),
            });
            self.pending.push(record);
        }
    }

    /// Writes the pending calls to the journal once there are many, so a step that makes
    /// an unbounded number of distinct calls does not hold them all in memory.
    pub(crate) async fn spill_calls(&mut self) {
        if self.pending.len() < PENDING_CALLS {
            return;
        }
        let calls = std::mem::take(&mut self.pending);
        if let Err(e) = self.state.record_calls(&self.context.run_id, &calls).await {
            tracing::warn!(target: "runbook::journal", "could not journal calls mid-step: {e}");
            self.pending = calls;
        }
    }

    /// Denial bookkeeping shared by every capability: audit, log line, journal.
    pub(crate) async fn deny_call(&mut self, call: &Call, target: &str, reason: String) -> String {
        self.denied = true;
        let detail = serde_json::json!({
            "reason": reason,
            "interface": call.interface,
            "operation": call.operation,
            "params": call.params,
        })
        .to_string();
        let entry = self.audit_entry("capability.denied", target, detail);
        self.recording.audit.push(entry);
        tracing::warn!(target: "runbook::grant", step = %self.context.step_id, plugin = %self.context.plugin, "denied: {reason}");
        self.push_log(LogLine {
            at: chrono::Utc::now(),
            level: "warn".into(),
            stream: "host".into(),
            message: format!("denied: {reason}"),
            fields: Default::default(),
        });
        let record = self.record(
            call,
            CallDecision::Denied,
            false,
            None,
            Some(reason.clone()),
            None,
        );
        self.journal(record).await;
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Stripe idempotency key, the email Message-ID and the webhook delivery id are
    /// derived from run, step and call number: the same on every attempt and in every
    /// process that resumes the run.
    #[tokio::test]
    async fn the_idempotency_key_does_not_depend_on_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let state = StateStore::open(&url).await.unwrap();
        let context = Arc::new(StepContext {
            run_id: "r1".into(),
            step_id: "refund".into(),
            plugin: "p".into(),
            plugin_digest: "d".into(),
            operator: "ops".into(),
        });
        let key = |attempt| {
            let mut session = CallSession::new(
                context.clone(),
                state.clone(),
                Arc::default(),
                false,
                0,
                attempt,
            );
            session.begin_call("stripe", "noop", "{}", Value::Null, false);
            let call = session.begin_call("stripe", "refunds.create", "{}", Value::Null, true);
            session.idempotency_key(&call)
        };
        assert_eq!(key(1), "runbook-r1-refund-1");
        assert_eq!(key(1), key(3));
    }
}
