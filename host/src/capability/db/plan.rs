//! The `db` section of a dry run's plan: rows each statement changed inside the
//! rolled-back transaction, per table it writes, summed over the statement's journal
//! records (one record may stand for many executions).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::capability::plan::to_json;
use crate::capability::{PlanEntry, PlanSection};
use crate::state::CallRecord;

/// Rows one statement changed, per table it writes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowChanges {
    pub step: String,
    pub table: String,
    pub statement: String,
    pub sql: String,
    pub executions: u64,
    pub rows: u64,
}

/// (step index, table, sql).
type ChangeKey = (i64, String, String);

/// Totals of one key, and when it was first seen (the plan keeps call order).
struct Totals {
    order: usize,
    executions: u64,
    rows: u64,
    statement: String,
}

pub(super) fn plan(calls: &[&CallRecord], step_name: &dyn Fn(i64) -> String) -> PlanSection {
    let mut changes: BTreeMap<ChangeKey, Totals> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.ok) {
        let Some(tables) = call.params["writes"].as_array() else {
            continue;
        };
        let rows = call
            .response
            .as_ref()
            .and_then(|r| r["affected"].as_u64().or_else(|| r["rows"].as_u64()))
            .unwrap_or(0);
        let text = |key: &str| call.params[key].as_str().unwrap_or_default().to_string();
        let executions = call.params["executions"].as_u64().unwrap_or(1);
        for table in tables.iter().filter_map(Value::as_str) {
            let order = changes.len();
            let totals = changes
                .entry((call.step_index, table.to_string(), text("sql")))
                .or_insert_with(|| Totals {
                    order,
                    executions: 0,
                    rows: 0,
                    statement: text("statement"),
                });
            totals.executions += executions;
            totals.rows += rows;
        }
    }
    let mut changes: Vec<_> = changes.into_iter().collect();
    changes.sort_by_key(|(_, totals)| totals.order);
    let entries = changes
        .into_iter()
        .map(|((index, table, sql), totals)| {
            let change = RowChanges {
                step: step_name(index),
                table,
                statement: totals.statement,
                sql,
                executions: totals.executions,
                rows: totals.rows,
            };
            PlanEntry {
                line: format!(
                    "{:>6} row(s) {:<7} {:<24}",
                    change.rows, change.statement, change.table
                ),
                detail: format!(
                    "step {} · {}× {}",
                    change.step,
                    change.executions,
                    one_line(&change.sql, 80)
                ),
                json: to_json(&change),
            }
        })
        .collect();
    PlanSection {
        key: "db",
        title: "database",
        note: "rolled back",
        entries,
    }
}

/// A statement on one line, cut at `max` characters.
fn one_line(sql: &str, max: usize) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}
