//! Step 5 of "Webhook Processing Failure": monitor recovery.
//!
//! Re-reads the event log after `webhook-replay` and reports, of the events it replayed,
//! which the application has since processed (`recovered`) and which are still failed
//! (unprocessed or with a `processing_error`), and the failure rate over the whole log now
//! against the runbook's 5% alert threshold. An application that handles webhooks
//! asynchronously may not have caught up yet: run it again later. Read-only.

use std::collections::BTreeSet;

use runbook_sdk::{Failure, Procedure, Timestamp, Value, db, log, register_plugin};
use serde::{Deserialize, Serialize};

/// The source runbook's alert: "Webhook failure rate > 5%".
const ALERT_THRESHOLD: f64 = 0.05;

const TOTALS: &str = "SELECT COUNT(*) AS total, \
     COALESCE(SUM(CASE WHEN processed_at IS NULL OR processing_error IS NOT NULL \
                  THEN 1 ELSE 0 END), 0) AS failed \
     FROM subscription_events";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The events to check: `webhook-replay`'s `redelivered_event_ids`.
    stripe_event_ids: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    checked: usize,
    recovered: usize,
    still_failed: usize,
    /// Ids not found in the event log at all.
    not_in_log: Vec<String>,
    recovered_event_ids: Vec<String>,
    still_failed_events: Vec<StillFailed>,
    /// Over the whole event log, now.
    failed_events: i64,
    total_events: i64,
    failure_rate: f64,
    above_alert_threshold: bool,
    /// Every replayed event is processed and the rate is under the threshold.
    recovered_all: bool,
}

#[derive(Serialize)]
struct StillFailed {
    stripe_event_id: String,
    event_type: String,
    processed_at: Option<Timestamp>,
    processing_error: Option<String>,
    attempts: i64,
}

struct WebhookRecheck;

impl Procedure for WebhookRecheck {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let ids: BTreeSet<String> = input.stripe_event_ids.into_iter().collect();
        let (mut recovered_event_ids, mut still_failed_events, mut not_in_log) =
            (Vec::new(), Vec::new(), Vec::new());
        for id in &ids {
            let rows = db::query(
                "SELECT event_type, processed_at, processing_error, attempts \
                 FROM subscription_events WHERE stripe_event_id = $1",
                &[Value::from(id)],
            )?;
            let Some(row) = rows.first() else {
                not_in_log.push(id.clone());
                continue;
            };
            let processed_at: Option<Timestamp> = row.get("processed_at")?;
            let processing_error: Option<String> = row.get("processing_error")?;
            if processed_at.is_some() && processing_error.is_none() {
                recovered_event_ids.push(id.clone());
            } else {
                still_failed_events.push(StillFailed {
                    stripe_event_id: id.clone(),
                    event_type: row.get("event_type")?,
                    processed_at,
                    processing_error,
                    attempts: row.get("attempts")?,
                });
            }
        }

        let totals = db::query(TOTALS, &[])?;
        let totals = totals.one()?;
        let (total, failed): (i64, i64) = (totals.get("total")?, totals.get("failed")?);
        let failure_rate = if total == 0 {
            0.0
        } else {
            (failed as f64 / total as f64 * 10_000.0).round() / 10_000.0
        };
        log::log_with(
            log::Level::Info,
            "webhook recovery checked",
            &[
                ("recovered", &recovered_event_ids.len()),
                ("still_failed", &still_failed_events.len()),
                ("failure_rate", &failure_rate),
            ],
        );
        Ok(Output {
            checked: ids.len(),
            recovered: recovered_event_ids.len(),
            still_failed: still_failed_events.len(),
            recovered_all: still_failed_events.is_empty()
                && not_in_log.is_empty()
                && failure_rate <= ALERT_THRESHOLD,
            not_in_log,
            recovered_event_ids,
            still_failed_events,
            failed_events: failed,
            total_events: total,
            failure_rate,
            above_alert_threshold: failure_rate > ALERT_THRESHOLD,
        })
    }
}

register_plugin!(WebhookRecheck);
