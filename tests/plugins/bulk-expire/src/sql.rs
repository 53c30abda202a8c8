// The statements of the bulk benchmark job. Shared verbatim (by `include!`) with the
// native sqlx baseline in `host/benches/bulk.rs`, so both do exactly the same writes.

/// One page of expired past-due subscriptions, by id (keyset pagination: memory stays
/// flat however many there are).
pub const PAGE_SQL: &str = "SELECT id, organization_id, stripe_subscription_id, plan_tier \
     FROM subscriptions WHERE status = 'past_due' AND updated_at <= $1 AND id > $2 \
     ORDER BY id LIMIT $3";

pub const CANCEL_SQL: &str = "UPDATE subscriptions SET status = 'canceled', canceled_at = $1, \
     updated_at = $1 WHERE id = $2";

pub const DOWNGRADE_SQL: &str =
    "UPDATE organizations SET plan_tier = 'free', updated_at = $1 WHERE id = $2";

pub const QUOTAS_SQL: &str = "UPDATE usage_quotas SET quota_limit = (SELECT l.quota_limit \
     FROM plan_limits l WHERE l.plan_tier = 'free' AND l.dimension = usage_quotas.dimension) \
     WHERE organization_id = $1";
