//! The input of a rollback plugin: the step to undo, as the host hands it over.
//!
//! A runbook step may name a `[steps.rollback]` plugin. When a later step fails, the host
//! runs it with `{"step": {"id", "input", "output", "calls"}, ...extra keys}`: the step's
//! input and output and its call journal, one entry per capability call in order. A
//! rollback plugin reads what the step did from there (effects first: their responses are
//! what Stripe really did), undoes what can be undone, and reports exactly what it undid
//! and what it could not.

use serde::Deserialize;
use serde_json::Value;

/// The step being rolled back.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RolledBackStep {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub calls: Vec<JournalCall>,
}

/// One capability call of the step, from the host's call journal. Only the fields
/// rollbacks read; the host may send more.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JournalCall {
    /// `stripe`, `db`, `email` or `webhook`.
    #[serde(default)]
    pub interface: String,
    /// The operation (`refunds.create`), the statement kind, the template, ...
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub params: Value,
    /// What the other side answered (Stripe's object for a Stripe call); null when
    /// the journal keeps none.
    #[serde(default)]
    pub response: Value,
    /// The call succeeded.
    #[serde(default)]
    pub ok: bool,
    /// `allowed`, `denied`, `replayed` (answered from an earlier attempt's journal: the
    /// same effect again, not a second one) or `dry-run`.
    #[serde(default)]
    pub decision: String,
    /// The step attempt that made the call.
    #[serde(default)]
    pub attempt: i64,
}

impl RolledBackStep {
    /// The step's successful Stripe calls of `operation`, in order, without the replays
    /// of a later attempt (the effect they answer is listed once, where it was made).
    pub fn stripe_calls<'a>(&'a self, operation: &'a str) -> impl Iterator<Item = &'a JournalCall> {
        self.calls.iter().filter(move |c| {
            c.ok && c.decision != "replayed" && c.interface == "stripe" && c.operation == operation
        })
    }
}

impl JournalCall {
    /// The call was not made because the run is a dry run (it was answered with a
    /// placeholder): nothing happened in Stripe.
    pub fn is_dry_run(&self) -> bool {
        self.decision == "dry-run" || self.response.get("dry_run") == Some(&Value::Bool(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hosts_step_and_filters_calls() {
        let step: RolledBackStep = serde_json::from_str(
            r#"{"id": "refund", "input": {"organization_id": 2}, "output": {},
                "calls": [
                  {"interface": "db", "operation": "query", "ok": true, "response": null},
                  {"interface": "stripe", "operation": "refunds.create", "params": {"charge": "ch_1"},
                   "response": {"id": "re_1", "amount": 9900}, "ok": true},
                  {"interface": "stripe", "operation": "refunds.create", "params": {"charge": "ch_2"},
                   "response": {"error": "declined"}, "ok": false},
                  {"interface": "stripe", "operation": "refunds.create", "decision": "replayed",
                   "response": {"id": "re_1", "amount": 9900}, "ok": true, "attempt": 2},
                  {"interface": "stripe", "operation": "refunds.create", "decision": "dry-run",
                   "response": {"id": "dryrun_refund_3", "dry_run": true}, "ok": true, "error": null}
                ]}"#,
        )
        .unwrap();
        let refunds: Vec<_> = step.stripe_calls("refunds.create").collect();
        assert_eq!(refunds.len(), 2, "failed calls and replays are not effects");
        assert_eq!(refunds[0].response["id"], "re_1");
        assert!(!refunds[0].is_dry_run());
        assert!(refunds[1].is_dry_run());
        let empty: RolledBackStep = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.stripe_calls("refunds.create").count(), 0);
    }
}
