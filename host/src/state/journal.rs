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
}

impl CallDecision {
    fn as_str(self) -> &'static str {
        match self {
            CallDecision::Allowed => "allowed",
            CallDecision::Denied => "denied",
            CallDecision::Replayed => "replayed",
            CallDecision::DryRun => "dry-run",
        }
    }

    fn parse(text: &str) -> Option<CallDecision> {
        Some(match text {
            "allowed" => CallDecision::Allowed,
            "denied" => CallDecision::Denied,
            "replayed" => CallDecision::Replayed,
            "dry-run" => CallDecision::DryRun,
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

/// Inserts `calls` of run `run_id` inside the caller's write transaction.
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
        tx.commit().await?;
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
             AND effect = 1 AND outcome = 'ok' AND decision IN ('allowed', 'replayed') \
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
