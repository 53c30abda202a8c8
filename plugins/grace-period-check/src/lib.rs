//! Step 1 of "Process Grace Period Expirations": check pending expirations.
//!
//! Lists every past-due subscription with its grace period as of `as_of` (default: the
//! database's clock), split into expired and still in grace (`billing::grace`: the period
//! starts at `updated_at`, 7 days, 14 for Enterprise), and for the expired ones whom
//! `grace-period-expirations` will email: owners and admins, or the billing email without
//! any. `recipients` gathers those addresses for that step's email grant, and `as_of` is
//! passed on so both steps judge by the same instant. Read-only.

use billing::{clock, contacts, grace};
use runbook_sdk::{Failure, Procedure, Timestamp, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The instant to judge by; empty or null for the database's clock.
    #[serde(default)]
    as_of: Option<String>,
}

#[derive(Serialize)]
struct Output {
    as_of: Timestamp,
    past_due: usize,
    /// How many grace periods have expired.
    count: usize,
    expired: Vec<Pending>,
    in_grace: Vec<Pending>,
    /// Every address the expired subscriptions' notices go to.
    recipients: Vec<String>,
}

#[derive(Serialize)]
struct Pending {
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    organization_name: String,
    plan_tier: String,
    past_due_since: Timestamp,
    grace_days: i64,
    grace_ends_at: Timestamp,
    /// Whole days past due at `as_of`.
    days_past_due: i64,
    /// Only for expired ones.
    recipients: Vec<String>,
}

struct GracePeriodCheck;

impl Procedure for GracePeriodCheck {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let as_of = clock::as_of(input.as_of.as_deref())?;
        let all = grace::past_due(&as_of)?;
        let past_due = all.len();
        let (mut expired, mut in_grace) = (Vec::new(), Vec::new());
        let mut recipients: Vec<String> = Vec::new();
        for p in all {
            let org = contacts::organization(p.subscription.organization_id)?;
            let to = if p.expired {
                contacts::plan_recipients(&org)?
            } else {
                Vec::new()
            };
            for r in &to {
                if !recipients.contains(r) {
                    recipients.push(r.clone());
                }
            }
            let pending = Pending {
                subscription_id: p.subscription.id,
                stripe_subscription_id: p.subscription.stripe_subscription_id,
                organization_id: org.id,
                organization_name: org.name,
                plan_tier: p.subscription.plan_tier,
                days_past_due: (as_of.unix_seconds() - p.past_due_since.unix_seconds()) / 86_400,
                past_due_since: p.past_due_since,
                grace_days: p.grace_days,
                grace_ends_at: p.grace_ends_at,
                recipients: to,
            };
            if p.expired {
                expired.push(pending);
            } else {
                in_grace.push(pending);
            }
        }
        Ok(Output {
            as_of,
            past_due,
            count: expired.len(),
            expired,
            in_grace,
            recipients,
        })
    }
}

register_plugin!(GracePeriodCheck);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_as_of_fails_before_any_call() {
        let err = run_json::<GracePeriodCheck>(r#"{"as_of": "yesterday"}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
    }
}
