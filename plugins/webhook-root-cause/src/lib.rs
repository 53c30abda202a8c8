//! Step 2 of "Webhook Processing Failure": identify the root cause.
//!
//! Reads the `processing_error` of every failed event, classifies each as a signature,
//! database, application or unknown failure ([`classify`]), and reports per cause the
//! count, the event types hit, samples, and the source runbook's recommended action. The
//! dominant cause is the one with most events. Also lists the events to replay once the
//! cause is fixed. Read-only.

mod classify;

use std::collections::BTreeMap;

use billing::webhooks;
use classify::Cause;
use runbook_sdk::{Failure, Procedure, Timestamp, Value, db, register_plugin};
use serde::{Deserialize, Serialize};

/// The failed events ([`webhooks::FAILED`]); the caller adds filters and the order.
fn failed_sql() -> String {
    format!(
        "SELECT stripe_event_id, event_type, processing_error, created_at FROM subscription_events WHERE {}",
        webhooks::FAILED
    )
}

/// Replay lists longer than this are cut (the count stays exact).
const MAX_REPLAY: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Only this event type; empty or null means all.
    #[serde(default)]
    event_type: Option<String>,
    /// Sample event ids and distinct error texts per cause.
    #[serde(default = "default_samples")]
    samples: usize,
}

fn default_samples() -> usize {
    3
}

#[derive(Serialize)]
struct RootCause {
    event_type_filter: Option<String>,
    failed_events: usize,
    dominant_cause: Option<Cause>,
    summary: String,
    /// Most events first.
    causes: Vec<CauseReport>,
    replay: Replay,
}

#[derive(Serialize)]
struct CauseReport {
    cause: Cause,
    count: usize,
    /// Of all failed events, 0..1.
    share: f64,
    event_types: BTreeMap<String, usize>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    sample_event_ids: Vec<String>,
    sample_errors: Vec<String>,
    recommended_action: &'static str,
}

#[derive(Serialize)]
struct Replay {
    total: usize,
    truncated: bool,
    /// Oldest first: replaying in order keeps subscription state transitions in order.
    stripe_event_ids: Vec<String>,
}

struct WebhookRootCause;

impl Procedure for WebhookRootCause {
    type Input = Input;
    type Output = RootCause;

    fn run(input: Input) -> Result<RootCause, Failure> {
        let filter = input.event_type.filter(|t| !t.trim().is_empty());
        let rows = match &filter {
            None => db::query(&format!("{} ORDER BY created_at, id", failed_sql()), &[])?,
            Some(t) => db::query(
                &format!(
                    "{} AND event_type = $1 ORDER BY created_at, id",
                    failed_sql()
                ),
                &[Value::from(t)],
            )?,
        };

        let mut causes: BTreeMap<Cause, CauseReport> = BTreeMap::new();
        let mut replay = Vec::new();
        for row in &rows {
            let id: String = row.get("stripe_event_id")?;
            let error: Option<String> = row.get("processing_error")?;
            let created: Timestamp = row.get("created_at")?;
            let cause = Cause::of(error.as_deref());
            let report = causes.entry(cause).or_insert_with(|| CauseReport {
                cause,
                count: 0,
                share: 0.0,
                event_types: BTreeMap::new(),
                first_seen: created.clone(),
                last_seen: created.clone(),
                sample_event_ids: vec![],
                sample_errors: vec![],
                recommended_action: cause.recommended_action(),
            });
            report.count += 1;
            *report
                .event_types
                .entry(row.get("event_type")?)
                .or_default() += 1;
            report.last_seen = report.last_seen.clone().max(created);
            if report.sample_event_ids.len() < input.samples {
                report.sample_event_ids.push(id.clone());
            }
            let error = error.unwrap_or_else(|| "(no error recorded; never processed)".into());
            if report.sample_errors.len() < input.samples && !report.sample_errors.contains(&error)
            {
                report.sample_errors.push(error);
            }
            replay.push(id);
        }

        let failed = replay.len();
        let mut causes: Vec<CauseReport> = causes.into_values().collect();
        // Stable sort on a BTreeMap's order: ties go to the cause listed first in the runbook.
        causes.sort_by_key(|c| std::cmp::Reverse(c.count));
        for c in &mut causes {
            c.share = (c.count as f64 / failed as f64 * 10_000.0).round() / 10_000.0;
        }
        let dominant = causes.first().map(|c| c.cause);
        Ok(RootCause {
            event_type_filter: filter,
            failed_events: failed,
            dominant_cause: dominant,
            summary: summary(&causes, failed),
            causes,
            replay: Replay {
                total: failed,
                truncated: failed > MAX_REPLAY,
                stripe_event_ids: replay.into_iter().take(MAX_REPLAY).collect(),
            },
        })
    }
}

fn summary(causes: &[CauseReport], failed: usize) -> String {
    let Some(top) = causes.first() else {
        return "No failed webhook events.".into();
    };
    let what = match top.cause {
        Cause::Signature => "failed signature verification",
        Cause::Database => "failed on database errors",
        Cause::Application => "failed on application errors",
        Cause::Unknown => "failed without a recognised error",
    };
    format!(
        "{} of {failed} failed events ({:.0}%) {what}; dominant cause: {}.",
        top.count,
        top.share * 100.0,
        top.cause.name()
    )
}

register_plugin!(WebhookRootCause);
