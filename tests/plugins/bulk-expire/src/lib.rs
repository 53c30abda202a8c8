//! Benchmark workload: the database half of "Process Grace Period Expirations" (seed 000)
//! over as many subscriptions as the database holds — select the expired past-due
//! subscriptions page by page, cancel each, move its organization to free with free-tier
//! quotas, and audit every cancellation. No Stripe calls: the bulk benchmark measures the
//! engine against a native sqlx program doing the same writes (`host/benches/bulk.rs`),
//! not Stripe.

mod sql;

use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, Timestamp, audit, db, params, register_plugin};
use serde::{Deserialize, Serialize};

use sql::{CANCEL_SQL, DOWNGRADE_SQL, PAGE_SQL, QUOTAS_SQL};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Subscriptions past due since this instant or earlier have run out of grace.
    cutoff: String,
    /// The time written as `canceled_at`.
    now: String,
    /// Subscriptions per page.
    #[serde(default = "default_page")]
    page: i64,
}

fn default_page() -> i64 {
    500
}

#[derive(Serialize)]
struct Output {
    canceled: u64,
    quota_rows: u64,
    pages: u64,
}

struct BulkExpire;

impl Procedure for BulkExpire {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let parse = |what: &str, text: &str| {
            Timestamp::parse(text)
                .ok_or_else(|| Failure::new("invalid-input", format!("{what}: {text:?}")))
        };
        let cutoff = parse("cutoff", &input.cutoff)?;
        let now = parse("now", &input.now)?;
        if input.page < 1 {
            return Err(Failure::new("invalid-input", "page must be at least 1"));
        }
        let mut out = Output {
            canceled: 0,
            quota_rows: 0,
            pages: 0,
        };
        let mut after = 0i64;
        loop {
            let page = db::query(PAGE_SQL, params![&cutoff, after, input.page])?;
            out.pages += 1;
            for row in page.iter() {
                let id: i64 = row.get("id")?;
                let organization_id: i64 = row.get("organization_id")?;
                let stripe_id: String = row.get("stripe_subscription_id")?;
                let tier: String = row.get("plan_tier")?;
                db::execute(CANCEL_SQL, params![&now, id])?;
                db::execute(DOWNGRADE_SQL, params![&now, organization_id])?;
                out.quota_rows += db::execute(QUOTAS_SQL, params![organization_id])?;
                audit::record_json(
                    "subscription.canceled",
                    &format!("subscription:{stripe_id}"),
                    &json!({
                        "organization_id": organization_id,
                        "reason": "grace_period_expired",
                        "plan_tier": tier,
                    }),
                );
                out.canceled += 1;
                after = id;
            }
            if (page.len() as i64) < input.page {
                return Ok(out);
            }
        }
    }
}

register_plugin!(BulkExpire);
