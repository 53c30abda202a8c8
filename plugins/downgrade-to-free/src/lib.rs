//! Downgrade an organization whose subscriptions have ended to the free tier: plan tier,
//! quota limits from `plan_limits`, free-tier entitlements (`billing::plan`; manual grants
//! are left alone).
//!
//! Two preconditions, checked before anything is written (a `precondition` failure
//! otherwise): no live subscription is left (cancel it first; the tier follows the
//! subscriptions), and no dispute is open on any of its charges (`payment_events`:
//! `dispute_opened` without a later `dispute_closed` for the charge). While a dispute is
//! open the organization's plan is the dispute process's to decide (seed "Handle Disputed
//! Payment": lost, downgrade; won, restore), so the downgrade waits. Already free: nothing
//! to do, reported `changed: false`. Audited as `organization.downgraded`; with `notify`,
//! the `subscription-canceled` email about its most recently canceled subscription goes to
//! the billing email (best effort).

use billing::disputes::{self, Dispute};
use billing::notify::{self, Notification};
use billing::plan::{self, TierChange};
use billing::{clock, contacts, subscription, tier};
use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, audit, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    #[serde(default)]
    notify: bool,
    /// Recorded in the audit log (e.g. `refund_and_downgrade`).
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    organization_name: String,
    before: String,
    after: String,
    changed: bool,
    organization_tier: Option<TierChange>,
    notification: Option<Notification>,
}

struct DowngradeToFree;

impl Procedure for DowngradeToFree {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let org = contacts::organization(input.organization_id)?;
        if let Some(live) = subscription::current(org.id)? {
            return Err(Failure::precondition(format!(
                "organization {} ({}) still has a live subscription {} ({}, {}): cancel it first",
                org.id, org.name, live.stripe_subscription_id, live.plan_tier, live.status
            )));
        }
        let open = disputes::open_of(org.id)?;
        if !open.is_empty() {
            return Err(Failure::precondition(format!(
                "organization {} ({}) has {}: the downgrade waits for the dispute's outcome",
                org.id,
                org.name,
                describe(&open)
            )));
        }

        let now = clock::db_now()?;
        let change = if org.plan_tier == tier::FREE {
            None
        } else {
            Some(plan::move_to_tier(org.id, tier::FREE, false, &now)?)
        };
        let reason = input
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if let Some(t) = &change {
            audit::record_json(
                "organization.downgraded",
                &format!("organization:{}", org.id),
                &json!({
                    "before": t.before,
                    "after": t.after,
                    "reason": reason,
                    "quota_limits": t.quota_limits,
                    "over_limit": t.over_limit,
                    "entitlements_disabled": t.entitlements_disabled,
                }),
            );
        }

        let notification = if input.notify {
            let canceled = subscription::of_organization(org.id)?
                .into_iter()
                .filter(|s| s.canceled_at.is_some())
                .max_by(|a, b| a.canceled_at.cmp(&b.canceled_at));
            canceled.map(|s| {
                notify::send(
                    std::slice::from_ref(&org.billing_email),
                    "subscription-canceled",
                    &json!({
                        "organization_id": org.id,
                        "organization_name": org.name,
                        "plan_tier": s.plan_tier,
                        "new_tier": tier::FREE,
                        "stripe_subscription_id": s.stripe_subscription_id,
                        "at_period_end": false,
                        "effective_date": s.canceled_at.as_ref().map_or("", |t| t.date()),
                    }),
                )
            })
        } else {
            None
        };
        Ok(Output {
            organization_id: org.id,
            organization_name: org.name,
            before: org.plan_tier,
            after: tier::FREE.to_owned(),
            changed: change.is_some(),
            organization_tier: change,
            notification,
        })
    }
}

fn describe(open: &[Dispute]) -> String {
    let each: Vec<String> = open
        .iter()
        .map(|d| {
            format!(
                "charge {} (amount {}, opened {})",
                d.stripe_charge_id.as_deref().unwrap_or("unknown"),
                d.amount_cents,
                d.opened_at.date()
            )
        })
        .collect();
    format!(
        "{} open dispute{} on {}",
        open.len(),
        if open.len() == 1 { "" } else { "s" },
        each.join(", ")
    )
}

register_plugin!(DowngradeToFree);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;
    use runbook_sdk::Timestamp;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [r#"{}"#, r#"{"organization_id": 2, "tier": "free"}"#] {
            let err = run_json::<DowngradeToFree>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}");
        }
    }

    #[test]
    fn disputes_are_named() {
        let d = Dispute {
            payment_event_id: 14,
            stripe_charge_id: Some("ch_demo1010".into()),
            amount_cents: 9900,
            opened_at: Timestamp::parse("2026-11-20 10:00:00+00:00").unwrap(),
        };
        assert_eq!(
            describe(std::slice::from_ref(&d)),
            "1 open dispute on charge ch_demo1010 (amount 9900, opened 2026-11-20)"
        );
        assert!(describe(&[d.clone(), d]).starts_with("2 open disputes on "));
    }
}
