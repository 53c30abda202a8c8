//! "Recover subscription (after successful payment)": end an organization's dunning once
//! Stripe has the payment.
//!
//! Takes the organization's past-due subscription (the newest, should there be several)
//! and retrieves it from Stripe (`subscriptions.retrieve`). Unless Stripe says `active` or
//! `trialing` it is a `precondition` failure and nothing changes: the payment has not
//! been recovered (past due, unpaid) or the subscription is gone (canceled: subscribe
//! again). Otherwise the row takes Stripe's status, tier, period end and cancel flag
//! (`billing::stripe_state`); each open invoice Stripe now says is paid is recorded paid
//! (`invoices.retrieve`); every pending dunning event of the subscription is closed as
//! `recovered`; and the organization is restored to the tier its subscriptions give it
//! (quota limits and entitlements with it). Audited as `dunning.recovered`.

use billing::invoice;
use billing::plan::{self, TierChange};
use billing::stripe_state;
use billing::{clock, contacts, dunning, subscription};
use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, Timestamp, audit, db, params, register_plugin, stripe};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    organization_name: String,
    subscription_id: i64,
    stripe_subscription_id: String,
    stripe_status: String,
    /// The subscription's row before and after.
    before: Row,
    after: Row,
    /// Open invoices Stripe says are paid, now recorded paid.
    invoices_paid: Vec<String>,
    /// Open invoices Stripe still has unpaid.
    invoices_open: Vec<String>,
    /// Dunning events closed as `recovered`.
    events_closed: Vec<i64>,
    organization_tier: Option<TierChange>,
}

#[derive(Serialize, Clone)]
struct Row {
    status: String,
    plan_tier: String,
    current_period_end: Option<Timestamp>,
    cancel_at_period_end: bool,
}

struct DunningRecover;

impl Procedure for DunningRecover {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let org = contacts::organization(input.organization_id)?;
        let sub = subscription::of_organization(org.id)?
            .into_iter()
            .rev()
            .find(|s| s.status == "past_due")
            .ok_or_else(|| {
                Failure::precondition(format!(
                    "organization {} ({}) has no past-due subscription to recover",
                    org.id, org.name
                ))
            })?;
        let object = stripe::call(
            "subscriptions.retrieve",
            &json!({ "id": sub.stripe_subscription_id }),
        )?;
        let state = stripe_state::read(&object);
        let status = match state.status {
            Some(s @ ("active" | "trialing")) => s,
            _ => {
                return Err(Failure::precondition(format!(
                    "Stripe says {} is {:?}: {}",
                    sub.stripe_subscription_id,
                    state.stripe_status,
                    if state.status == Some("canceled") {
                        "it cannot be recovered, only subscribed to again"
                    } else {
                        "the payment has not been recovered yet"
                    }
                )));
            }
        };

        // Every Stripe read before the first write.
        let mut paid = Vec::new();
        let mut still_open = Vec::new();
        for open in invoice::open_of_subscription(sub.id)? {
            let payment = invoice::stripe_payment(&stripe::call(
                "invoices.retrieve",
                &json!({ "id": open.stripe_invoice_id }),
            )?);
            if payment.paid {
                paid.push((open, payment));
            } else {
                still_open.push(open.stripe_invoice_id);
            }
        }

        let now = clock::db_now()?;
        let before = Row {
            status: sub.status.clone(),
            plan_tier: sub.plan_tier.clone(),
            current_period_end: sub.current_period_end.clone(),
            cancel_at_period_end: sub.cancel_at_period_end,
        };
        let after = Row {
            status: status.to_owned(),
            plan_tier: state
                .tier
                .map_or_else(|| sub.plan_tier.clone(), |(t, _)| t.to_owned()),
            current_period_end: state
                .current_period_end
                .clone()
                .or_else(|| sub.current_period_end.clone()),
            cancel_at_period_end: state.cancel_at_period_end,
        };
        db::execute(
            "UPDATE subscriptions SET status = $1, plan_tier = $2, current_period_end = $3, \
             cancel_at_period_end = $4, updated_at = $5 WHERE id = $6",
            params![
                &after.status,
                &after.plan_tier,
                after.current_period_end.clone(),
                after.cancel_at_period_end,
                &now,
                sub.id,
            ],
        )?;
        for (open, payment) in &paid {
            invoice::mark_paid(open, payment, &now)?;
        }
        let closed = dunning::close(sub.id, dunning::RECOVERED, &now)?;
        let organization_tier = plan::follow_subscriptions(org.id, &now)?;
        let invoices_paid: Vec<String> =
            paid.into_iter().map(|(i, _)| i.stripe_invoice_id).collect();
        let events_closed: Vec<i64> = closed.iter().map(|e| e.id).collect();
        audit::record_json(
            "dunning.recovered",
            &format!("subscription:{}", sub.stripe_subscription_id),
            &json!({
                "organization_id": org.id,
                "by": "payment",
                "stripe_status": state.stripe_status,
                "before": before,
                "after": after,
                "invoices_paid": invoices_paid,
                "invoices_open": still_open,
                "events_closed": events_closed,
                "organization_tier": organization_tier.as_ref().map(|t| json!({
                    "before": t.before, "after": t.after,
                })),
            }),
        );
        Ok(Output {
            organization_id: org.id,
            organization_name: org.name,
            subscription_id: sub.id,
            stripe_subscription_id: sub.stripe_subscription_id,
            stripe_status: state.stripe_status,
            before,
            after,
            invoices_paid,
            invoices_open: still_open,
            events_closed,
            organization_tier,
        })
    }
}

register_plugin!(DunningRecover);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [r#"{}"#, r#"{"organization_id": 5, "force": true}"#] {
            let err = run_json::<DunningRecover>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}");
        }
    }
}
