//! The webhook event log (`subscription_events`) as the "Webhook Processing Failure"
//! plugins read it: when an event counts as failed, the failure rate, and the source
//! runbook's thresholds. One definition, so the impact, replay, recheck and report steps
//! cannot disagree about which events failed or when to alert.

/// The source runbook's alert: "Webhook failure rate > 5%".
pub const ALERT_THRESHOLD: f64 = 0.05;

/// At half of all events failing or more the runbook's "webhook endpoint down (all
/// payments failing)" applies.
pub const ENDPOINT_DOWN: f64 = 0.5;

/// SQL condition on `subscription_events`: the event failed, i.e. it is unprocessed
/// (`processed_at IS NULL`) or carries a `processing_error`, exactly as in the source
/// runbook's query. Parenthesised, so it can be `AND`ed.
pub const FAILED: &str = "(processed_at IS NULL OR processing_error IS NOT NULL)";

/// [`FAILED`] for a row already read: `processed` is whether `processed_at` is set.
pub fn is_failed(processed: bool, processing_error: Option<&str>) -> bool {
    !processed || processing_error.is_some()
}

/// `SELECT` list of two columns over `subscription_events`: `total` events and how many
/// of them `failed` ([`FAILED`]).
pub fn totals_columns() -> String {
    format!("COUNT(*) AS total, COALESCE(SUM(CASE WHEN {FAILED} THEN 1 ELSE 0 END), 0) AS failed")
}

/// `failed / total`, 0..1 rounded to four places (what reports show); 0 with no events.
pub fn failure_rate(failed: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (failed as f64 / total as f64 * 10_000.0).round() / 10_000.0
    }
}

/// The rate is over [`ALERT_THRESHOLD`] (strictly: exactly 5% does not alert).
pub fn above_alert_threshold(failure_rate: f64) -> bool {
    failure_rate > ALERT_THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_means_unprocessed_or_errored() {
        assert!(is_failed(false, None), "never processed");
        assert!(
            is_failed(true, Some("signature mismatch")),
            "processed with an error"
        );
        assert!(is_failed(false, Some("timeout")));
        assert!(!is_failed(true, None));
    }

    #[test]
    fn totals_count_with_the_same_condition() {
        assert_eq!(
            totals_columns(),
            "COUNT(*) AS total, COALESCE(SUM(CASE WHEN (processed_at IS NULL OR \
             processing_error IS NOT NULL) THEN 1 ELSE 0 END), 0) AS failed"
        );
    }

    #[test]
    fn rates_and_threshold() {
        assert_eq!(failure_rate(0, 0), 0.0);
        assert_eq!(failure_rate(1, 3), 0.3333);
        assert_eq!(failure_rate(5, 100), 0.05);
        assert!(
            !above_alert_threshold(failure_rate(5, 100)),
            "5% is not over 5%"
        );
        assert!(above_alert_threshold(failure_rate(6, 100)));
        assert!(failure_rate(1, 2) >= ENDPOINT_DOWN);
    }
}
