//! Step 3 of "Webhook Processing Failure": the incident report.
//!
//! Works only from the outputs of `webhook-impact` and `webhook-root-cause` (passed in by
//! the runbook) and records the assessment in the audit log as `incident.assessed`.
//!
//! Severity: the source runbook rates a webhook processing failure High and alerts on a
//! failure rate above 5%. Below the threshold it is Medium; at half of all events or more
//! it is treated as "webhook endpoint down (all payments failing)", Critical.

use billing::webhooks::{self, ENDPOINT_DOWN};
use runbook_sdk::{Failure, Procedure, Timestamp, audit, register_plugin};
use serde::{Deserialize, Serialize};
/// Event ids spelled out in the replay step; the full list is in the root-cause output.
const REPLAY_LISTED: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    impact: Impact,
    #[serde(default)]
    root_cause: Option<RootCause>,
}

// The parts of the earlier outputs the report uses; other fields are ignored.
#[derive(Deserialize, Serialize)]
struct Impact {
    total_events: i64,
    failed_events: i64,
    failure_rate: f64,
    #[serde(default)]
    by_event_type: Vec<TypeImpact>,
}

#[derive(Deserialize, Serialize)]
struct TypeImpact {
    event_type: String,
    failed: i64,
    oldest: Timestamp,
    newest: Timestamp,
}

#[derive(Deserialize, Serialize)]
struct RootCause {
    dominant_cause: Option<String>,
    #[serde(default)]
    summary: String,
    causes: Vec<CauseItem>,
    #[serde(default, skip_serializing)]
    replay: Option<Replay>,
}

#[derive(Deserialize, Serialize)]
struct CauseItem {
    cause: String,
    count: usize,
    recommended_action: String,
}

#[derive(Deserialize)]
struct Replay {
    total: usize,
    stripe_event_ids: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    title: &'static str,
    status: &'static str,
    severity: &'static str,
    severity_reason: String,
    summary: String,
    first_failure: Option<Timestamp>,
    last_failure: Option<Timestamp>,
    impact: Impact,
    root_cause: Option<RootCause>,
    next_steps: Vec<String>,
}

struct IncidentReport;

impl Procedure for IncidentReport {
    type Input = Input;
    type Output = Report;

    fn run(Input { impact, root_cause }: Input) -> Result<Report, Failure> {
        if impact.failed_events < 0 || impact.failed_events > impact.total_events {
            return Err(Failure::invalid_input("impact: failed_events out of range"));
        }
        let (severity, severity_reason) = severity(&impact);
        let first_failure = impact.by_event_type.iter().map(|t| t.oldest.clone()).min();
        let last_failure = impact.by_event_type.iter().map(|t| t.newest.clone()).max();
        let dominant = root_cause.as_ref().and_then(|r| r.dominant_cause.clone());

        let mut summary = format!(
            "{} of {} webhook events failed ({:.1}%).",
            impact.failed_events,
            impact.total_events,
            impact.failure_rate * 100.0
        );
        if let (Some(first), Some(last)) = (&first_failure, &last_failure) {
            summary = format!("{summary} Failures from {first} to {last}.");
        }
        if let Some(rc) = root_cause.as_ref().filter(|r| !r.summary.is_empty()) {
            summary = format!("{summary} {}", rc.summary);
        }

        let report = Report {
            title: "Webhook processing failure",
            status: if impact.failed_events == 0 {
                "healthy"
            } else {
                "incident"
            },
            severity,
            next_steps: next_steps(
                &impact,
                root_cause.as_ref(),
                severity,
                first_failure.as_ref(),
            ),
            severity_reason,
            summary,
            first_failure,
            last_failure,
            impact,
            root_cause,
        };
        audit::record_json(
            "incident.assessed",
            "webhooks:stripe",
            &serde_json::json!({
                "incident": "webhook-processing-failure",
                "severity": report.severity,
                "failed_events": report.impact.failed_events,
                "total_events": report.impact.total_events,
                "failure_rate": report.impact.failure_rate,
                "dominant_cause": dominant,
            }),
        );
        Ok(report)
    }
}

fn severity(impact: &Impact) -> (&'static str, String) {
    let pct = impact.failure_rate * 100.0;
    if impact.failed_events == 0 {
        ("none", "no failed webhook events".into())
    } else if impact.failure_rate >= ENDPOINT_DOWN {
        (
            "critical",
            format!("{pct:.1}% of webhook events failing: treat as webhook endpoint down"),
        )
    } else if webhooks::above_alert_threshold(impact.failure_rate) {
        (
            "high",
            format!("failure rate {pct:.1}% is above the 5% alert threshold"),
        )
    } else {
        (
            "medium",
            format!("failure rate {pct:.1}% is below the 5% alert threshold"),
        )
    }
}

fn next_steps(
    impact: &Impact,
    root_cause: Option<&RootCause>,
    severity: &str,
    first_failure: Option<&Timestamp>,
) -> Vec<String> {
    if impact.failed_events == 0 {
        return vec!["Nothing to do: no failed webhook events.".into()];
    }
    let mut steps = Vec::new();
    match root_cause {
        Some(rc) => steps.extend(rc.causes.iter().map(|c| {
            format!(
                "Fix the {} failures ({} events): {}",
                c.cause, c.count, c.recommended_action
            )
        })),
        None => steps.push("Identify the root cause: the root-cause step did not run.".into()),
    }
    let replay = root_cause.and_then(|rc| rc.replay.as_ref());
    let (total, ids) = match replay {
        Some(r) => (r.total, r.stripe_event_ids.as_slice()),
        None => (impact.failed_events as usize, &[][..]),
    };
    let mut listed = ids
        .iter()
        .take(REPLAY_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if total > REPLAY_LISTED && !listed.is_empty() {
        listed.push_str(", ...");
    }
    steps.push(format!(
        "Replay the {total} failed events from Stripe, oldest first, once the cause is fixed \
         (a replay step needs the stripe capability){}{listed}",
        if listed.is_empty() { "." } else { ": " }
    ));
    steps.push("Monitor recovery: re-run this runbook until the failure rate is below 5%.".into());
    if severity == "high" || severity == "critical" {
        let since = first_failure
            .map(|t| format!(" since {t}"))
            .unwrap_or_default();
        steps.push(format!(
            "Update the status page: subscription and payment changes are delayed{since}."
        ));
    }
    steps
}

register_plugin!(IncidentReport);

#[cfg(test)]
mod tests {
    use super::*;

    fn impact(failed: i64, total: i64) -> Impact {
        Impact {
            total_events: total,
            failed_events: failed,
            failure_rate: failed as f64 / total as f64,
            by_event_type: vec![],
        }
    }

    #[test]
    fn severity_follows_the_alert_threshold() {
        assert_eq!(severity(&impact(0, 40)).0, "none");
        assert_eq!(severity(&impact(1, 40)).0, "medium");
        assert_eq!(severity(&impact(14, 40)).0, "high");
        assert_eq!(severity(&impact(20, 40)).0, "critical");
    }

    #[test]
    fn next_steps_fix_then_replay_then_monitor() {
        let rc = RootCause {
            dominant_cause: Some("signature".into()),
            summary: String::new(),
            causes: vec![CauseItem {
                cause: "signature".into(),
                count: 2,
                recommended_action: "Check WEBHOOK_SECRET.".into(),
            }],
            replay: Some(Replay {
                total: 2,
                stripe_event_ids: vec!["evt_1".into(), "evt_2".into()],
            }),
        };
        let steps = next_steps(&impact(2, 10), Some(&rc), "high", None);
        assert_eq!(
            steps[0],
            "Fix the signature failures (2 events): Check WEBHOOK_SECRET."
        );
        assert!(
            steps[1].starts_with("Replay the 2 failed events"),
            "{}",
            steps[1]
        );
        assert!(steps[1].ends_with(": evt_1, evt_2"), "{}", steps[1]);
        assert!(steps[1].contains("stripe capability"));
        assert!(steps[2].starts_with("Monitor recovery"));
        assert!(steps[3].starts_with("Update the status page"));
    }

    #[test]
    fn inputs_are_the_earlier_outputs() {
        let input: Input = serde_json::from_value(serde_json::json!({
            "impact": {"total_events": 40, "failed_events": 14, "failure_rate": 0.35,
                       "errored_events": 12, "by_event_type": [{"event_type": "invoice.paid",
                       "failed": 4, "errored": 3, "oldest": "2026-11-21T14:11:10Z",
                       "newest": "2026-11-21 16:26:19+00:00"}]},
            "root_cause": {"dominant_cause": "signature", "failed_events": 14, "causes": [],
                           "replay": {"total": 14, "truncated": false, "stripe_event_ids": []}}
        }))
        .unwrap();
        assert_eq!(
            input.impact.by_event_type[0].newest.as_str(),
            "2026-11-21T16:26:19Z"
        );
        assert!(input.root_cause.is_some());
    }
}
