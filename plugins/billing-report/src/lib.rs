//! "Generate Billing Reports": MRR by tier (active subscriptions, annual amounts over 12),
//! churn by month (canceled subscriptions and their revenue) and revenue by month (paid
//! invoices), for the `months` months up to and including `as_of` (default: the current
//! month by the database's clock). MRR is the current state, not as of `as_of`.
//!
//! Months are grouped in SQL (the one dialect-specific expression, see
//! `Dialect::month_of`) and windowed here, which avoids date arithmetic in SQL. Months
//! without activity are listed with zeros so the series has no gaps. Read-only.

use std::collections::BTreeMap;

use runbook_sdk::{Failure, Procedure, db, register_plugin};
use serde::{Deserialize, Serialize};

const TIERS: [&str; 4] = ["free", "starter", "pro", "enterprise"];

const MRR: &str = "SELECT plan_tier, COUNT(*) AS subscriptions, \
     CAST(SUM(CASE WHEN billing_cycle = 'annual' THEN amount_cents / 12 \
              ELSE amount_cents END) AS BIGINT) AS mrr_cents \
     FROM subscriptions WHERE status = 'active' GROUP BY plan_tier";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_months")]
    months: i64,
    /// `YYYY-MM`; empty or null means the current month.
    #[serde(default)]
    as_of: Option<String>,
}

fn default_months() -> i64 {
    12
}

#[derive(Serialize)]
struct Report {
    as_of: String,
    from_month: String,
    months: i64,
    mrr: Mrr,
    churn: Series<Churn>,
    revenue: Series<Revenue>,
}

#[derive(Serialize)]
struct Mrr {
    by_tier: Vec<TierMrr>,
    total_subscriptions: i64,
    total_mrr_cents: i64,
    arr_cents: i64,
}

#[derive(Serialize)]
struct TierMrr {
    plan_tier: String,
    subscriptions: i64,
    mrr_cents: i64,
}

/// Newest month first, like the source runbook's reports.
#[derive(Serialize)]
struct Series<T> {
    by_month: Vec<T>,
    totals: T,
}

#[derive(Serialize, Default, Clone)]
struct Churn {
    month: String,
    churned_subscriptions: i64,
    /// Per billing cycle, as in the source runbook (an annual plan counts its annual price).
    churned_revenue_cents: i64,
    /// Normalised to monthly: the MRR lost.
    churned_mrr_cents: i64,
}

#[derive(Serialize, Default, Clone)]
struct Revenue {
    month: String,
    invoices: i64,
    revenue_cents: i64,
}

struct BillingReport;

impl Procedure for BillingReport {
    type Input = Input;
    type Output = Report;

    fn run(input: Input) -> Result<Report, Failure> {
        if !(1..=120).contains(&input.months) {
            return Err(Failure::invalid_input("months must be between 1 and 120"));
        }
        let dialect = db::dialect();
        let as_of = match input.as_of.filter(|m| !m.trim().is_empty()) {
            Some(m) => m,
            None => db::query(&format!("SELECT {} AS month", dialect.current_month()), &[])?
                .one()?
                .get("month")?,
        };
        let window = month_window(&as_of, input.months)
            .ok_or_else(|| Failure::invalid_input(format!("as_of {as_of:?} is not YYYY-MM")))?;

        let mut by_tier = Vec::new();
        for row in &db::query(MRR, &[])? {
            by_tier.push(TierMrr {
                plan_tier: row.get("plan_tier")?,
                subscriptions: row.get("subscriptions")?,
                mrr_cents: row.get("mrr_cents")?,
            });
        }
        by_tier.sort_by_key(|t| TIERS.iter().position(|x| *x == t.plan_tier));
        let total_mrr_cents = by_tier.iter().map(|t| t.mrr_cents).sum();

        let mut churn: BTreeMap<String, Churn> = BTreeMap::new();
        let churn_sql = format!(
            "SELECT {} AS month, COUNT(*) AS churned, CAST(SUM(amount_cents) AS BIGINT) AS revenue, \
             CAST(SUM(CASE WHEN billing_cycle = 'annual' THEN amount_cents / 12 \
                      ELSE amount_cents END) AS BIGINT) AS mrr \
             FROM subscriptions WHERE status = 'canceled' AND canceled_at IS NOT NULL \
             GROUP BY 1",
            dialect.month_of("canceled_at")
        );
        for row in &db::query(&churn_sql, &[])? {
            let month: String = row.get("month")?;
            churn.insert(
                month.clone(),
                Churn {
                    month,
                    churned_subscriptions: row.get("churned")?,
                    churned_revenue_cents: row.get("revenue")?,
                    churned_mrr_cents: row.get("mrr")?,
                },
            );
        }

        let mut revenue: BTreeMap<String, Revenue> = BTreeMap::new();
        let revenue_sql = format!(
            "SELECT {} AS month, COUNT(*) AS invoices, \
             CAST(SUM(amount_paid_cents) AS BIGINT) AS revenue \
             FROM invoices WHERE status = 'paid' AND paid_at IS NOT NULL GROUP BY 1",
            dialect.month_of("paid_at")
        );
        for row in &db::query(&revenue_sql, &[])? {
            let month: String = row.get("month")?;
            revenue.insert(
                month.clone(),
                Revenue {
                    month,
                    invoices: row.get("invoices")?,
                    revenue_cents: row.get("revenue")?,
                },
            );
        }

        let churn = series(
            &window,
            churn,
            |m| Churn {
                month: m.into(),
                ..Default::default()
            },
            |t, c| {
                t.churned_subscriptions += c.churned_subscriptions;
                t.churned_revenue_cents += c.churned_revenue_cents;
                t.churned_mrr_cents += c.churned_mrr_cents;
            },
        );
        let revenue = series(
            &window,
            revenue,
            |m| Revenue {
                month: m.into(),
                ..Default::default()
            },
            |t, r| {
                t.invoices += r.invoices;
                t.revenue_cents += r.revenue_cents;
            },
        );
        Ok(Report {
            from_month: window.last().cloned().unwrap_or_default(),
            as_of,
            months: input.months,
            mrr: Mrr {
                total_subscriptions: by_tier.iter().map(|t| t.subscriptions).sum(),
                arr_cents: total_mrr_cents * 12,
                total_mrr_cents,
                by_tier,
            },
            churn,
            revenue,
        })
    }
}

/// The window's months, newest first, with a zero entry where there was no activity,
/// and a totals entry (month = "total").
fn series<T: Clone>(
    window: &[String],
    mut data: BTreeMap<String, T>,
    empty: impl Fn(&str) -> T,
    add: impl Fn(&mut T, &T),
) -> Series<T> {
    let by_month: Vec<T> = window
        .iter()
        .map(|m| data.remove(m).unwrap_or_else(|| empty(m)))
        .collect();
    let mut totals = empty("total");
    for m in &by_month {
        add(&mut totals, m);
    }
    Series { by_month, totals }
}

/// `months` months ending with `as_of` (`YYYY-MM`), newest first.
fn month_window(as_of: &str, months: i64) -> Option<Vec<String>> {
    let (y, m) = as_of.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) {
        return None;
    }
    let last = y * 12 + m - 1;
    Some(
        (0..months)
            .map(|i| last - i)
            .map(|k| format!("{:04}-{:02}", k / 12, k % 12 + 1))
            .collect(),
    )
}

register_plugin!(BillingReport);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cross_years() {
        assert_eq!(
            month_window("2026-02", 3).unwrap(),
            ["2026-02", "2026-01", "2025-12"]
        );
        assert_eq!(month_window("2026-11", 1).unwrap(), ["2026-11"]);
        assert_eq!(month_window("2026-13", 1), None);
        assert_eq!(month_window("26-01", 1), None);
        assert_eq!(month_window("2026-1", 1), None);
    }
}
