//! Step 5 of "Webhook Processing Failure": monitor recovery.
//!
//! Re-reads the event log after `webhook-replay` and reports, of the events it replayed,
//! which the application has since processed (`recovered`) and which are still failed
//! (unprocessed or with a `processing_error`), and the failure rate over the whole log now
//! against the runbook's 5% alert threshold. An application that handles webhooks
//! asynchronously may not have caught up yet: run it again later. Read-only.

use std::collections::BTreeSet;

use billing::webhooks;
use runbook_sdk::{Failure, Procedure, Timestamp, Value, db, log, register_plugin};
use serde::{Deserialize, Serialize};

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
            if !webhooks::is_failed(processed_at.is_some(), processing_error.as_deref()) {
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

        let totals_sql = format!(
            "SELECT {} FROM subscription_events",
            webhooks::totals_columns()
        );
        let totals = db::query(&totals_sql, &[])?;
        let totals = totals.one()?;
        let (total, failed): (i64, i64) = (totals.get("total")?, totals.get("failed")?);
        let failure_rate = webhooks::failure_rate(failed, total);
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
                && !webhooks::above_alert_threshold(failure_rate),
            not_in_log,
            recovered_event_ids,
            still_failed_events,
            failed_events: failed,
            total_events: total,
            failure_rate,
            above_alert_threshold: webhooks::above_alert_threshold(failure_rate),
        })
    }
}

register_plugin!(WebhookRecheck);
