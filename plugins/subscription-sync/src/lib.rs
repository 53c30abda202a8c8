//! "Subscription State Mismatch": resync subscriptions from Stripe.
//!
//! Scope: one organization's subscriptions (any status: Stripe may say active what the
//! database says canceled), or every live one (active, past due, trialing). For each it
//! retrieves the subscription from Stripe, compares status, tier, `current_period_end`
//! and `cancel_at_period_end` ([`billing::stripe_state`] says how Stripe's object is read), and
//! updates the row to match. `canceled_at` follows the status (the table's CHECK);
//! `updated_at` is stamped, except on a subscription that was and stays past due, whose
//! `updated_at` is when its grace period started.
//!
//! An organization with a changed subscription then gets the tier of its newest live
//! subscription (free without one), with quota limits from `plan_limits` and the tier's
//! entitlements (`billing::plan`). One `subscription.synced` audit record per changed
//! subscription holds before, after and the organization's tier change.
//!
//! Not synced, and said why: a subscription Stripe does not know (`missing_in_stripe`), a
//! Stripe error, a Stripe status the schema has no word for. Stripe is only read, so any
//! failure leaves both sides as they were.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use billing::plan::{self, TierChange};
use billing::stripe_state::{self, StripeState};
use billing::subscription::{self, Subscription};
use billing::{clock, contacts};
use runbook_sdk::serde_json::json;
use runbook_sdk::{
    CallError, Failure, Procedure, Timestamp, audit, db, log, params, register_plugin, stripe,
};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// One organization; null for every live subscription.
    #[serde(default)]
    organization_id: Option<i64>,
}

#[derive(Serialize)]
struct Output {
    organization_id: Option<i64>,
    checked: usize,
    in_sync: usize,
    changed: usize,
    not_synced: usize,
    changes: Vec<Change>,
    not_synced_subscriptions: Vec<NotSynced>,
    /// Subscriptions synced without a tier: Stripe's object names none.
    warnings: Vec<String>,
}

#[derive(Serialize, Clone)]
struct Change {
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    fields: Vec<&'static str>,
    before: State,
    after: State,
    /// The organization's move to another tier, if the change caused one.
    organization_tier: Option<TierChange>,
}

#[derive(Serialize, Clone, PartialEq)]
struct State {
    status: String,
    plan_tier: String,
    current_period_end: Option<Timestamp>,
    cancel_at_period_end: bool,
    canceled_at: Option<Timestamp>,
}

#[derive(Serialize)]
struct NotSynced {
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    /// `missing_in_stripe`, `stripe_error`, `unsupported_status`.
    reason: &'static str,
    detail: String,
}

struct SubscriptionSync;

impl Procedure for SubscriptionSync {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let subscriptions = match input.organization_id {
            Some(id) => subscription::of_organization(contacts::organization(id)?.id)?,
            None => subscription::live()?,
        };
        let now = clock::db_now()?;
        let mut changes = Vec::new();
        let mut not_synced = Vec::new();
        let mut warnings = Vec::new();
        for sub in &subscriptions {
            let stripe = match retrieve(sub)? {
                Ok(stripe) => stripe,
                Err((reason, detail)) => {
                    not_synced.push(NotSynced {
                        subscription_id: sub.id,
                        stripe_subscription_id: sub.stripe_subscription_id.clone(),
                        organization_id: sub.organization_id,
                        reason,
                        detail,
                    });
                    continue;
                }
            };
            if stripe.tier.is_none() {
                warnings.push(format!(
                    "{}: Stripe's subscription names no tier; kept {}",
                    sub.stripe_subscription_id, sub.plan_tier
                ));
            }
            if let Some(change) = sync(sub, &stripe, &now)? {
                changes.push(change);
            }
        }

        // Organizations follow their subscriptions once all of theirs are synced.
        let mut tiers: BTreeMap<i64, Option<TierChange>> = BTreeMap::new();
        for change in &changes {
            if let Entry::Vacant(slot) = tiers.entry(change.organization_id) {
                slot.insert(plan::follow_subscriptions(change.organization_id, &now)?);
            }
        }
        for change in &mut changes {
            change.organization_tier = tiers.get(&change.organization_id).cloned().flatten();
            audit::record_json(
                "subscription.synced",
                &format!("subscription:{}", change.stripe_subscription_id),
                &json!({
                    "organization_id": change.organization_id,
                    "fields": change.fields,
                    "before": change.before,
                    "after": change.after,
                    "organization_tier": change.organization_tier.as_ref().map(|t| json!({
                        "before": t.before, "after": t.after,
                    })),
                }),
            );
        }
        log::log_with(
            log::Level::Info,
            "subscriptions synced from Stripe",
            &[
                ("checked", &subscriptions.len()),
                ("changed", &changes.len()),
                ("not_synced", &not_synced.len()),
            ],
        );
        Ok(Output {
            organization_id: input.organization_id,
            checked: subscriptions.len(),
            in_sync: subscriptions.len() - changes.len() - not_synced.len(),
            changed: changes.len(),
            not_synced: not_synced.len(),
            changes,
            not_synced_subscriptions: not_synced,
            warnings,
        })
    }
}

/// Stripe's view of `sub`, or why there is none. The outer `Err` stops the sync: the host
/// refused the call (a denial, Stripe not configured).
fn retrieve(sub: &Subscription) -> Result<Result<StripeState, (&'static str, String)>, Failure> {
    let id = &sub.stripe_subscription_id;
    let object = match stripe::call("subscriptions.retrieve", &json!({ "id": id })) {
        Ok(object) => object,
        Err(e) if stripe::is_not_found(&e) => {
            return Ok(Err((
                "missing_in_stripe",
                format!("Stripe has no subscription {id}"),
            )));
        }
        Err(CallError::Failed(m)) => return Ok(Err(("stripe_error", m))),
        Err(e) => return Err(e.into()),
    };
    let state = stripe_state::read(&object);
    if state.status.is_none() {
        return Ok(Err((
            "unsupported_status",
            format!(
                "Stripe status {:?} has no counterpart in the schema",
                state.stripe_status
            ),
        )));
    }
    Ok(Ok(state))
}

/// Update `sub` to match Stripe; `None` if it already does.
fn sync(
    sub: &Subscription,
    stripe: &StripeState,
    now: &Timestamp,
) -> Result<Option<Change>, Failure> {
    let before = State {
        status: sub.status.clone(),
        plan_tier: sub.plan_tier.clone(),
        current_period_end: sub.current_period_end.clone(),
        cancel_at_period_end: sub.cancel_at_period_end,
        canceled_at: sub.canceled_at.clone(),
    };
    let after = target_state(&before, stripe, now);
    let fields = changed_fields(&before, &after);
    if fields.is_empty() {
        return Ok(None);
    }
    let stays_past_due = before.status == "past_due" && after.status == "past_due";
    let updated_at = if stays_past_due { &sub.updated_at } else { now };
    db::execute(
        "UPDATE subscriptions SET status = $1, plan_tier = $2, current_period_end = $3, \
         cancel_at_period_end = $4, canceled_at = $5, updated_at = $6 WHERE id = $7",
        params![
            &after.status,
            &after.plan_tier,
            after.current_period_end.clone(),
            after.cancel_at_period_end,
            after.canceled_at.clone(),
            updated_at,
            sub.id,
        ],
    )?;
    Ok(Some(Change {
        subscription_id: sub.id,
        stripe_subscription_id: sub.stripe_subscription_id.clone(),
        organization_id: sub.organization_id,
        fields,
        before,
        after,
        organization_tier: None,
    }))
}

/// The row as Stripe says it should be. What Stripe does not say (a tier, a period end)
/// stays as it was.
fn target_state(before: &State, stripe: &StripeState, now: &Timestamp) -> State {
    let status = stripe.status.unwrap_or(before.status.as_str()).to_owned();
    let canceled_at = match (status.as_str(), &before.canceled_at) {
        ("canceled", Some(at)) => Some(at.clone()),
        ("canceled", None) => Some(stripe.ended_at.clone().unwrap_or_else(|| now.clone())),
        _ => None,
    };
    State {
        status,
        plan_tier: stripe
            .tier
            .map_or_else(|| before.plan_tier.clone(), |(t, _)| t.to_owned()),
        current_period_end: stripe
            .current_period_end
            .clone()
            .or_else(|| before.current_period_end.clone()),
        cancel_at_period_end: stripe.cancel_at_period_end,
        canceled_at,
    }
}

fn changed_fields(before: &State, after: &State) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if before.status != after.status {
        fields.push("status");
    }
    if before.plan_tier != after.plan_tier {
        fields.push("plan_tier");
    }
    if before.current_period_end != after.current_period_end {
        fields.push("current_period_end");
    }
    if before.cancel_at_period_end != after.cancel_at_period_end {
        fields.push("cancel_at_period_end");
    }
    if before.canceled_at != after.canceled_at {
        fields.push("canceled_at");
    }
    fields
}

register_plugin!(SubscriptionSync);

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn db_state(status: &str, tier: &str) -> State {
        State {
            status: status.into(),
            plan_tier: tier.into(),
            current_period_end: Some(ts("2026-12-02T10:05:00Z")),
            cancel_at_period_end: false,
            canceled_at: (status == "canceled").then(|| ts("2026-09-28T17:00:00Z")),
        }
    }

    fn stripe(status: &str, tier: Option<&'static str>) -> StripeState {
        StripeState {
            stripe_status: status.into(),
            status: stripe_state::db_status(status),
            tier: tier.map(|t| (t, "test")),
            current_period_end: Some(ts("2026-12-02T10:05:00Z")),
            cancel_at_period_end: false,
            ended_at: None,
        }
    }

    #[test]
    fn in_sync_means_no_fields() {
        let now = ts("2026-11-22T00:00:00Z");
        let before = db_state("active", "pro");
        let after = target_state(&before, &stripe("active", Some("pro")), &now);
        assert!(changed_fields(&before, &after).is_empty());
        let after = target_state(&before, &stripe("active", None), &now);
        assert!(changed_fields(&before, &after).is_empty(), "no tier: kept");
    }

    #[test]
    fn status_tier_and_period_follow_stripe() {
        let now = ts("2026-11-22T00:00:00Z");
        let before = db_state("past_due", "starter");
        let mut s = stripe("active", Some("pro"));
        s.current_period_end = Some(ts("2027-01-02T00:00:00Z"));
        s.cancel_at_period_end = true;
        let after = target_state(&before, &s, &now);
        assert_eq!(
            changed_fields(&before, &after),
            [
                "status",
                "plan_tier",
                "current_period_end",
                "cancel_at_period_end"
            ]
        );
        assert_eq!(after.canceled_at, None);
    }

    #[test]
    fn canceled_at_follows_the_status() {
        let now = ts("2026-11-22T00:00:00Z");
        let before = db_state("active", "pro");
        let mut s = stripe("canceled", Some("pro"));
        let after = target_state(&before, &s, &now);
        assert_eq!(after.canceled_at, Some(now.clone()), "Stripe gave no date");
        s.ended_at = Some(ts("2026-11-20T08:00:00Z"));
        let after = target_state(&before, &s, &now);
        assert_eq!(after.canceled_at, Some(ts("2026-11-20T08:00:00Z")));
        assert_eq!(changed_fields(&before, &after), ["status", "canceled_at"]);

        // Reactivated in Stripe: no longer canceled here either.
        let before = db_state("canceled", "pro");
        let after = target_state(&before, &stripe("active", Some("pro")), &now);
        assert_eq!(after.canceled_at, None);
        assert_eq!(changed_fields(&before, &after), ["status", "canceled_at"]);

        // Already canceled: the first date stands.
        let after = target_state(&before, &s, &now);
        assert!(changed_fields(&before, &after).is_empty());
    }
}
