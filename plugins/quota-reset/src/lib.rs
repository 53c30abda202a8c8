//! "Monthly Quota Reset": set `current_usage` to 0 and stamp `last_reset_at` on every
//! organization's quota of one dimension (`api_calls` unless told otherwise), leaving the
//! other dimensions alone.
//!
//! Outputs per-dimension snapshots taken before and after the reset, so the next step
//! (`quota-verify`) can check that only the reset dimension changed, and the source
//! runbook's verification query as a sample. One `quota.reset` audit record covers the
//! whole reset: a record per organization would swamp the log at 100k organizations; the
//! organizations are listed in it only when there are few.

use std::collections::BTreeMap;

use runbook_sdk::{Failure, Procedure, Timestamp, audit, db, log, params, register_plugin};
use serde::{Deserialize, Serialize};

const DIMENSIONS: [&str; 5] = ["sites", "posts", "users", "storage_bytes", "api_calls"];
/// Organizations listed by id in the audit record up to this many.
const AUDIT_LIST_MAX: usize = 50;

const SNAPSHOT: &str = "SELECT dimension, COUNT(*) AS quota_rows, \
     CAST(COALESCE(SUM(current_usage), 0) AS BIGINT) AS total_usage, \
     COALESCE(SUM(CASE WHEN current_usage > 0 THEN 1 ELSE 0 END), 0) AS rows_in_use \
     FROM usage_quotas GROUP BY dimension ORDER BY dimension";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_dimension")]
    dimension: String,
    /// Rows of the verification query to include in the output.
    #[serde(default = "default_sample")]
    sample: i64,
}

fn default_dimension() -> String {
    "api_calls".into()
}

fn default_sample() -> i64 {
    10
}

/// Usage of one dimension across all organizations.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DimensionStats {
    pub quota_rows: i64,
    pub total_usage: i64,
    pub rows_in_use: i64,
}

#[derive(Serialize)]
struct Output {
    dimension: String,
    rows_reset: u64,
    organizations_in_use: usize,
    before: BTreeMap<String, DimensionStats>,
    after: BTreeMap<String, DimensionStats>,
    /// `SELECT organization_id, dimension, current_usage, last_reset_at ... LIMIT n`.
    verification_sample: Vec<Sample>,
}

#[derive(Serialize)]
struct Sample {
    organization_id: i64,
    dimension: String,
    current_usage: i64,
    last_reset_at: Option<Timestamp>,
}

struct QuotaReset;

impl Procedure for QuotaReset {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let dim = input.dimension.as_str();
        if !DIMENSIONS.contains(&dim) {
            return Err(Failure::invalid_input(format!(
                "unknown dimension {dim:?}; one of {}",
                DIMENSIONS.join(", ")
            )));
        }
        if !(0..=1000).contains(&input.sample) {
            return Err(Failure::invalid_input("sample must be between 0 and 1000"));
        }

        let before = snapshot()?;
        let in_use: Vec<i64> = db::query(
            "SELECT organization_id FROM usage_quotas \
             WHERE dimension = $1 AND current_usage > 0 ORDER BY organization_id",
            params![dim],
        )?
        .iter()
        .map(|r| r.get("organization_id"))
        .collect::<Result<_, _>>()?;

        let rows_reset = db::execute(
            "UPDATE usage_quotas SET current_usage = 0, last_reset_at = CURRENT_TIMESTAMP \
             WHERE dimension = $1",
            params![dim],
        )?;

        let mut detail = serde_json::json!({
            "dimension": dim,
            "rows_reset": rows_reset,
            "organizations_in_use": in_use.len(),
            "usage_before": before.get(dim).map_or(0, |s| s.total_usage),
        });
        if in_use.len() <= AUDIT_LIST_MAX {
            detail["organization_ids"] = serde_json::json!(in_use);
        }
        audit::record_json("quota.reset", &format!("usage_quotas:{dim}"), &detail);
        log::log_with(
            log::Level::Info,
            "quotas reset",
            &[("dimension", &dim), ("rows", &rows_reset)],
        );

        let mut verification_sample = Vec::new();
        for row in &db::query(
            "SELECT organization_id, dimension, current_usage, last_reset_at \
             FROM usage_quotas WHERE dimension = $1 ORDER BY organization_id LIMIT $2",
            params![dim, input.sample],
        )? {
            verification_sample.push(Sample {
                organization_id: row.get("organization_id")?,
                dimension: row.get("dimension")?,
                current_usage: row.get("current_usage")?,
                last_reset_at: row.get("last_reset_at")?,
            });
        }

        Ok(Output {
            dimension: input.dimension,
            rows_reset,
            organizations_in_use: in_use.len(),
            before,
            after: snapshot()?,
            verification_sample,
        })
    }
}

fn snapshot() -> Result<BTreeMap<String, DimensionStats>, Failure> {
    let mut stats = BTreeMap::new();
    for row in &db::query(SNAPSHOT, &[])? {
        stats.insert(
            row.get("dimension")?,
            DimensionStats {
                quota_rows: row.get("quota_rows")?,
                total_usage: row.get("total_usage")?,
                rows_in_use: row.get("rows_in_use")?,
            },
        );
    }
    Ok(stats)
}

register_plugin!(QuotaReset);
