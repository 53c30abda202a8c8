//! The plan of a dry run: every effect the run would have had, gathered from its call
//! journal — row changes per table and statement, Stripe writes, webhook deliveries and
//! emails.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::state::{CallDecision, CallRecord};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Plan {
    pub db: Vec<RowChanges>,
    pub stripe: Vec<PlannedCall>,
    pub webhooks: Vec<PlannedCall>,
    pub emails: Vec<PlannedEmail>,
    /// Calls the grants refused during the dry run: they would be refused for real too.
    pub denied: Vec<PlannedCall>,
    /// Approval steps a real run would stop at.
    pub approvals: Vec<String>,
}

/// Rows one statement changed (inside the rolled-back transaction), per table it writes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowChanges {
    pub step: String,
    pub table: String,
    pub statement: String,
    pub sql: String,
    pub executions: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedCall {
    pub step: String,
    pub operation: String,
    pub params: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedEmail {
    pub step: String,
    pub to: Vec<String>,
    pub subject: String,
    pub template: String,
}

/// (step index, table, sql).
type ChangeKey = (i64, String, String);
/// (first-seen order, executions, rows, statement kind).
type ChangeTotals = (usize, u64, u64, String);

impl Plan {
    /// `step_ids[i]` names step index `i`.
    pub fn from_calls(calls: &[CallRecord], step_ids: &[String]) -> Plan {
        let step = |i: i64| {
            step_ids
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{i}"))
        };
        let mut plan = Plan::default();
        let mut db: BTreeMap<ChangeKey, ChangeTotals> = BTreeMap::new();
        for call in calls {
            if call.decision == CallDecision::Denied {
                plan.denied.push(PlannedCall {
                    step: step(call.step_index),
                    operation: format!("{}.{}", call.interface, call.operation),
                    params: call.params.clone(),
                    reason: call.error.clone(),
                });
                continue;
            }
            match call.interface.as_str() {
                "db" if call.ok => {
                    let Some(tables) = call.params["writes"].as_array() else {
                        continue;
                    };
                    let rows = call
                        .response
                        .as_ref()
                        .and_then(|r| r["affected"].as_u64().or_else(|| r["rows"].as_u64()))
                        .unwrap_or(0);
                    let sql = call.params["sql"].as_str().unwrap_or_default().to_string();
                    let statement = call.params["statement"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    // A journal record may stand for many executions of one statement.
                    let executions = call.params["executions"].as_u64().unwrap_or(1);
                    for table in tables.iter().filter_map(Value::as_str) {
                        let order = db.len();
                        let entry = db
                            .entry((call.step_index, table.to_string(), sql.clone()))
                            .or_insert((order, 0, 0, statement.clone()));
                        entry.1 += executions;
                        entry.2 += rows;
                    }
                }
                "stripe" if call.decision == CallDecision::DryRun => {
                    plan.stripe.push(PlannedCall {
                        step: step(call.step_index),
                        operation: call.operation.clone(),
                        params: call.params.clone(),
                        reason: None,
                    })
                }
                "webhook" if call.decision == CallDecision::DryRun => {
                    plan.webhooks.push(PlannedCall {
                        step: step(call.step_index),
                        operation: call.operation.clone(),
                        params: call.params.clone(),
                        reason: None,
                    })
                }
                "email" if call.decision == CallDecision::DryRun => {
                    plan.emails.push(PlannedEmail {
                        step: step(call.step_index),
                        to: call.params["to"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        subject: call.params["subject"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        template: call.params["template"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    })
                }
                _ => {}
            }
        }
        let mut rows: Vec<_> = db.into_iter().collect();
        rows.sort_by_key(|(_, (order, ..))| *order);
        plan.db = rows
            .into_iter()
            .map(
                |((index, table, sql), (_, executions, rows, statement))| RowChanges {
                    step: step(index),
                    table,
                    statement,
                    sql,
                    executions,
                    rows,
                },
            )
            .collect();
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
            && self.stripe.is_empty()
            && self.webhooks.is_empty()
            && self.emails.is_empty()
    }
}
