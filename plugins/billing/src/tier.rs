//! Plan tiers and what each includes: entitlement features and the grace period after a
//! failed payment.

/// The tiers of `organizations.plan_tier` and `subscriptions.plan_tier`, cheapest first.
pub const TIERS: [&str; 4] = ["free", "starter", "pro", "enterprise"];

/// The tier an organization without a live subscription is on.
pub const FREE: &str = "free";

pub fn is_tier(s: &str) -> bool {
    TIERS.contains(&s)
}

/// The features a tier includes (entitlements with source `plan`). The schema has no
/// plan-features table; these are the reference data's: each tier adds to the one below.
pub fn features(tier: &str) -> &'static [&'static str] {
    const ALL: [&str; 6] = [
        "editor",
        "custom_domain",
        "analytics",
        "api_access",
        "sso",
        "audit_export",
    ];
    match tier {
        "starter" => &ALL[..2],
        "pro" => &ALL[..4],
        "enterprise" => &ALL,
        _ => &ALL[..1],
    }
}

/// Days a past-due subscription keeps its tier before it is canceled: Enterprise 14, every
/// other paid tier 7 ("Grace Period Policy" of the incident runbook; the operations
/// runbook's "7-day grace period" for the rest).
pub fn grace_days(tier: &str) -> i64 {
    match tier {
        "enterprise" => 14,
        _ => 7,
    }
}

/// The tier a name mentions as a whole word, case-insensitively: `pro-monthly`,
/// `Pro monthly`, `prod_enterprise`. `None` if it mentions none, or more than one.
pub fn tier_in_text(text: &str) -> Option<&'static str> {
    let mut found = None;
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if let Some(tier) = TIERS.iter().find(|t| word.eq_ignore_ascii_case(t)) {
            match found {
                Some(other) if other != *tier => return None,
                _ => found = Some(*tier),
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_grow_with_the_tier() {
        assert_eq!(features("free"), ["editor"]);
        assert_eq!(features("starter"), ["editor", "custom_domain"]);
        assert_eq!(features("pro").len(), 4);
        assert!(features("enterprise").contains(&"sso"));
        for pair in TIERS.windows(2) {
            let (lower, higher) = (features(pair[0]), features(pair[1]));
            assert!(lower.iter().all(|f| higher.contains(f)), "{pair:?}");
        }
    }

    #[test]
    fn grace_periods() {
        assert_eq!(grace_days("pro"), 7);
        assert_eq!(grace_days("starter"), 7);
        assert_eq!(grace_days("enterprise"), 14);
    }

    #[test]
    fn tiers_in_names() {
        assert_eq!(tier_in_text("pro-monthly"), Some("pro"));
        assert_eq!(tier_in_text("Enterprise monthly"), Some("enterprise"));
        assert_eq!(tier_in_text("prod_starter"), Some("starter"));
        assert_eq!(tier_in_text("PRO_ANNUAL_2026"), Some("pro"));
        assert_eq!(tier_in_text("pro pro"), Some("pro"));
        assert_eq!(tier_in_text("professional"), None, "whole words only");
        assert_eq!(tier_in_text("price_1NproXYZ"), None);
        assert_eq!(tier_in_text("starter-to-pro"), None, "ambiguous");
        assert_eq!(tier_in_text(""), None);
        assert!(is_tier("free") && !is_tier("Free"));
    }
}
