//! Grace periods of past-due subscriptions. The schema records when a subscription went
//! past due in `subscriptions.updated_at` ("when the payment failed (the grace period
//! starts)", as the operations runbook's query reads it); the grace period is the tier's
//! ([`tier::grace_days`]).

use runbook_sdk::{Failure, Timestamp};
use serde::Serialize;

use crate::subscription::{self, Subscription};
use crate::tier;

#[derive(Debug, Clone, Serialize)]
pub struct PastDue {
    pub subscription: Subscription,
    pub past_due_since: Timestamp,
    pub grace_days: i64,
    pub grace_ends_at: Timestamp,
    /// The grace period has ended at `as_of`.
    pub expired: bool,
}

/// Every past-due subscription with its grace period as of `as_of`, longest past due first.
///
/// Touches: select `subscriptions`.
pub fn past_due(as_of: &Timestamp) -> Result<Vec<PastDue>, Failure> {
    let mut out = Vec::new();
    for s in subscription::past_due()? {
        out.push(assess(s, as_of)?);
    }
    out.sort_by(|a, b| a.past_due_since.cmp(&b.past_due_since));
    Ok(out)
}

fn assess(subscription: Subscription, as_of: &Timestamp) -> Result<PastDue, Failure> {
    let grace_days = tier::grace_days(&subscription.plan_tier);
    let since = subscription.updated_at.clone();
    let grace_ends_at = since.plus_days(grace_days).ok_or_else(|| {
        Failure::new(
            "schema-mismatch",
            format!(
                "subscription {}: updated_at {since} out of range",
                subscription.id
            ),
        )
    })?;
    Ok(PastDue {
        expired: grace_ends_at <= *as_of,
        past_due_since: since,
        grace_days,
        grace_ends_at,
        subscription,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(tier: &str, since: &str) -> Subscription {
        let t = |s| Timestamp::parse(s).unwrap();
        Subscription {
            id: 1,
            organization_id: 1,
            stripe_subscription_id: "sub_1".into(),
            plan_tier: tier.into(),
            billing_cycle: "monthly".into(),
            amount_cents: 9900,
            currency: "usd".into(),
            status: "past_due".into(),
            current_period_end: None,
            cancel_at_period_end: false,
            created_at: t("2026-01-01"),
            updated_at: t(since),
            canceled_at: None,
        }
    }

    #[test]
    fn grace_by_tier() {
        let as_of = Timestamp::parse("2026-11-21T02:00:00Z").unwrap();
        let pro = assess(sub("pro", "2026-11-14 02:00:00+00:00"), &as_of).unwrap();
        assert_eq!(pro.grace_ends_at.as_str(), "2026-11-21T02:00:00Z");
        assert!(pro.expired, "exactly 7 days");
        let pro = assess(sub("pro", "2026-11-14 02:00:01+00:00"), &as_of).unwrap();
        assert!(!pro.expired);
        let ent = assess(sub("enterprise", "2026-11-10 00:00:00+00:00"), &as_of).unwrap();
        assert_eq!(ent.grace_days, 14);
        assert!(!ent.expired);
        let ent = assess(sub("enterprise", "2026-11-03 00:00:00+00:00"), &as_of).unwrap();
        assert!(ent.expired);
    }
}
