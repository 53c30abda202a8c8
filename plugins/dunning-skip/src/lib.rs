//! "Disable Dunning (Emergency)": skip pending dunning steps, as the seed's SQL does
//! (`completed = true, completed_at = now, completion_reason = 'emergency_skip'`), but
//! only the events the approvers saw.
//!
//! `event_ids` comes from the `dunning-check` step before the approval; an event
//! completed in the meantime is left as it is and reported. Nothing in Stripe or the
//! subscriptions changes: past-due subscriptions stay past due, their flows closed (the
//! dunning runbook starts no new flow until a subscription is past due again). Audited
//! as one `dunning.emergency_skip` record with the events, the reason and the approvers,
//! the trail the seed's "Dunning process audit trail" asks for.

use billing::{clock, dunning};
use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, Timestamp, audit, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The pending events approved for skipping.
    event_ids: Vec<i64>,
    /// Why (the incident, the ticket); required.
    reason: String,
    #[serde(default)]
    approved_by: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    skipped_at: Timestamp,
    skipped: usize,
    skipped_event_ids: Vec<i64>,
    /// Approved events no longer pending (completed in the meantime, or unknown).
    not_pending: Vec<i64>,
}

struct DunningSkip;

impl Procedure for DunningSkip {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(Failure::invalid_input(
                "reason is required: say why dunning is skipped",
            ));
        }
        if input.event_ids.is_empty() {
            return Err(Failure::precondition(
                "no pending dunning events were approved",
            ));
        }
        let now = clock::db_now()?;
        let (mut skipped, mut already) = (Vec::new(), Vec::new());
        for id in &input.event_ids {
            if dunning::complete(*id, dunning::EMERGENCY_SKIP, &now)? {
                skipped.push(*id);
            } else {
                already.push(*id);
            }
        }
        audit::record_json(
            "dunning.emergency_skip",
            "dunning_events",
            &json!({
                "reason": reason,
                "approved_by": input.approved_by,
                "skipped_event_ids": skipped,
                "not_pending": already,
                "completion_reason": dunning::EMERGENCY_SKIP,
            }),
        );
        Ok(Output {
            skipped_at: now,
            skipped: skipped.len(),
            skipped_event_ids: skipped,
            not_pending: already,
        })
    }
}

register_plugin!(DunningSkip);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        let err = run_json::<DunningSkip>(r#"{"event_ids": [3], "reason": ""}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
        let err =
            run_json::<DunningSkip>(r#"{"event_ids": [], "reason": "incident"}"#).unwrap_err();
        assert_eq!(err.code, "precondition");
        let err = run_json::<DunningSkip>(r#"{"reason": "incident"}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
    }
}
