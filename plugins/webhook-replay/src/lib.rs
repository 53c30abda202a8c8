//! Step 4 of "Webhook Processing Failure": replay failed events ("stripe events resend",
//! "Resend Event" in the dashboard).
//!
//! Selects the failed events of the event log (unprocessed or with a `processing_error`,
//! as `webhook-impact` counts them), oldest first so subscription state transitions replay
//! in order. For each it fetches the event from Stripe (`events.retrieve`) and delivers
//! Stripe's JSON, unchanged, to the application's webhook endpoint, which the host signs.
//! A 2xx answer is `redelivered` (audited as `webhook.redelivered` on `event:<id>`); any
//! other answer is `rejected`. An event Stripe does not know is `missing_in_stripe`: an
//! outcome to report, not a failure of the step. In a dry run nothing is delivered
//! (`not_delivered`).
//!
//! Writes nothing to the database: marking an event processed is the application's job
//! when it handles the redelivery (`webhook-recheck` reads the result). If the host stops
//! the replay midway (a grant denies a call), the events not tried are listed as
//! `not_attempted`; the step fails only if nothing was delivered yet.

use billing::webhooks;
use runbook_sdk::serde_json::json;
use runbook_sdk::{
    CallError, Failure, Procedure, Value, audit, db, log, register_plugin, stripe, webhook,
};
use serde::{Deserialize, Serialize};

/// The failed events ([`webhooks::FAILED`]); the caller adds filters and the order.
fn failed_sql() -> String {
    format!(
        "SELECT stripe_event_id, event_type, processing_error, attempts FROM subscription_events WHERE {}",
        webhooks::FAILED
    )
}

/// Characters of an endpoint's answer kept in the output.
const BODY_PREVIEW: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Only this event type; empty or null means all.
    #[serde(default)]
    event_type: Option<String>,
    /// The webhook endpoint (a name from the host's configuration) to deliver to.
    #[serde(default = "default_endpoint")]
    endpoint: String,
    /// At most this many events, oldest first.
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_endpoint() -> String {
    "app".into()
}

fn default_limit() -> i64 {
    100
}

#[derive(Serialize)]
struct Output {
    endpoint: String,
    event_type_filter: Option<String>,
    /// Failed events selected for replay.
    selected: usize,
    /// More failed events exist than `limit` allowed.
    more_failed_events: bool,
    redelivered: usize,
    rejected: usize,
    missing_in_stripe: usize,
    /// Stripe or the delivery failed for another reason.
    errors: usize,
    /// Fetched but not sent (a dry run).
    not_delivered: usize,
    not_attempted: usize,
    /// Why the replay stopped early, if it did.
    stopped: Option<String>,
    /// The events the endpoint accepted, for `webhook-recheck`.
    redelivered_event_ids: Vec<String>,
    results: Vec<EventResult>,
}

#[derive(Serialize)]
struct EventResult {
    stripe_event_id: String,
    event_type: String,
    previous_error: Option<String>,
    /// `redelivered`, `rejected`, `missing_in_stripe`, `stripe_error`, `delivery_error`,
    /// `not_delivered` (the host did not send it: a dry run), `not_attempted`.
    outcome: &'static str,
    http_status: Option<u16>,
    detail: Option<String>,
}

/// A failed event as [`failed_sql`] selects it.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "stripe_event_id")]
    id: String,
    event_type: String,
    #[serde(rename = "processing_error")]
    error: Option<String>,
    attempts: i64,
}

struct WebhookReplay;

impl Procedure for WebhookReplay {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        if !(1..=1000).contains(&input.limit) {
            return Err(Failure::invalid_input("limit must be between 1 and 1000"));
        }
        let endpoint = input.endpoint.trim().to_owned();
        if endpoint.is_empty() {
            return Err(Failure::invalid_input(
                "endpoint must name a webhook endpoint",
            ));
        }
        let filter = input.event_type.filter(|t| !t.trim().is_empty());
        let mut events = failed_events(filter.as_deref(), input.limit + 1)?;
        let more_failed_events = events.len() as i64 > input.limit;
        events.truncate(input.limit as usize);

        let mut results: Vec<EventResult> = Vec::with_capacity(events.len());
        let mut stopped = None;
        for event in &events {
            if stopped.is_some() {
                results.push(result(event, "not_attempted", None, None));
                continue;
            }
            match replay(event, &endpoint) {
                Ok(r) => results.push(r),
                // Nothing reached the endpoint yet: failing the step loses nothing.
                Err(e) if !results.iter().any(|r| r.http_status.is_some()) => {
                    return Err(e.into());
                }
                Err(e) => {
                    log::warn(format!("replay stopped: {e}"));
                    stopped = Some(e.to_string());
                    results.push(result(event, "not_attempted", None, None));
                }
            }
        }

        let count = |outcome: &str| results.iter().filter(|r| r.outcome == outcome).count();
        let output = Output {
            endpoint,
            event_type_filter: filter,
            selected: events.len(),
            more_failed_events,
            redelivered: count("redelivered"),
            rejected: count("rejected"),
            missing_in_stripe: count("missing_in_stripe"),
            errors: count("stripe_error") + count("delivery_error"),
            not_delivered: count("not_delivered"),
            not_attempted: count("not_attempted"),
            stopped,
            redelivered_event_ids: results
                .iter()
                .filter(|r| r.outcome == "redelivered")
                .map(|r| r.stripe_event_id.clone())
                .collect(),
            results,
        };
        log::log_with(
            log::Level::Info,
            "webhook events replayed",
            &[
                ("selected", &output.selected),
                ("redelivered", &output.redelivered),
                ("rejected", &output.rejected),
                ("missing_in_stripe", &output.missing_in_stripe),
            ],
        );
        Ok(output)
    }
}

fn failed_events(event_type: Option<&str>, limit: i64) -> Result<Vec<Event>, Failure> {
    let rows = match event_type {
        None => db::query(
            &format!("{} ORDER BY created_at, id LIMIT $1", failed_sql()),
            &[Value::from(limit)],
        )?,
        Some(t) => db::query(
            &format!(
                "{} AND event_type = $1 ORDER BY created_at, id LIMIT $2",
                failed_sql()
            ),
            &[Value::from(t), Value::from(limit)],
        )?,
    };
    Ok(rows.decode()?)
}

/// Fetch one event and deliver it. `Err` only when the host refuses to go on (a denial,
/// an unavailable capability, a malformed call): that stops the replay.
fn replay(event: &Event, endpoint: &str) -> Result<EventResult, CallError> {
    let payload = match stripe::call_raw("events.retrieve", &json!({ "id": event.id })) {
        Ok(text) => text,
        Err(e) if stripe::is_not_found(&e) => {
            return Ok(result(event, "missing_in_stripe", None, None));
        }
        Err(CallError::Failed(m)) => return Ok(result(event, "stripe_error", None, Some(m))),
        Err(e) => return Err(e),
    };
    let delivery = match webhook::deliver(endpoint, &payload) {
        Ok(d) => d,
        Err(CallError::Failed(m)) => return Ok(result(event, "delivery_error", None, Some(m))),
        Err(e) => return Err(e),
    };
    // Status 0: the host did not deliver (a dry run says so in the body).
    if delivery.status == 0 {
        return Ok(result(event, "not_delivered", None, Some(delivery.body)));
    }
    if !delivery.is_success() {
        let body: String = delivery.body.chars().take(BODY_PREVIEW).collect();
        return Ok(result(event, "rejected", Some(delivery.status), Some(body)));
    }
    audit::record_json(
        "webhook.redelivered",
        &format!("event:{}", event.id),
        &json!({
            "event_type": event.event_type,
            "endpoint": endpoint,
            "http_status": delivery.status,
            "previous_error": event.error,
            "previous_attempts": event.attempts,
        }),
    );
    Ok(result(event, "redelivered", Some(delivery.status), None))
}

fn result(
    event: &Event,
    outcome: &'static str,
    http_status: Option<u16>,
    detail: Option<String>,
) -> EventResult {
    EventResult {
        stripe_event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        previous_error: event.error.clone(),
        outcome,
        http_status,
        detail,
    }
}

register_plugin!(WebhookReplay);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [
            r#"{"limit": 0}"#,
            r#"{"limit": 1001}"#,
            r#"{"endpoint": " "}"#,
            r#"{"event_typo": "invoice.paid"}"#,
        ] {
            let err = run_json::<WebhookReplay>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}: {err}");
        }
    }
}
