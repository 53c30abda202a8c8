//! Step 1 of "Webhook Processing Failure": assess impact.
//!
//! An event has failed while it is unprocessed (`processed_at IS NULL`) or carries a
//! `processing_error`, exactly as in the source runbook's query. Reports the failed events
//! by type (count, oldest, newest), the totals over all logged events, and the failure
//! rate against the runbook's alert threshold ("Webhook failure rate > 5%"). Read-only.

use billing::webhooks::{self, ALERT_THRESHOLD, FAILED};
use runbook_sdk::{Failure, Procedure, Timestamp, Value, db, log, register_plugin};
use serde::{Deserialize, Serialize};

fn totals() -> String {
    format!(
        "SELECT {}, MIN(created_at) AS first_event, MAX(created_at) AS last_event \
         FROM subscription_events",
        webhooks::totals_columns()
    )
}

fn by_type() -> String {
    format!(
        "SELECT event_type, COUNT(*) AS failed, \
         COALESCE(SUM(CASE WHEN processing_error IS NOT NULL THEN 1 ELSE 0 END), 0) AS errored, \
         MIN(created_at) AS oldest, MAX(created_at) AS newest \
         FROM subscription_events WHERE {FAILED}"
    )
}

const ORDER: &str = "GROUP BY event_type ORDER BY failed DESC, event_type";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Only this event type; empty or null means all.
    #[serde(default)]
    event_type: Option<String>,
}

#[derive(Serialize)]
struct Impact {
    event_type_filter: Option<String>,
    total_events: i64,
    failed_events: i64,
    /// Failed with a recorded `processing_error`.
    errored_events: i64,
    /// Never processed and no error recorded (the handler never ran or died mid-way).
    unprocessed_events: i64,
    /// failed / total, 0..1.
    failure_rate: f64,
    alert_threshold: f64,
    above_alert_threshold: bool,
    first_event: Option<Timestamp>,
    last_event: Option<Timestamp>,
    by_event_type: Vec<TypeImpact>,
}

#[derive(Serialize)]
struct TypeImpact {
    event_type: String,
    failed: i64,
    errored: i64,
    unprocessed: i64,
    oldest: Timestamp,
    newest: Timestamp,
}

struct WebhookImpact;

impl Procedure for WebhookImpact {
    type Input = Input;
    type Output = Impact;

    fn run(input: Input) -> Result<Impact, Failure> {
        let filter = input.event_type.filter(|t| !t.trim().is_empty());
        let (totals_sql, by_type_sql, params) = match &filter {
            None => (totals(), format!("{} {ORDER}", by_type()), vec![]),
            Some(t) => (
                format!("{} WHERE event_type = $1", totals()),
                format!("{} AND event_type = $1 {ORDER}", by_type()),
                vec![Value::from(t)],
            ),
        };

        let totals = db::query(&totals_sql, &params)?;
        let totals = totals.one()?;
        let (total, failed): (i64, i64) = (totals.get("total")?, totals.get("failed")?);

        let mut by_event_type = Vec::new();
        for row in &db::query(&by_type_sql, &params)? {
            let (failed, errored): (i64, i64) = (row.get("failed")?, row.get("errored")?);
            by_event_type.push(TypeImpact {
                event_type: row.get("event_type")?,
                failed,
                errored,
                unprocessed: failed - errored,
                oldest: row.get("oldest")?,
                newest: row.get("newest")?,
            });
        }
        let errored: i64 = by_event_type.iter().map(|t| t.errored).sum();

        let failure_rate = webhooks::failure_rate(failed, total);
        log::log_with(
            log::Level::Info,
            "webhook impact assessed",
            &[
                ("failed", &failed),
                ("total", &total),
                ("failure_rate", &failure_rate),
            ],
        );
        Ok(Impact {
            event_type_filter: filter,
            total_events: total,
            failed_events: failed,
            errored_events: errored,
            unprocessed_events: failed - errored,
            failure_rate,
            alert_threshold: ALERT_THRESHOLD,
            above_alert_threshold: webhooks::above_alert_threshold(failure_rate),
            first_event: totals.get("first_event")?,
            last_event: totals.get("last_event")?,
            by_event_type,
        })
    }
}

register_plugin!(WebhookImpact);
