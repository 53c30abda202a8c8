//! The call journal: one row per capability call of a step attempt, and the lookup that
//! lets a re-run step be answered from an earlier attempt instead of repeating an effect.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::codec::{col, format_ts, from_json, parse_ts, to_json};
use super::{StateError, StateStore};

/// What the grant check decided about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallDecision {
    /// Granted and carried out.
    Allowed,
    /// Refused by the step's grant (also audited).
    Denied,
    /// Granted, and answered from an earlier attempt's journal without repeating it.
    Replayed,
    /// Granted, and not carried out because the run is a dry run.
    DryRun,
    /// Journaled before an effect without idempotency (an email, a webhook delivery)
    /// left; replaced by the call's outcome when it returns. Left behind only when the
    /// process died in between: the message may or may not have been sent.
    Intent,
    /// An earlier attempt's intent had no outcome: the message was possibly sent before
    /// a crash and, the grant being at-most-once, was not sent again.
    Unknown,
}

impl CallDecision {
    fn as_str(self) -> &'static str {
        match self {
            CallDecision::Allowed => "allowed",
            CallDecision::Denied => "denied",
            CallDecision::Replayed => "replayed",
            CallDecision::DryRun => "dry-run",
            CallDecision::Intent => "intent",
            CallDecision::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Option<CallDecision> {
        Some(match text {
            "allowed" => CallDecision::Allowed,
            "denied" => CallDecision::Denied,
            "replayed" => CallDecision::Replayed,
            "dry-run" => CallDecision::DryRun,
            "intent" => CallDecision::Intent,
            "unknown" => CallDecision::Unknown,
            _ => return None,
        })
    }
}

/// One capability call.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    pub step_index: i64,
    pub attempt: i64,
    pub seq: i64,
    /// `db`, `stripe`, `webhook`, `email`.
    pub interface: String,
    /// `query`, `execute`, `refunds.create`, `deliver`, `send`, ...
    pub operation: String,
    /// The request with secrets and card data replaced by `[redacted]`.
    pub params: Value,
    #[serde(skip)]
    pub request_digest: String,
    pub decision: CallDecision,
    pub ok: bool,
    /// Whether the call changes something outside the target database.
    pub effect: bool,
    /// What the plugin received, for effects (so a replay can return it) and summaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_us: i64,
}

/// Inserts `calls` of run `run_id` inside the caller's write transaction. A call that
/// was journaled as an intent is replaced by its outcome (same attempt and seq).
pub(super) async fn insert_calls(
    conn: &mut AnyConnection,
    run_id: &str,
    calls: &[CallRecord],
) -> Result<(), StateError> {
    for call in calls {
        let params = to_json("call params", &call.params)?;
        let response = call
            .response
            .as_ref()
            .map(|r| to_json("call response", r))
            .transpose()?;
        sqlx::query(
            "INSERT INTO calls (run_id, step_index, attempt, seq, interface, operation, \
                 params, request_digest, decision, outcome, effect, response, error, \
                 idempotency_key, started_at, duration_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (run_id, step_index, attempt, seq) DO UPDATE SET \
                 decision = excluded.decision, outcome = excluded.outcome, \
                 response = excluded.response, error = excluded.error, \
                 idempotency_key = excluded.idempotency_key, duration_us = excluded.duration_us \
                 WHERE calls.decision = 'intent'",
        )
        .bind(run_id)
        .bind(call.step_index)
        .bind(call.attempt)
        .bind(call.seq)
        .bind(&call.interface)
        .bind(&call.operation)
        .bind(params)
        .bind(&call.request_digest)
        .bind(call.decision.as_str())
        .bind(if call.ok { "ok" } else { "error" })
        .bind(i64::from(call.effect))
        .bind(response)
        .bind(&call.error)
        .bind(&call.idempotency_key)
        .bind(format_ts("call start time", &call.started_at)?)
        .bind(call.duration_us)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl StateStore {
    /// Appends calls of one run. Effects are written one by one as soon as they are
    /// answered; everything else in one batch when the step ends.
    pub async fn record_calls(&self, run_id: &str, calls: &[CallRecord]) -> Result<(), StateError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        insert_calls(&mut tx, run_id, calls).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// The answered effect an earlier attempt of the same step made as its `seq`-th call
    /// with exactly this request, if any: what a re-run must return instead of repeating it.
    pub async fn completed_effect(
        &self,
        run_id: &str,
        step_index: i64,
        seq: i64,
        request_digest: &str,
    ) -> Result<Option<CallRecord>, StateError> {
        let row = sqlx::query(
            "SELECT step_index, attempt, seq, interface, operation, params, request_digest, \
             decision, outcome, effect, response, error, idempotency_key, started_at, \
             duration_us FROM calls \
             WHERE run_id = $1 AND step_index = $2 AND seq = $3 AND request_digest = $4 \
             AND effect = 1 AND outcome = 'ok' AND decision IN ('allowed', 'replayed', 'unknown') \
             ORDER BY attempt LIMIT 1",
        )
        .bind(run_id)
        .bind(step_index)
        .bind(seq)
        .bind(request_digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| call_from_row(run_id, &r)).transpose()
    }

    /// An intent an earlier attempt (before `attempt`) of the same step journaled for its
    /// `seq`-th call with exactly this request and never replaced by an outcome: the
    /// process died while the message was leaving, so it was possibly sent.
    pub async fn open_intent(
        &self,
        run_id: &str,
        step_index: i64,
        seq: i64,
        request_digest: &str,
        attempt: i64,
    ) -> Result<Option<CallRecord>, StateError> {
        let row = sqlx::query(
            "SELECT step_index, attempt, seq, interface, operation, params, request_digest, \
             decision, outcome, effect, response, error, idempotency_key, started_at, \
             duration_us FROM calls \
             WHERE run_id = $1 AND step_index = $2 AND seq = $3 AND request_digest = $4 \
             AND attempt < $5 AND decision = 'intent' \
             ORDER BY attempt DESC LIMIT 1",
        )
        .bind(run_id)
        .bind(step_index)
        .bind(seq)
        .bind(request_digest)
        .bind(attempt)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| call_from_row(run_id, &r)).transpose()
    }

    /// Every call of a run, in order.
    pub async fn calls(&self, run_id: &str) -> Result<Vec<CallRecord>, StateError> {
        sqlx::query(
            "SELECT step_index, attempt, seq, interface, operation, params, request_digest, \
             decision, outcome, effect, response, error, idempotency_key, started_at, \
             duration_us FROM calls WHERE run_id = $1 ORDER BY step_index, attempt, seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| call_from_row(run_id, r))
        .collect()
    }
}

fn call_from_row(run_id: &str, row: &AnyRow) -> Result<CallRecord, StateError> {
    let loc = || format!("calls row of run {run_id:?}");
    let at = |c: &str| format!("calls row of run {run_id:?}, column {c}");
    let params: String = col(row, "params", loc)?;
    let decision: String = col(row, "decision", loc)?;
    let outcome: String = col(row, "outcome", loc)?;
    let response: Option<String> = col(row, "response", loc)?;
    let started: String = col(row, "started_at", loc)?;
    Ok(CallRecord {
        step_index: col(row, "step_index", loc)?,
        attempt: col(row, "attempt", loc)?,
        seq: col(row, "seq", loc)?,
        interface: col(row, "interface", loc)?,
        operation: col(row, "operation", loc)?,
        params: from_json(|| at("params"), &params)?,
        request_digest: col(row, "request_digest", loc)?,
        decision: CallDecision::parse(&decision).ok_or_else(|| StateError::Corrupt {
            location: at("decision"),
            reason: format!("unknown decision {decision:?}"),
        })?,
        ok: outcome == "ok",
        effect: col::<i64>(row, "effect", loc)? != 0,
        response: response
            .map(|r| from_json(|| at("response"), &r))
            .transpose()?,
        error: col(row, "error", loc)?,
        idempotency_key: col(row, "idempotency_key", loc)?,
        started_at: parse_ts(|| at("started_at"), &started)?,
        duration_us: col(row, "duration_us", loc)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::testutil::{RUN_A, new_run, on_all_backends, t};

    fn email(attempt: i64, decision: CallDecision, ok: bool) -> CallRecord {
        CallRecord {
            step_index: 0,
            attempt,
            seq: 0,
            interface: "email".into(),
            operation: "send".into(),
            params: json!({ "to": ["ops@example.com"] }),
            request_digest: "d1".into(),
            decision,
            ok,
            effect: true,
            response: Some(json!({ "message_id": "m-1" })),
            error: None,
            idempotency_key: Some("m-1".into()),
            started_at: t("2025-06-01T10:00:00Z"),
            duration_us: 5,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_intent_is_replaced_by_its_outcome_and_left_behind_only_by_a_crash() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            // Attempt 1: intent, then its outcome replaces it in place.
            store
                .record_calls(RUN_A, &[email(1, CallDecision::Intent, true)])
                .await
                .unwrap();
            store
                .record_calls(RUN_A, &[email(1, CallDecision::Allowed, true)])
                .await
                .unwrap();
            let calls = store.calls(RUN_A).await.unwrap();
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].decision, CallDecision::Allowed);
            assert!(
                store
                    .open_intent(RUN_A, 0, 0, "d1", 2)
                    .await
                    .unwrap()
                    .is_none()
            );

            // Attempt 2 dies after its intent: attempt 3 finds it, attempt 2 does not
            // see its own, and a different request is not it.
            store
                .record_calls(RUN_A, &[email(2, CallDecision::Intent, true)])
                .await
                .unwrap();
            let open = store.open_intent(RUN_A, 0, 0, "d1", 3).await.unwrap();
            assert_eq!(open.map(|c| c.attempt), Some(2));
            assert!(
                store
                    .open_intent(RUN_A, 0, 0, "d1", 2)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .open_intent(RUN_A, 0, 0, "d2", 3)
                    .await
                    .unwrap()
                    .is_none()
            );

            // An outcome never overwrites a finished call.
            store
                .record_calls(RUN_A, &[email(1, CallDecision::Denied, false)])
                .await
                .unwrap();
            // Attempt 3 journals the call as unknown; a later attempt replays that.
            store
                .record_calls(RUN_A, &[email(3, CallDecision::Unknown, true)])
                .await
                .unwrap();
            let calls = store.calls(RUN_A).await.unwrap();
            let decisions: Vec<CallDecision> = calls.iter().map(|c| c.decision).collect();
            assert_eq!(
                decisions,
                [
                    CallDecision::Allowed,
                    CallDecision::Intent,
                    CallDecision::Unknown
                ]
            );
            let done = store.completed_effect(RUN_A, 0, 0, "d1").await.unwrap();
            assert_eq!(done.map(|c| c.attempt), Some(1));
        })
        .await;
    }
}
