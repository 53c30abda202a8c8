//! Verification after "Monthly Quota Reset" (the source runbook's expected outcome):
//! all quotas of the reset dimension are at 0 with `last_reset_at` set, and the other
//! dimensions (sites, posts, users, ...) are unchanged. "Unchanged" is checked against the
//! per-dimension snapshot the reset step took before it ran. Read-only; any failed check
//! fails the step with code `verification-failed`.

use std::collections::BTreeMap;

use runbook_sdk::{Failure, Procedure, db, params, register_plugin};
use serde::{Deserialize, Serialize};

const SNAPSHOT: &str = "SELECT dimension, COUNT(*) AS quota_rows, \
     CAST(COALESCE(SUM(current_usage), 0) AS BIGINT) AS total_usage, \
     COALESCE(SUM(CASE WHEN current_usage > 0 THEN 1 ELSE 0 END), 0) AS rows_in_use \
     FROM usage_quotas GROUP BY dimension ORDER BY dimension";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_dimension")]
    dimension: String,
    /// The reset step's `before` snapshot.
    before: BTreeMap<String, DimensionStats>,
}

fn default_dimension() -> String {
    "api_calls".into()
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct DimensionStats {
    quota_rows: i64,
    total_usage: i64,
    rows_in_use: i64,
}

impl std::fmt::Display for DimensionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let DimensionStats {
            quota_rows,
            total_usage,
            rows_in_use,
        } = self;
        write!(
            f,
            "{quota_rows} rows, total usage {total_usage}, {rows_in_use} in use"
        )
    }
}

fn rows(stats: Option<&DimensionStats>) -> String {
    stats.map_or("no rows".into(), |s| format!("{} rows", s.quota_rows))
}

#[derive(Serialize)]
struct Output {
    dimension: String,
    ok: bool,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

struct QuotaVerify;

impl Procedure for QuotaVerify {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let dim = input.dimension.as_str();
        if !input.before.contains_key(dim) {
            return Err(Failure::invalid_input(format!(
                "the before snapshot has no dimension {dim:?}: was it the reset step's output?"
            )));
        }
        let mut now = BTreeMap::new();
        for row in &db::query(SNAPSHOT, &[])? {
            let stats = DimensionStats {
                quota_rows: row.get("quota_rows")?,
                total_usage: row.get("total_usage")?,
                rows_in_use: row.get("rows_in_use")?,
            };
            now.insert(row.get::<String>("dimension")?, stats);
        }
        let in_use: Vec<String> = db::query(
            "SELECT organization_id, current_usage FROM usage_quotas \
             WHERE dimension = $1 AND current_usage > 0 ORDER BY organization_id LIMIT 10",
            params![dim],
        )?
        .iter()
        .map(|r| {
            Ok(format!(
                "{}={}",
                r.get::<i64>("organization_id")?,
                r.get::<i64>("current_usage")?
            ))
        })
        .collect::<Result<_, Failure>>()?;
        let never_reset: i64 = db::query(
            "SELECT COUNT(*) AS n FROM usage_quotas WHERE dimension = $1 AND last_reset_at IS NULL",
            params![dim],
        )?
        .one()?
        .get("n")?;

        let mut checks = Vec::new();
        let mut check =
            |check: String, ok: bool, detail: String| checks.push(Check { check, ok, detail });
        let was = input.before.get(dim);
        let is = now.get(dim);
        check(
            format!("{dim}: no quota has usage above 0"),
            in_use.is_empty(),
            if in_use.is_empty() {
                "none".into()
            } else {
                format!("organization=usage: {}", in_use.join(", "))
            },
        );
        check(
            format!("{dim}: every quota has last_reset_at"),
            never_reset == 0,
            format!("{never_reset} without"),
        );
        check(
            format!("{dim}: no quota rows appeared or vanished"),
            was.map(|s| s.quota_rows) == is.map(|s| s.quota_rows),
            format!("before {}, now {}", rows(was), rows(is)),
        );
        for (other, before) in input.before.iter().filter(|(d, _)| d.as_str() != dim) {
            let after = now.get(other);
            check(
                format!("{other}: unchanged"),
                after == Some(before),
                format!(
                    "before {before}, now {}",
                    after.map_or("absent".into(), |a| a.to_string())
                ),
            );
        }
        for new in now.keys().filter(|d| !input.before.contains_key(*d)) {
            check(
                format!("{new}: did not exist before"),
                false,
                "dimension appeared".into(),
            );
        }

        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({})", c.check, c.detail))
            .collect();
        if !failed.is_empty() {
            return Err(Failure::new("verification-failed", failed.join("; ")));
        }
        Ok(Output {
            dimension: input.dimension,
            ok: true,
            checks,
        })
    }
}

register_plugin!(QuotaVerify);
