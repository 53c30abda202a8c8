//! Step 2 of "Process Grace Period Expirations": cancel subscriptions past their grace
//! period.
//!
//! Takes the past-due subscriptions whose grace period has expired at `as_of` (default:
//! the database's clock; see `billing::grace`: 7 days from `updated_at`, 14 for
//! Enterprise). For each: `subscriptions.cancel` in Stripe; in the database the
//! subscription `canceled`, its pending dunning `downgrade` step completed, and the
//! organization moved to the tier its remaining subscriptions give it, free without one
//! (quota limits and entitlements with it); a `subscription.canceled` audit record (reason
//! `grace_period_expired`); with `notify`, the `grace-period-expired` email to the owners
//! and admins (or the billing email), best effort.
//!
//! One subscription Stripe refuses to cancel is reported `failed` and the others go on.
//! If the host refuses a call (a grant's `max_writes`, say) the rest are `not_attempted`;
//! the step fails only when nothing was canceled yet, so the database never loses the
//! record of a cancellation Stripe made.

use billing::grace::{self, PastDue};
use billing::notify::{self, Notification};
use billing::plan::{self, TierChange};
use billing::subscription;
use billing::{after_stripe_write, clock, contacts};
use runbook_sdk::serde_json::json;
use runbook_sdk::{
    CallError, Failure, Procedure, Timestamp, audit, db, log, params, register_plugin, stripe,
};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The instant to judge by; empty or null for the database's clock.
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default = "yes")]
    notify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
struct Output {
    as_of: Timestamp,
    past_due: usize,
    expired: usize,
    canceled: usize,
    failed: usize,
    not_attempted: usize,
    /// Why the run stopped early, if it did.
    stopped: Option<String>,
    results: Vec<Expiration>,
}

#[derive(Serialize)]
struct Expiration {
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    organization_name: String,
    plan_tier: String,
    past_due_since: Timestamp,
    grace_days: i64,
    grace_ends_at: Timestamp,
    /// `canceled`, `failed` or `not_attempted`.
    outcome: &'static str,
    error: Option<String>,
    dry_run: bool,
    organization_tier: Option<TierChange>,
    dunning_steps_completed: u64,
    notification: Option<Notification>,
}

struct GracePeriodExpirations;

impl Procedure for GracePeriodExpirations {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let as_of = clock::as_of(input.as_of.as_deref())?;
        let now = clock::db_now()?;
        let all = grace::past_due(&as_of)?;
        let past_due = all.len();
        // Every read before the first write to Stripe.
        let mut expired = Vec::new();
        for p in all.into_iter().filter(|p| p.expired) {
            let org = contacts::organization(p.subscription.organization_id)?;
            let to = contacts::plan_recipients(&org)?;
            expired.push((p, org, to));
        }

        let mut results = Vec::new();
        let mut canceled: Vec<String> = Vec::new();
        let mut stopped = None;
        for (p, org, to) in &expired {
            let mut result = Expiration::new(p, &org.name);
            if stopped.is_some() {
                results.push(result);
                continue;
            }
            let sub_id = &p.subscription.stripe_subscription_id;
            match stripe::call("subscriptions.cancel", &json!({ "id": sub_id })) {
                Ok(response) => result.dry_run = stripe::is_dry_run(&response),
                Err(e @ CallError::Failed(_)) => {
                    result.outcome = "failed";
                    result.error =
                        Some(stripe::error_of(&e).map_or_else(|| e.to_string(), |s| s.to_string()));
                    results.push(result);
                    continue;
                }
                Err(e) if canceled.is_empty() => return Err(e.into()),
                Err(e) => {
                    log::warn(format!("grace period expirations stopped: {e}"));
                    stopped = Some(e.to_string());
                    results.push(result);
                    continue;
                }
            }
            canceled.push(sub_id.clone());
            result.outcome = "canceled";
            let (dunning, tier) = record(p, &now)
                .map_err(|f| after_stripe_write(&format!("{} canceled", canceled.join(", ")), f))?;
            result.dunning_steps_completed = dunning;
            audit::record_json(
                "subscription.canceled",
                &format!("subscription:{sub_id}"),
                &json!({
                    "organization_id": org.id,
                    "reason": "grace_period_expired",
                    "plan_tier": p.subscription.plan_tier,
                    "past_due_since": p.past_due_since,
                    "grace_days": p.grace_days,
                    "grace_ends_at": p.grace_ends_at,
                    "as_of": as_of,
                    "organization_tier": tier.as_ref().map(|t| json!({
                        "before": t.before, "after": t.after,
                    })),
                    "dry_run": result.dry_run,
                }),
            );
            if input.notify {
                result.notification = Some(notify::send(
                    to,
                    "grace-period-expired",
                    &json!({
                        "organization_id": org.id,
                        "organization_name": org.name,
                        "plan_tier": p.subscription.plan_tier,
                        "new_tier": tier.as_ref().map_or(&org.plan_tier, |t| &t.after),
                        "stripe_subscription_id": sub_id,
                        "grace_days": p.grace_days,
                        "past_due_since": p.past_due_since.date(),
                        "grace_ended_on": p.grace_ends_at.date(),
                    }),
                ));
            }
            result.organization_tier = tier;
            results.push(result);
        }

        let count = |outcome: &str| results.iter().filter(|r| r.outcome == outcome).count();
        log::log_with(
            log::Level::Info,
            "grace period expirations processed",
            &[
                ("expired", &results.len()),
                ("canceled", &count("canceled")),
                ("failed", &count("failed")),
            ],
        );
        Ok(Output {
            as_of,
            past_due,
            expired: results.len(),
            canceled: count("canceled"),
            failed: count("failed"),
            not_attempted: count("not_attempted"),
            stopped,
            results,
        })
    }
}

impl Expiration {
    fn new(p: &PastDue, organization_name: &str) -> Expiration {
        Expiration {
            subscription_id: p.subscription.id,
            stripe_subscription_id: p.subscription.stripe_subscription_id.clone(),
            organization_id: p.subscription.organization_id,
            organization_name: organization_name.to_owned(),
            plan_tier: p.subscription.plan_tier.clone(),
            past_due_since: p.past_due_since.clone(),
            grace_days: p.grace_days,
            grace_ends_at: p.grace_ends_at.clone(),
            outcome: "not_attempted",
            error: None,
            dry_run: false,
            organization_tier: None,
            dunning_steps_completed: 0,
            notification: None,
        }
    }
}

/// The database's side of one cancellation: the subscription, its dunning flow's pending
/// downgrade step, the organization's tier.
fn record(p: &PastDue, now: &Timestamp) -> Result<(u64, Option<TierChange>), Failure> {
    subscription::mark_canceled(p.subscription.id, now)?;
    let dunning = db::execute(
        "UPDATE dunning_events SET completed = TRUE, completed_at = $1, completion_reason = 'done' \
         WHERE subscription_id = $2 AND step = 'downgrade' AND completed = FALSE",
        params![now, p.subscription.id],
    )?;
    let tier = plan::follow_subscriptions(p.subscription.organization_id, now)?;
    Ok((dunning, tier))
}

register_plugin!(GracePeriodExpirations);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_as_of_fails_before_any_call() {
        let err = run_json::<GracePeriodExpirations>(r#"{"as_of": "2026-13-01"}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
        let err = run_json::<GracePeriodExpirations>(r#"{"notify": "yes"}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
    }
}
