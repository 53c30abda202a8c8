//! "Manual Dunning Override": skip to day 7 and force the downgrade of one organization
//! now, after an approval.
//!
//! Acts on the organization's past-due subscriptions that were approved
//! (`subscription_ids`, from the `dunning-check` step the approvers saw; empty: all of
//! them). Each is canceled in Stripe (`subscriptions.cancel`) and marked `canceled`; its
//! dunning flow (started first if it had none, so the trail shows the whole flow) is
//! closed as `manual_override`; then the organization moves to the tier its remaining
//! subscriptions give it, free without one. Audited as `dunning.override` with the reason
//! and the approvers. An approved subscription that is no longer past due (paid in the
//! meantime) is left alone and reported; if none is left, a `precondition` failure.

use billing::dunning;
use billing::plan::{self, TierChange};
use billing::subscription::{self, Subscription};
use billing::{after_stripe_write, clock, contacts};
use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, Timestamp, audit, register_plugin, stripe};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    /// The subscriptions approved for the downgrade; empty for every past-due one.
    #[serde(default)]
    subscription_ids: Vec<i64>,
    /// Why (a ticket, the operator's words); required.
    reason: String,
    /// Who approved it (the approval step's `approvers`).
    #[serde(default)]
    approved_by: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    organization_name: String,
    downgraded: Vec<Downgraded>,
    /// Approved subscriptions that are no longer past due.
    skipped: Vec<Skipped>,
    organization_tier: Option<TierChange>,
    dry_run: bool,
}

#[derive(Serialize)]
struct Downgraded {
    subscription_id: i64,
    stripe_subscription_id: String,
    plan_tier: String,
    past_due_since: Timestamp,
    /// The dunning events closed as `manual_override`.
    events_closed: Vec<i64>,
}

#[derive(Serialize)]
struct Skipped {
    subscription_id: i64,
    status: String,
}

struct DunningOverride;

impl Procedure for DunningOverride {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(Failure::invalid_input(
                "reason is required: say why the dunning flow is overridden",
            ));
        }
        let org = contacts::organization(input.organization_id)?;
        let all = subscription::of_organization(org.id)?;
        let approved = |s: &Subscription| {
            input.subscription_ids.is_empty() || input.subscription_ids.contains(&s.id)
        };
        let targets: Vec<Subscription> = all
            .iter()
            .filter(|s| approved(s) && s.status == "past_due")
            .cloned()
            .collect();
        let skipped: Vec<Skipped> = all
            .iter()
            .filter(|s| !input.subscription_ids.is_empty() && approved(s) && s.status != "past_due")
            .map(|s| Skipped {
                subscription_id: s.id,
                status: s.status.clone(),
            })
            .collect();
        if targets.is_empty() {
            return Err(Failure::precondition(format!(
                "organization {} ({}) has no approved past-due subscription to downgrade",
                org.id, org.name
            )));
        }

        let now = clock::db_now()?;
        let mut downgraded = Vec::new();
        let mut dry_run = false;
        for sub in targets {
            let response = stripe::call(
                "subscriptions.cancel",
                &json!({ "id": sub.stripe_subscription_id }),
            )
            .map_err(|e| {
                let f = Failure::from(e);
                if downgraded.is_empty() {
                    f
                } else {
                    after_stripe_write("earlier subscriptions canceled", f)
                }
            })?;
            dry_run |= stripe::is_dry_run(&response);
            let done = record(&sub, &now).map_err(|f| {
                after_stripe_write(&format!("{} canceled", sub.stripe_subscription_id), f)
            })?;
            downgraded.push(done);
        }
        let organization_tier = plan::follow_subscriptions(org.id, &now)
            .map_err(|f| after_stripe_write("the approved subscriptions were canceled", f))?;
        for d in &downgraded {
            audit::record_json(
                "dunning.override",
                &format!("subscription:{}", d.stripe_subscription_id),
                &json!({
                    "organization_id": org.id,
                    "action": "downgrade",
                    "reason": reason,
                    "approved_by": input.approved_by,
                    "plan_tier": d.plan_tier,
                    "past_due_since": d.past_due_since,
                    "events_closed": d.events_closed,
                    "organization_tier": organization_tier.as_ref().map(|t| json!({
                        "before": t.before, "after": t.after,
                    })),
                    "dry_run": dry_run,
                }),
            );
        }
        Ok(Output {
            organization_id: org.id,
            organization_name: org.name,
            downgraded,
            skipped,
            organization_tier,
            dry_run,
        })
    }
}

/// The database's side of one forced downgrade.
fn record(sub: &Subscription, now: &Timestamp) -> Result<Downgraded, Failure> {
    let flow = dunning::start(dunning::flow(sub.clone())?)?;
    subscription::mark_canceled(sub.id, now)?;
    let closed = dunning::close(sub.id, dunning::MANUAL_OVERRIDE, now)?;
    Ok(Downgraded {
        subscription_id: sub.id,
        stripe_subscription_id: sub.stripe_subscription_id.clone(),
        plan_tier: sub.plan_tier.clone(),
        past_due_since: flow.past_due_since,
        events_closed: closed.iter().map(|e| e.id).collect(),
    })
}

register_plugin!(DunningOverride);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [
            r#"{"organization_id": 6}"#,
            r#"{"organization_id": 6, "reason": "  "}"#,
            r#"{"organization_id": 6, "reason": "x", "subscription_ids": "106"}"#,
        ] {
            let err = run_json::<DunningOverride>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}");
        }
    }
}
