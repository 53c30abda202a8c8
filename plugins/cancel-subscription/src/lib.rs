//! "Cancel Subscription": cancel an organization's live subscription.
//!
//! At period end (the runbook's recommended way): `subscriptions.update` with
//! `cancel_at_period_end=true`, and the same flag in the database; the organization keeps
//! its tier until Stripe ends the subscription. Immediately: `subscriptions.cancel`, the
//! subscription `canceled` with `canceled_at`, and the organization moved to the tier its
//! remaining subscriptions give it (free without one: quota limits and entitlements with
//! it, see `billing::plan`); with `downgrade=false` the organization keeps its tier, for a
//! runbook that downgrades in a step of its own (`refund-and-downgrade`). Either way one
//! `subscription.canceled` audit record, and with
//! `notify` the `subscription-canceled` email to the billing email (best effort).

use billing::notify::{self, Notification};
use billing::plan::{self, TierChange};
use billing::subscription::{self, Subscription};
use billing::{after_stripe_write, clock, contacts};
use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, Timestamp, audit, db, params, register_plugin, stripe};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    #[serde(default = "yes")]
    at_period_end: bool,
    #[serde(default)]
    notify: bool,
    /// Immediately: also move the organization to the tier its remaining subscriptions
    /// give it. False leaves that to a later step.
    #[serde(default = "yes")]
    downgrade: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    organization_name: String,
    subscription_id: i64,
    stripe_subscription_id: String,
    plan_tier: String,
    /// `at_period_end` or `immediately`.
    mode: &'static str,
    /// When the subscription ends: the period end, or now.
    effective_at: Option<Timestamp>,
    /// Stripe was not called for real (a dry run).
    dry_run: bool,
    organization_tier: Option<TierChange>,
    notification: Option<Notification>,
}

struct CancelSubscription;

impl Procedure for CancelSubscription {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let org = contacts::organization(input.organization_id)?;
        let sub = subscription::current(org.id)?.ok_or_else(|| {
            Failure::precondition(format!(
                "organization {} has no active, past-due or trialing subscription",
                org.id
            ))
        })?;
        let now = clock::db_now()?;
        let (dry_run, effective_at, organization_tier) = if input.at_period_end {
            let done = cancel_at_period_end(&sub, &now)?;
            (done, sub.current_period_end.clone(), None)
        } else {
            let (done, tier) = cancel_now(&sub, &now, input.downgrade)?;
            (done, Some(now.clone()), tier)
        };
        let mode = if input.at_period_end {
            "at_period_end"
        } else {
            "immediately"
        };
        audit::record_json(
            "subscription.canceled",
            &format!("subscription:{}", sub.stripe_subscription_id),
            &json!({
                "organization_id": org.id,
                "mode": mode,
                "plan_tier": sub.plan_tier,
                "status_before": sub.status,
                "effective_at": effective_at,
                "organization_tier": organization_tier.as_ref().map(|t| json!({
                    "before": t.before, "after": t.after,
                })),
                "dry_run": dry_run,
            }),
        );

        // The tier the organization ends up on: a later step's to set without a downgrade.
        let new_tier = match &organization_tier {
            Some(t) => t.after.clone(),
            None if !input.at_period_end && !input.downgrade => {
                plan::tier_from_subscriptions(org.id)
                    .map_err(|f| {
                        after_stripe_write(&format!("{} canceled", sub.stripe_subscription_id), f)
                    })?
                    .0
            }
            None => org.plan_tier.clone(),
        };
        let notification = input.notify.then(|| {
            notify::send(
                std::slice::from_ref(&org.billing_email),
                "subscription-canceled",
                &json!({
                    "organization_id": org.id,
                    "organization_name": org.name,
                    "plan_tier": sub.plan_tier,
                    "new_tier": new_tier,
                    "stripe_subscription_id": sub.stripe_subscription_id,
                    "at_period_end": input.at_period_end,
                    "effective_date": effective_at.as_ref().map_or("", |t| t.date()),
                }),
            )
        });
        Ok(Output {
            organization_id: org.id,
            organization_name: org.name,
            subscription_id: sub.id,
            stripe_subscription_id: sub.stripe_subscription_id,
            plan_tier: sub.plan_tier,
            mode,
            effective_at,
            dry_run,
            organization_tier,
            notification,
        })
    }
}

/// Returns whether it was a dry run.
fn cancel_at_period_end(sub: &Subscription, now: &Timestamp) -> Result<bool, Failure> {
    let response = stripe::call(
        "subscriptions.update",
        &json!({ "id": sub.stripe_subscription_id, "cancel_at_period_end": true }),
    )?;
    // A past-due subscription's updated_at is when its grace period started: keep it.
    let written = if sub.status == "past_due" {
        db::execute(
            "UPDATE subscriptions SET cancel_at_period_end = TRUE WHERE id = $1",
            params![sub.id],
        )
    } else {
        db::execute(
            "UPDATE subscriptions SET cancel_at_period_end = TRUE, updated_at = $2 WHERE id = $1",
            params![sub.id, now],
        )
    };
    written.map_err(|e| {
        after_stripe_write(
            &format!("{} set to cancel at period end", sub.stripe_subscription_id),
            e.into(),
        )
    })?;
    Ok(stripe::is_dry_run(&response))
}

/// Returns whether it was a dry run, and the organization's move to another tier.
fn cancel_now(
    sub: &Subscription,
    now: &Timestamp,
    downgrade: bool,
) -> Result<(bool, Option<TierChange>), Failure> {
    let response = stripe::call(
        "subscriptions.cancel",
        &json!({ "id": sub.stripe_subscription_id }),
    )?;
    let record = || -> Result<Option<TierChange>, Failure> {
        subscription::mark_canceled(sub.id, now)?;
        if !downgrade {
            return Ok(None);
        }
        plan::follow_subscriptions(sub.organization_id, now)
    };
    let tier = record()
        .map_err(|f| after_stripe_write(&format!("{} canceled", sub.stripe_subscription_id), f))?;
    Ok((stripe::is_dry_run(&response), tier))
}

register_plugin!(CancelSubscription);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [r#"{}"#, r#"{"organization_id": 2, "immediately": true}"#] {
            let err = run_json::<CancelSubscription>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}: {err}");
        }
    }
}
