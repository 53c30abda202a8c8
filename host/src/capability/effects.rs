//! What a step's capability calls share beyond its grant: the services, dry-run mode,
//! the call journal (with replay of effects an earlier attempt already made) and the
//! run's budgets.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::budget::RunBudget;
use super::db_journal::StatementTotals;
use super::services::Services;
use crate::runtime::StepState;
use crate::state::{CallDecision, CallRecord, LogLine, StateStore};

pub struct EffectSession {
    pub services: Arc<Services>,
    pub state: StateStore,
    pub budget: Arc<RunBudget>,
    pub dry_run: bool,
    pub step_index: i64,
    /// 1 for the first attempt of the step.
    pub attempt: i64,
    next_seq: i64,
    /// Calls not yet stored: stored with the step's outcome.
    pub pending: Vec<CallRecord>,
    /// Successful database statements, counted per statement text.
    pub(crate) statements: StatementTotals,
    /// A transient failure the plugin was answered with (Stripe 429/5xx after the
    /// capability's own retries, a serialization conflict): makes the step retryable.
    pub transient: Option<String>,
    /// Whether any call was denied: a step with a denial is never retried.
    pub denied: bool,
}

impl EffectSession {
    pub fn new(
        services: Arc<Services>,
        state: StateStore,
        budget: Arc<RunBudget>,
        dry_run: bool,
        step_index: i64,
        attempt: i64,
    ) -> EffectSession {
        EffectSession {
            services,
            state,
            budget,
            dry_run,
            step_index,
            attempt,
            next_seq: 0,
            pending: Vec::new(),
            statements: StatementTotals::default(),
            transient: None,
            denied: false,
        }
    }
}

impl EffectSession {
    pub(crate) fn next_seq(&mut self) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Every call of the attempt not yet stored, in call order.
    pub fn take_calls(&mut self) -> Vec<CallRecord> {
        let mut calls = std::mem::take(&mut self.pending);
        let counted = std::mem::take(&mut self.statements);
        calls.extend(counted.into_records(self.step_index, self.attempt));
        calls.sort_by_key(|c| c.seq);
        calls
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

impl StepState {
    pub(crate) fn begin_call(
        &mut self,
        interface: &'static str,
        operation: &str,
        request: &str,
        params: Value,
        effect: bool,
    ) -> Call {
        let seq = self.effects.next_seq();
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
        if self.effects.attempt <= 1 {
            return None;
        }
        match self
            .effects
            .state
            .completed_effect(
                &self.context.run_id,
                self.effects.step_index,
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
            step_index: self.effects.step_index,
            attempt: self.effects.attempt,
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
            if let Err(e) = self
                .effects
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
                self.effects.pending.push(record);
            }
            return;
        }
        self.effects.pending.push(record);
    }

    /// Writes the pending calls to the journal once there are many, so a step that makes
    /// an unbounded number of distinct calls does not hold them all in memory.
    pub(crate) async fn spill_calls(&mut self) {
        if self.effects.pending.len() < PENDING_CALLS {
            return;
        }
        let calls = std::mem::take(&mut self.effects.pending);
        if let Err(e) = self
            .effects
            .state
            .record_calls(&self.context.run_id, &calls)
            .await
        {
            tracing::warn!(target: "runbook::journal", "could not journal calls mid-step: {e}");
            self.effects.pending = calls;
        }
    }

    /// Denial bookkeeping shared by every capability: audit, log line, journal.
    pub(crate) async fn deny_call(&mut self, call: &Call, target: &str, reason: String) -> String {
        self.effects.denied = true;
        let detail = serde_json::json!({
            "reason": reason,
            "interface": call.interface,
            "operation": call.operation,
            "params": call.params,
        })
        .to_string();
        let entry = self.audit_entry("capability.denied", target, detail);
        self.record.audit.push(entry);
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
