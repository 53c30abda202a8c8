//! The `stripe` host function, through async-stripe's client (auth, transport, error
//! decoding). Each call is checked against the step's
//! granted operations and budgets; writes carry an idempotency key derived from run,
//! step and call number, are answered from the journal when a re-run step repeats them,
//! and are only planned in a dry run. Responses are Stripe's own JSON, undecoded.

use std::time::Duration;

use serde_json::{Map, Value};
use stripe_client_core::{RequestBuilder, RequestStrategy, StripeMethod};

use super::StripeHost;
use super::operations::{StripeOperation, stripe_operation};
use super::service::StripeClient;
use crate::capability::calls::Call;
use crate::capability::redact;
use crate::contract::json;
use crate::contract::stripe as api;
use crate::contract::types::CallError;
use crate::state::CallDecision;

/// First backoff; doubled per retry, capped, with full jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// A Stripe write the step's budgets do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum OverBudget {
    #[error("this step may make at most {max} Stripe write(s) per run, and has made {made}")]
    Writes { max: u32, made: u32 },
    #[error("a refund of {amount} exceeds this step's limit of {max} per refund")]
    RefundAmount { amount: i64, max: i64 },
    #[error(
        "a refund of {amount} would bring this run's refunds to {total}, over this step's limit of {max}"
    )]
    RefundTotal { amount: i64, total: i64, max: i64 },
}

/// A failed send; `transient` when it was still a 429/5xx/transport failure after every
/// retry, so the step as a whole may be retried (see `EffectSession::transient`).
struct SendError {
    error: CallError,
    transient: bool,
}

impl From<CallError> for SendError {
    fn from(error: CallError) -> SendError {
        SendError {
            error,
            transient: false,
        }
    }
}

impl api::Host for StripeHost<'_> {
    async fn call(
        &mut self,
        operation: String,
        params: String,
    ) -> wasmtime::Result<Result<String, CallError>> {
        Ok(self.stripe_call(&operation, &params).await)
    }
}

impl StripeHost<'_> {
    async fn stripe_call(&mut self, operation: &str, request: &str) -> Result<String, CallError> {
        let params = match serde_json::from_str::<Value>(request) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(CallError::Invalid(
                    "stripe params must be a JSON object".into(),
                ));
            }
            Err(e) => return Err(CallError::Invalid(format!("stripe params: {e}"))),
        };
        let Some(op) = stripe_operation(operation) else {
            return Err(CallError::Invalid(format!(
                "unknown Stripe operation `{operation}`"
            )));
        };
        let call = self.calls.begin_call(
            "stripe",
            operation,
            request,
            redact(&Value::Object(params.clone())),
            op.write,
        );
        let granted = self
            .step
            .grant
            .as_ref()
            .is_some_and(|g| g.operations.contains(operation));
        if !granted {
            let reason = format!("Stripe operation `{operation}` is not granted to this step");
            let target = format!("stripe:{operation}");
            return Err(CallError::Denied(
                self.calls.deny_call(&call, &target, reason).await,
            ));
        }
        if op.write
            && let Some(answer) = self.calls.replay(&call).await
        {
            return answer.map(|response| response.to_string());
        }
        let step = self.step;
        // A dry run plans writes without a key: they are not sent, so there is nothing
        // to authenticate (reads still need one: their answers are real).
        let plan_offline = op.write && self.calls.dry_run;
        let service = match &step.service.client {
            Ok(s) => Some(s),
            Err(_) if plan_offline => None,
            Err(reason) => {
                let reason = reason.to_string();
                let record = self.calls.record(
                    &call,
                    CallDecision::Allowed,
                    false,
                    None,
                    Some(reason.clone()),
                    None,
                );
                self.calls.journal(record).await;
                return Err(CallError::Unavailable(reason));
            }
        };
        let refund = if op.name == "refunds.create" {
            let amount = match service {
                Some(service) => refund_amount(service, &params).await.map(Some),
                // Without a key the amount of a whole-charge refund is not known.
                None => stated_refund(&params),
            };
            match amount {
                Ok(amount) => amount,
                Err(e) => {
                    let record = self.calls.record(
                        &call,
                        CallDecision::Allowed,
                        false,
                        None,
                        Some(e.message()),
                        None,
                    );
                    self.calls.journal(record).await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let key = op.write.then(|| self.calls.idempotency_key(&call));
        if let Some(key) = &key
            && !self.calls.budget.charged(key)
        {
            if let Err(over) = self.check_budget(refund) {
                let target = format!("stripe:{operation}");
                return Err(CallError::Denied(
                    self.calls.deny_call(&call, &target, over.to_string()).await,
                ));
            }
            self.calls
                .budget
                .charge_write(&self.calls.context.step_id, key, |spent| {
                    spent.stripe_writes += 1;
                    spent.refunded += refund.unwrap_or(0);
                });
        }
        if op.write && self.calls.dry_run {
            let placeholder = placeholder(op, &call, &params, refund);
            let record = self.calls.record(
                &call,
                CallDecision::DryRun,
                true,
                Some(placeholder.clone()),
                None,
                None,
            );
            self.calls.journal(record).await;
            return Ok(placeholder.to_string());
        }

        let Some(service) = service else {
            return Err(CallError::Unavailable(
                "no Stripe client for a call that is sent".into(),
            ));
        };
        let result = send(service, op, &params, key.as_deref()).await;
        let result = result.map_err(|e| {
            if e.transient {
                self.calls.transient = Some(e.error.message());
            }
            e.error
        });
        // Writes keep their answer for replay; reads would only bloat the journal.
        let outcome = result.as_ref().map(|body| {
            op.write
                .then(|| redact(&serde_json::from_str(body).unwrap_or(Value::Null)))
        });
        self.calls.journal_made(&call, outcome, key).await;
        result
    }

    /// The step's Stripe budgets, checked before a write is made.
    fn check_budget(&self, refund: Option<i64>) -> Result<(), OverBudget> {
        let Some(grant) = &self.step.grant else {
            return Ok(());
        };
        let spent = self.calls.budget.spent(&self.calls.context.step_id);
        if let Some(max) = grant.max_writes
            && spent.stripe_writes >= max
        {
            return Err(OverBudget::Writes {
                max,
                made: spent.stripe_writes,
            });
        }
        if let Some(amount) = refund {
            if let Some(max) = grant.max_refund_amount
                && amount > max
            {
                return Err(OverBudget::RefundAmount { amount, max });
            }
            if let Some(max) = grant.max_refund_total
                && spent.refunded + amount > max
            {
                return Err(OverBudget::RefundTotal {
                    amount,
                    total: spent.refunded + amount,
                    max,
                });
            }
        }
        Ok(())
    }
}

/// How much a `refunds.create` would refund: `amount` if given; otherwise what is left of
/// the charge, which the host reads from Stripe itself so a "full refund" cannot slip
/// past the budget.
/// The `amount` a refund states, checked; `None` when it refunds the whole charge.
fn stated_refund(params: &Map<String, Value>) -> Result<Option<i64>, CallError> {
    match params.get("amount") {
        None => Ok(None),
        Some(amount) => match amount.as_i64() {
            Some(a) if a > 0 => Ok(Some(a)),
            _ => Err(CallError::Invalid(
                "refunds.create: `amount` must be a positive integer (smallest currency unit)"
                    .into(),
            )),
        },
    }
}

async fn refund_amount(
    service: &StripeClient,
    params: &Map<String, Value>,
) -> Result<i64, CallError> {
    if let Some(amount) = stated_refund(params)? {
        return Ok(amount);
    }
    let Some(charge) = params.get("charge").and_then(Value::as_str) else {
        return Err(CallError::Invalid(
            "refunds.create: give `charge` (and `amount` for a partial refund)".into(),
        ));
    };
    let op = stripe_operation("charges.retrieve").expect("known operation");
    let mut id = Map::new();
    id.insert("id".into(), Value::String(charge.to_string()));
    let body = send(service, op, &id, None).await.map_err(|e| e.error)?;
    let charge: Value = serde_json::from_str(&body)
        .map_err(|e| CallError::Failed(format!("charges.retrieve: {e}")))?;
    let amount = charge["amount"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    Ok((amount - refunded).max(0))
}

/// Sends one request, retrying 429, 5xx and transport failures with capped exponential
/// backoff and full jitter. Every attempt carries the same idempotency key.
async fn send(
    service: &StripeClient,
    op: &StripeOperation,
    params: &Map<String, Value>,
    idempotency_key: Option<&str>,
) -> Result<String, SendError> {
    let mut params = params.clone();
    // `id` names the object in the path; a create (`coupons.create`) sends it as a field.
    let id = if op.needs_id() {
        params.remove("id")
    } else {
        None
    };
    let id = match &id {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(CallError::Invalid(format!("`{}`: `id` must be a string", op.name)).into());
        }
    };
    let path = op
        .path_for(id)
        .map_err(|e| CallError::Invalid(e.to_string()))?;
    let strategy = match idempotency_key {
        Some(key) => RequestStrategy::Idempotent(
            stripe_client_core::IdempotencyKey::new(key)
                .map_err(|e| CallError::Invalid(format!("idempotency key: {e:?}")))?,
        ),
        None => RequestStrategy::Once,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let builder = RequestBuilder::new(op.method, path.clone());
        // No parameters, no body: an empty form would still be sent as one empty key.
        let builder = match op.method {
            _ if params.is_empty() => builder,
            StripeMethod::Post => builder.form(&params),
            _ => builder.query(&params),
        };
        // A write is an effect: the torture suite kills just before it leaves and just
        // after its answer came back.
        if op.write {
            crate::failpoint::site("stripe.send.before");
        }
        let result = builder
            .customize::<miniserde::json::Value>()
            .request_strategy(strategy.clone())
            .timeout(service.timeout)
            .send(&service.client)
            .await;
        if op.write {
            crate::failpoint::site("stripe.send.answered");
        }
        let error = match result {
            Ok(value) => return Ok(miniserde::json::to_string(&value)),
            Err(e) => e,
        };
        let retryable = match &error {
            stripe::StripeError::Stripe(_, status) => *status == 429 || *status >= 500,
            stripe::StripeError::ClientError(_) | stripe::StripeError::Timeout => true,
            _ => false,
        };
        if !retryable || attempt >= service.max_attempts {
            return Err(SendError {
                error: to_call_error(op, error),
                transient: retryable,
            });
        }
        let ceiling = BACKOFF_BASE
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(BACKOFF_CAP);
        let delay = ceiling.mul_f64(fastrand::f64());
        tracing::warn!(target: "runbook::stripe", operation = op.name, attempt, "retrying in {delay:?}: {error}");
        tokio::time::sleep(delay).await;
    }
}

/// Stripe's answer as the plugin sees it: an API error becomes `failed` with Stripe's
/// status, type, code and message as JSON (the contract's `StripeError`), so a plugin can
/// tell "missing" from "declined".
fn to_call_error(op: &StripeOperation, error: stripe::StripeError) -> CallError {
    match error {
        stripe::StripeError::Stripe(e, status) => CallError::Failed(
            json::stripe::StripeError {
                code: e.code.as_ref().map(|c| c.as_str().to_string()),
                message: e.message,
                param: e.param,
                status,
                kind: e.type_.as_str().to_string(),
            }
            .to_json(),
        ),
        stripe::StripeError::Timeout => CallError::Failed(format!("stripe {}: timed out", op.name)),
        other => CallError::Failed(format!("stripe {}: {other}", op.name)),
    }
}

/// What a dry run answers instead of making a write (the contract's placeholder: the
/// request echoed back, clearly marked, with an id no real object has).
fn placeholder(
    op: &StripeOperation,
    call: &Call,
    params: &Map<String, Value>,
    refund: Option<i64>,
) -> Value {
    json::stripe::dry_run_placeholder(params, op.object(), call.seq, refund)
}
