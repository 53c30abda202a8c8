//! The input of a rollback plugin: the step to undo, as the host hands it over.
//!
//! A runbook step may name a `[steps.rollback]` plugin. When a later step fails, the host
//! runs it with `{"step": {"id", "input", "output", "calls"}, ...the rollback's own input
//! keys}`: the step's input and output and its call journal, one entry per capability
//! call in order. A rollback plugin reads what the step did from there (effects first:
//! their responses are what Stripe really did).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Everything a rollback plugin receives. Plugins usually embed [`RolledBackStep`] in
/// their own input type instead, next to the keys their `[steps.rollback] input` sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollbackInput {
    /// The rendered `[steps.rollback] input`. `step` is reserved: the host's own wins.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    pub step: RolledBackStep,
}

/// The step being rolled back.
///
/// Fields default when absent so a plugin built against this shape still reads an input
/// that lacks one; the host always sends all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolledBackStep {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub input: Value,
    /// Null when the step produced none.
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub calls: Vec<JournalCall>,
}

/// One capability call of the step, from the host's call journal.
// Field order is the wire order of the host's journal entries; keep it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalCall {
    /// The step attempt that made the call.
    #[serde(default)]
    pub attempt: i64,
    /// `stripe`, `db`, `email` or `webhook`.
    #[serde(default)]
    pub interface: String,
    /// The operation (`refunds.create`), the statement kind, the template, ...
    #[serde(default)]
    pub operation: String,
    /// The request, secrets and card data redacted.
    #[serde(default)]
    pub params: Value,
    #[serde(default)]
    pub decision: Decision,
    /// The call succeeded.
    #[serde(default)]
    pub ok: bool,
    /// What the other side answered (Stripe's object for a Stripe call); null when the
    /// journal keeps none.
    #[serde(default)]
    pub response: Value,
    /// Why the call failed; null when it did not.
    #[serde(default)]
    pub error: Option<String>,
}

/// What the host decided about a call; spelled as the host's journal spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Granted and carried out. Also what an entry without a decision reads as: older
    /// readers treated such a call as made, and so does this one.
    #[default]
    Allowed,
    /// Refused by the step's grant.
    Denied,
    /// Answered from an earlier attempt's journal: the same effect again, not a second one.
    Replayed,
    /// Not carried out because the run is a dry run (answered with a placeholder).
    DryRun,
    /// A decision a newer host made that this copy does not know. Never sent.
    #[serde(other)]
    Unknown,
}

impl RolledBackStep {
    /// The step's successful Stripe calls of `operation`, in order, without the replays
    /// of a later attempt (the effect they answer is listed once, where it was made).
    pub fn stripe_calls<'a>(&'a self, operation: &'a str) -> impl Iterator<Item = &'a JournalCall> {
        self.stripe_effects()
            .filter(move |c| c.operation == operation)
    }

    /// The step's successful Stripe calls of any operation, in order, without replays.
    pub fn stripe_effects(&self) -> impl Iterator<Item = &JournalCall> {
        self.calls
            .iter()
            .filter(|c| c.ok && c.decision != Decision::Replayed && c.interface == "stripe")
    }
}

impl JournalCall {
    /// The call was not made because the run is a dry run (it was answered with a
    /// placeholder): nothing happened in Stripe.
    pub fn is_dry_run(&self) -> bool {
        self.decision == Decision::DryRun || crate::stripe::is_dry_run(&self.response)
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
                   "response": {"id": "dryrun_refund_3", "dry_run": true}, "ok": true, "error": null},
                  {"interface": "stripe", "operation": "subscriptions.cancel", "ok": true,
                   "response": {"id": "sub_1"}, "some_future_field": 1}
                ]}"#,
        )
        .unwrap();
        let refunds: Vec<_> = step.stripe_calls("refunds.create").collect();
        assert_eq!(refunds.len(), 2, "failed calls and replays are not effects");
        assert_eq!(refunds[0].response["id"], "re_1");
        assert!(!refunds[0].is_dry_run());
        assert!(refunds[1].is_dry_run());
        assert_eq!(step.stripe_effects().count(), 3);
        let empty: RolledBackStep = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.stripe_calls("refunds.create").count(), 0);
    }

    #[test]
    fn decisions_are_spelled_as_the_journal_spells_them() {
        for (decision, text) in [
            (Decision::Allowed, "allowed"),
            (Decision::Denied, "denied"),
            (Decision::Replayed, "replayed"),
            (Decision::DryRun, "dry-run"),
        ] {
            assert_eq!(serde_json::to_value(decision).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<Decision>(text.into()).unwrap(),
                decision
            );
        }
        let newer: Decision = serde_json::from_value("deferred".into()).unwrap();
        assert_eq!(
            newer,
            Decision::Unknown,
            "a newer host's decision is not an error"
        );
    }

    #[test]
    fn the_input_keeps_the_rollbacks_own_keys_beside_the_step() {
        let text = r#"{"reason":"payment failed","step":{"calls":[{"attempt":1,"decision":"allowed","error":null,"interface":"stripe","ok":true,"operation":"refunds.create","params":{"charge":"ch_1"},"response":{"id":"re_1"}}],"id":"refund","input":{"n":1},"output":null}}"#;
        let input: RollbackInput = serde_json::from_str(text).unwrap();
        assert_eq!(input.extra["reason"], "payment failed");
        assert_eq!(input.step.calls[0].decision, Decision::Allowed);
        assert_eq!(input.step.output, Value::Null);
        // Through a `Value` (sorted keys, as the host writes it) the text is unchanged.
        assert_eq!(serde_json::to_value(&input).unwrap().to_string(), text);
    }
}
