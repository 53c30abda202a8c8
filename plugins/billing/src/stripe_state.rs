//! What a Stripe subscription object says, in the schema's terms: status, tier, period
//! end, cancel at period end, and when it ended.
//!
//! The tier comes from the first of these that names one: the subscription item's price
//! or plan `metadata.tier`, the legacy top-level plan's `metadata.tier`, the subscription's
//! own `metadata.tier`; then a tier named as a whole word in the price's lookup key, the
//! plan or price id, their nicknames, or the product id (`pro-monthly`, `Pro monthly`,
//! `prod_pro`). Explicit metadata wins over names, so a plan can be renamed freely. No
//! tier found: the caller keeps the database's.
//!
//! Reads both API shapes: `current_period_end` on the subscription (before 2025-03-31) or
//! on its first item (since).

use crate::tier;
use runbook_sdk::Timestamp;
use runbook_sdk::serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct StripeState {
    /// Stripe's own status.
    pub stripe_status: String,
    /// The schema's status for it; `None` for statuses the schema has no word for
    /// (`incomplete`, `paused`).
    pub status: Option<&'static str>,
    /// The tier and the field it was read from.
    pub tier: Option<(&'static str, &'static str)>,
    pub current_period_end: Option<Timestamp>,
    pub cancel_at_period_end: bool,
    /// When it was canceled or ended, if it was.
    pub ended_at: Option<Timestamp>,
}

pub fn read(sub: &Value) -> StripeState {
    let item = &sub["items"]["data"][0];
    let stripe_status = sub["status"].as_str().unwrap_or_default().to_owned();
    StripeState {
        status: db_status(&stripe_status),
        stripe_status,
        tier: tier_of(sub),
        current_period_end: unix(&sub["current_period_end"])
            .or_else(|| unix(&item["current_period_end"])),
        cancel_at_period_end: sub["cancel_at_period_end"].as_bool().unwrap_or(false),
        ended_at: unix(&sub["canceled_at"]).or_else(|| unix(&sub["ended_at"])),
    }
}

/// Stripe's subscription status as the schema's: `unpaid` (retries exhausted, invoice
/// still open) is still past due; `incomplete_expired` never started, so it is canceled.
pub fn db_status(stripe: &str) -> Option<&'static str> {
    match stripe {
        "active" => Some("active"),
        "trialing" => Some("trialing"),
        "past_due" | "unpaid" => Some("past_due"),
        "canceled" | "incomplete_expired" => Some("canceled"),
        _ => None,
    }
}

fn tier_of(sub: &Value) -> Option<(&'static str, &'static str)> {
    let item = &sub["items"]["data"][0];
    let explicit: [(&'static str, &Value); 5] = [
        (
            "items.data[0].price.metadata.tier",
            &item["price"]["metadata"]["tier"],
        ),
        (
            "items.data[0].plan.metadata.tier",
            &item["plan"]["metadata"]["tier"],
        ),
        ("plan.metadata.tier", &sub["plan"]["metadata"]["tier"]),
        (
            "items.data[0].price.product.metadata.tier",
            &item["price"]["product"]["metadata"]["tier"],
        ),
        ("metadata.tier", &sub["metadata"]["tier"]),
    ];
    for (path, value) in explicit {
        if let Some(t) = value.as_str().map(|s| s.trim().to_ascii_lowercase())
            && let Some(tier) = tier::TIERS.iter().find(|x| **x == t)
        {
            return Some((tier, path));
        }
    }
    let named: [(&'static str, &Value); 9] = [
        (
            "items.data[0].price.lookup_key",
            &item["price"]["lookup_key"],
        ),
        ("items.data[0].plan.id", &item["plan"]["id"]),
        ("items.data[0].price.id", &item["price"]["id"]),
        ("plan.id", &sub["plan"]["id"]),
        ("items.data[0].plan.nickname", &item["plan"]["nickname"]),
        ("items.data[0].price.nickname", &item["price"]["nickname"]),
        ("plan.nickname", &sub["plan"]["nickname"]),
        ("items.data[0].plan.product", &item["plan"]["product"]),
        ("items.data[0].price.product", &item["price"]["product"]),
    ];
    named.into_iter().find_map(|(path, value)| {
        value
            .as_str()
            .and_then(tier::tier_in_text)
            .map(|tier| (tier, path))
    })
}

fn unix(value: &Value) -> Option<Timestamp> {
    value.as_i64().and_then(Timestamp::from_unix_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::serde_json::json;

    /// A subscription as localstripe returns it for the test fixtures' `pro-monthly` plan.
    fn localstripe_pro() -> Value {
        json!({
            "id": "sub_1", "object": "subscription", "status": "active",
            "cancel_at_period_end": false, "canceled_at": null, "ended_at": null,
            "current_period_end": 1_796_000_000,
            "metadata": {"organization_id": "2"},
            "plan": {"id": "pro-monthly", "metadata": {"tier": "pro"}, "nickname": "Pro monthly"},
            "items": {"object": "list", "data": [{
                "id": "si_1",
                "plan": {"id": "pro-monthly", "metadata": {"tier": "pro"},
                         "nickname": "Pro monthly", "product": "prod_pro"}
            }]}
        })
    }

    #[test]
    fn reads_a_localstripe_subscription() {
        let s = read(&localstripe_pro());
        assert_eq!(s.status, Some("active"));
        assert_eq!(s.tier, Some(("pro", "items.data[0].plan.metadata.tier")));
        assert_eq!(
            s.current_period_end.unwrap().as_str(),
            "2026-11-30T00:53:20Z"
        );
        assert!(!s.cancel_at_period_end);
        assert_eq!(s.ended_at, None);
    }

    #[test]
    fn reads_the_current_api_shape() {
        let s = read(&json!({
            "status": "canceled", "cancel_at_period_end": true,
            "canceled_at": 1_790_000_000, "ended_at": 1_790_000_100,
            "items": {"data": [{
                "current_period_end": 1_796_000_000,
                "price": {"id": "price_1Nabc", "lookup_key": "enterprise_annual",
                          "metadata": {}, "product": "prod_Q1"}
            }]}
        }));
        assert_eq!(s.status, Some("canceled"));
        assert_eq!(
            s.tier,
            Some(("enterprise", "items.data[0].price.lookup_key"))
        );
        assert!(s.current_period_end.is_some());
        assert!(s.cancel_at_period_end);
        assert_eq!(s.ended_at.unwrap().unix_seconds(), 1_790_000_000);
    }

    #[test]
    fn metadata_beats_names() {
        let mut sub = localstripe_pro();
        sub["items"]["data"][0]["plan"]["metadata"]["tier"] = json!("Enterprise");
        assert_eq!(read(&sub).tier.unwrap().0, "enterprise");
        sub["items"]["data"][0]["plan"]["metadata"] = json!({});
        sub["plan"]["metadata"] = json!({});
        assert_eq!(read(&sub).tier, Some(("pro", "items.data[0].plan.id")));
        sub["metadata"]["tier"] = json!("starter");
        assert_eq!(read(&sub).tier, Some(("starter", "metadata.tier")));
    }

    #[test]
    fn unknown_tier_and_status() {
        let s = read(
            &json!({"status": "incomplete", "items": {"data": [{"plan": {"id": "plan_X1"}}]}}),
        );
        assert_eq!(s.status, None);
        assert_eq!(s.stripe_status, "incomplete");
        assert_eq!(s.tier, None);
        assert_eq!(s.current_period_end, None);
        assert_eq!(read(&json!({})).status, None, "no panic on an empty object");
    }

    #[test]
    fn statuses() {
        assert_eq!(db_status("unpaid"), Some("past_due"));
        assert_eq!(db_status("incomplete_expired"), Some("canceled"));
        assert_eq!(db_status("paused"), None);
    }
}
