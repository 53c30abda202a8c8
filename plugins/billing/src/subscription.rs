//! Rows of `subscriptions` and the writes every plan-changing procedure shares.

use runbook_sdk::{Failure, Timestamp, Value, db, params};
use serde::{Deserialize, Serialize};

/// A subscription counts as live (the organization has its tier) while it is one of these.
pub const LIVE_STATUSES: [&str; 3] = ["active", "past_due", "trialing"];

const COLUMNS: &str = "id, organization_id, stripe_subscription_id, plan_tier, billing_cycle, \
     amount_cents, currency, status, current_period_end, cancel_at_period_end, created_at, \
     updated_at, canceled_at";

/// One row of `subscriptions`, read with [`Row::decode`](runbook_sdk::Row::decode): each
/// field is one of the columns every query here selects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    pub id: i64,
    pub organization_id: i64,
    pub stripe_subscription_id: String,
    pub plan_tier: String,
    pub billing_cycle: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub current_period_end: Option<Timestamp>,
    pub cancel_at_period_end: bool,
    pub created_at: Timestamp,
    /// For a past-due subscription: when the payment failed (the grace period starts).
    pub updated_at: Timestamp,
    pub canceled_at: Option<Timestamp>,
}

impl Subscription {
    pub fn is_live(&self) -> bool {
        LIVE_STATUSES.contains(&self.status.as_str())
    }
}

/// Subscriptions matching `filter` (SQL after `WHERE`, the plugin's own text), oldest first.
///
/// Touches: select `subscriptions`.
fn select(filter: &str, params: &[Value]) -> Result<Vec<Subscription>, Failure> {
    let rows = db::query(
        &format!("SELECT {COLUMNS} FROM subscriptions WHERE {filter} ORDER BY created_at, id"),
        params,
    )?;
    Ok(rows.decode()?)
}

/// The organization's live subscription (the newest, should there be several).
///
/// Touches: select `subscriptions`.
pub fn current(organization_id: i64) -> Result<Option<Subscription>, Failure> {
    Ok(select(
        "organization_id = $1 AND status IN ('active', 'past_due', 'trialing')",
        params![organization_id],
    )?
    .pop())
}

/// Every subscription of the organization, whatever its status.
///
/// Touches: select `subscriptions`.
pub fn of_organization(organization_id: i64) -> Result<Vec<Subscription>, Failure> {
    select("organization_id = $1", params![organization_id])
}

/// Every live subscription.
///
/// Touches: select `subscriptions`.
pub fn live() -> Result<Vec<Subscription>, Failure> {
    select("status IN ('active', 'past_due', 'trialing')", &[])
}

/// Every past-due subscription.
///
/// Touches: select `subscriptions`.
pub fn past_due() -> Result<Vec<Subscription>, Failure> {
    select("status = 'past_due'", &[])
}

/// Record that subscription `id` was canceled at `at` (status `canceled`, `canceled_at`
/// and `updated_at` set together, as the table's CHECK requires).
///
/// Touches: update `subscriptions`.
pub fn mark_canceled(id: i64, at: &Timestamp) -> Result<(), Failure> {
    db::execute(
        "UPDATE subscriptions SET status = 'canceled', canceled_at = $1, updated_at = $1 \
         WHERE id = $2",
        params![at, id],
    )?;
    Ok(())
}

/// Record that past-due subscription `id` was paid and is `active` again at `at`.
///
/// Touches: update `subscriptions`.
pub fn mark_active(id: i64, at: &Timestamp) -> Result<(), Failure> {
    db::execute(
        "UPDATE subscriptions SET status = 'active', updated_at = $1 WHERE id = $2",
        params![at, id],
    )?;
    Ok(())
}
