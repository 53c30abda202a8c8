//! Moving an organization to a tier, as the upgrade and downgrade procedures do by hand:
//! `organizations.plan_tier`, every `usage_quotas.quota_limit` from `plan_limits`, and the
//! plan's entitlements (features of the new tier enabled, plan and trial features it does
//! not include disabled; manual grants are left alone).

use std::collections::BTreeMap;

use runbook_sdk::{Failure, Timestamp, db, params};
use serde::Serialize;

use crate::tier;

/// What moving an organization to a tier changed.
#[derive(Debug, Clone, Serialize)]
pub struct TierChange {
    pub organization_id: i64,
    pub before: String,
    pub after: String,
    /// Per dimension whose limit changed.
    pub quota_limits: BTreeMap<String, LimitChange>,
    /// Dimensions whose usage is above the new limit (the customer is to be warned).
    pub over_limit: Vec<String>,
    pub entitlements_enabled: Vec<String>,
    pub entitlements_disabled: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitChange {
    pub before: i64,
    pub after: i64,
    pub current_usage: i64,
}

/// The tier the organization's subscriptions give it: its newest live subscription's, or
/// free without one; and whether that subscription is a trial.
///
/// Touches: select `subscriptions`.
pub fn tier_from_subscriptions(organization_id: i64) -> Result<(String, bool), Failure> {
    Ok(match crate::subscription::current(organization_id)? {
        Some(s) => {
            let trial = s.status == "trialing";
            (s.plan_tier, trial)
        }
        None => (tier::FREE.to_owned(), false),
    })
}

/// Bring the organization's tier in line with its subscriptions; `None` when it already
/// is.
///
/// Touches: select `subscriptions`, and what [`move_to_tier`] touches.
pub fn follow_subscriptions(
    organization_id: i64,
    now: &Timestamp,
) -> Result<Option<TierChange>, Failure> {
    let (tier, trial) = tier_from_subscriptions(organization_id)?;
    let current: String = db::query(
        "SELECT plan_tier FROM organizations WHERE id = $1",
        params![organization_id],
    )?
    .one()?
    .get("plan_tier")?;
    if current == tier {
        return Ok(None);
    }
    move_to_tier(organization_id, &tier, trial, now).map(Some)
}

/// Move the organization to `tier`. `trial`: the features come with a trial (entitlement
/// source `trial`, not `plan`).
///
/// Touches: select, update `organizations`; select `plan_limits`; select, update
/// `usage_quotas`; select, insert, update `entitlements`.
pub fn move_to_tier(
    organization_id: i64,
    tier: &str,
    trial: bool,
    now: &Timestamp,
) -> Result<TierChange, Failure> {
    if !tier::is_tier(tier) {
        return Err(Failure::invalid_input(format!("unknown tier {tier:?}")));
    }
    let limits = plan_limits(tier)?;
    let before: String = db::query(
        "SELECT plan_tier FROM organizations WHERE id = $1",
        params![organization_id],
    )?
    .first()
    .ok_or_else(|| Failure::precondition(format!("organization {organization_id} does not exist")))?
    .get("plan_tier")?;

    db::execute(
        "UPDATE organizations SET plan_tier = $1, updated_at = $2 WHERE id = $3",
        params![tier, now, organization_id],
    )?;
    let (quota_limits, over_limit) = set_limits(organization_id, &limits)?;
    let (entitlements_enabled, entitlements_disabled) =
        set_entitlements(organization_id, tier::features(tier), trial, now)?;
    Ok(TierChange {
        organization_id,
        before,
        after: tier.to_owned(),
        quota_limits,
        over_limit,
        entitlements_enabled,
        entitlements_disabled,
    })
}

fn plan_limits(tier: &str) -> Result<BTreeMap<String, i64>, Failure> {
    let mut limits = BTreeMap::new();
    for row in &db::query(
        "SELECT dimension, quota_limit FROM plan_limits WHERE plan_tier = $1",
        params![tier],
    )? {
        limits.insert(row.get("dimension")?, row.get("quota_limit")?);
    }
    if limits.is_empty() {
        return Err(Failure::precondition(format!(
            "plan_limits has no limits for tier {tier}"
        )));
    }
    Ok(limits)
}

type LimitChanges = (BTreeMap<String, LimitChange>, Vec<String>);

fn set_limits(
    organization_id: i64,
    limits: &BTreeMap<String, i64>,
) -> Result<LimitChanges, Failure> {
    let mut changed = BTreeMap::new();
    let mut over = Vec::new();
    for row in &db::query(
        "SELECT dimension, current_usage, quota_limit FROM usage_quotas \
         WHERE organization_id = $1 ORDER BY dimension",
        params![organization_id],
    )? {
        let dimension: String = row.get("dimension")?;
        let Some(&limit) = limits.get(&dimension) else {
            continue;
        };
        let (usage, before): (i64, i64) = (row.get("current_usage")?, row.get("quota_limit")?);
        if usage > limit {
            over.push(dimension.clone());
        }
        if before != limit {
            db::execute(
                "UPDATE usage_quotas SET quota_limit = $1 \
                 WHERE organization_id = $2 AND dimension = $3",
                params![limit, organization_id, &dimension],
            )?;
            changed.insert(
                dimension,
                LimitChange {
                    before,
                    after: limit,
                    current_usage: usage,
                },
            );
        }
    }
    Ok((changed, over))
}

fn set_entitlements(
    organization_id: i64,
    features: &[&str],
    trial: bool,
    now: &Timestamp,
) -> Result<(Vec<String>, Vec<String>), Failure> {
    let source = if trial { "trial" } else { "plan" };
    let rows = db::query(
        "SELECT id, feature, enabled, source FROM entitlements WHERE organization_id = $1",
        params![organization_id],
    )?;
    let mut existing = BTreeMap::new();
    for row in &rows {
        let feature: String = row.get("feature")?;
        let enabled: bool = row.get("enabled")?;
        let row_source: String = row.get("source")?;
        existing.insert(feature, (row.get::<i64>("id")?, enabled, row_source));
    }

    let (mut enabled, mut disabled) = (Vec::new(), Vec::new());
    let mut next_id: Option<i64> = None;
    for feature in features {
        match existing.get(*feature) {
            // Granted by hand: not the plan's to change.
            Some((_, _, s)) if s == "manual" => {}
            Some((_, true, s)) if s == source => {}
            Some((id, was_enabled, _)) => {
                db::execute(
                    "UPDATE entitlements SET enabled = TRUE, source = $1, granted_at = $2 \
                     WHERE id = $3",
                    params![source, now, *id],
                )?;
                if !was_enabled {
                    enabled.push((*feature).to_owned());
                }
            }
            None => {
                let id = match next_id {
                    Some(id) => id,
                    None => db::query(
                        "SELECT COALESCE(MAX(id), 0) + 1 AS next_id FROM entitlements",
                        &[],
                    )?
                    .one()?
                    .get("next_id")?,
                };
                next_id = Some(id + 1);
                db::execute(
                    "INSERT INTO entitlements (id, organization_id, feature, enabled, source, granted_at) \
                     VALUES ($1, $2, $3, TRUE, $4, $5)",
                    params![id, organization_id, *feature, source, now],
                )?;
                enabled.push((*feature).to_owned());
            }
        }
    }
    for (feature, (id, is_enabled, s)) in &existing {
        if *is_enabled && s != "manual" && !features.contains(&feature.as_str()) {
            db::execute(
                "UPDATE entitlements SET enabled = FALSE WHERE id = $1",
                params![*id],
            )?;
            disabled.push(feature.clone());
        }
    }
    Ok((enabled, disabled))
}
