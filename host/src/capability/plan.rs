//! A capability's section of a dry run's plan: what its calls would have done, as JSON
//! for scripts and as lines for a person. `exec/` gathers the sections from the registry;
//! each capability renders its own.

use serde::Serialize;
use serde_json::Value;

use crate::state::{CallDecision, CallRecord};

/// One capability's planned effects.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSection {
    /// The key under `plan` in `--json` output (`db`, `stripe`, `webhooks`, `emails`).
    pub key: &'static str,
    /// The heading in the terminal plan.
    pub title: &'static str,
    /// What became of these effects in the dry run: "rolled back", "not sent".
    pub note: &'static str,
    pub entries: Vec<PlanEntry>,
}

/// One planned effect.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    /// The entry in `--json` output; its shape is the capability's (an API boundary).
    pub json: Value,
    /// What a person reads first.
    pub line: String,
    /// Where it comes from (step, statement), shown dimmed after the line.
    pub detail: String,
}

/// A call that would have been made: an operation and its parameters.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedCall {
    pub step: String,
    pub operation: String,
    pub params: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PlannedCall {
    pub fn entry(self) -> PlanEntry {
        PlanEntry {
            line: format!("{} {}", self.operation, self.params),
            detail: format!("step {}", self.step),
            json: to_json(&self),
        }
    }
}

/// The section of an interface whose every dry-run call is planned as it was asked
/// (Stripe writes, webhook deliveries): reads went through and are not effects.
pub fn planned_calls(
    key: &'static str,
    title: &'static str,
    calls: &[&CallRecord],
    step_name: &dyn Fn(i64) -> String,
) -> PlanSection {
    let entries = calls
        .iter()
        .filter(|call| call.decision == CallDecision::DryRun)
        .map(|call| {
            PlannedCall {
                step: step_name(call.step_index),
                operation: call.operation.clone(),
                params: call.params.clone(),
                reason: None,
            }
            .entry()
        })
        .collect();
    PlanSection {
        key,
        title,
        note: "not sent",
        entries,
    }
}

/// Plan entries are plain data; serialising them cannot fail.
pub fn to_json(entry: &impl Serialize) -> Value {
    serde_json::to_value(entry).unwrap_or(Value::Null)
}
