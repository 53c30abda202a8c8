//! Rollback of a refund step (`issue-refund`): says what cannot be undone.
//!
//! Stripe cannot take a refund back, so there is nothing to call: each refund the step
//! made (its successful `refunds.create` calls in the call journal; the step's output
//! when the journal has none) is reported `not_reversible` with its id, charge, amount
//! and currency, and audited as `refund.not_reversible`. The `refunded` payment event the
//! step recorded stays: the money did go back. A dry run's placeholder refunds are
//! nothing to undo. This rollback never fails: it attempts no undo.
//!
//! The input is what the host sends a rollback: `{"step": {"id", "input", "output",
//! "calls"}}`; other keys are ignored, so the host may add context.

use runbook_sdk::rollback::RolledBackStep;
use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{Failure, Procedure, audit, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    step: RolledBackStep,
}

#[derive(Serialize)]
struct Output {
    step_id: String,
    /// Always empty: a refund cannot be undone.
    undone: Vec<Value>,
    not_reversible: Vec<Refund>,
    /// The step's refunds were only a dry run's placeholders.
    dry_run: bool,
    summary: String,
}

#[derive(Serialize, Debug, PartialEq)]
struct Refund {
    refund_id: String,
    charge: Option<String>,
    amount_cents: Option<i64>,
    currency: Option<String>,
    status: Option<String>,
    why: &'static str,
}

const WHY: &str = "Stripe cannot reverse a refund; the money has been returned to the customer";

struct RefundCompensate;

impl Procedure for RefundCompensate {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let (refunds, dry_run) = made_refunds(&input.step);
        for r in &refunds {
            audit::record_json(
                "refund.not_reversible",
                &format!("charge:{}", r.charge.as_deref().unwrap_or("unknown")),
                &json!({
                    "step": input.step.id,
                    "refund_id": r.refund_id,
                    "amount_cents": r.amount_cents,
                    "currency": r.currency,
                    "organization_id": input.step.output["organization_id"],
                }),
            );
        }
        let summary = summary(&refunds, dry_run);
        Ok(Output {
            step_id: input.step.id,
            undone: Vec::new(),
            not_reversible: refunds,
            dry_run,
            summary,
        })
    }
}

/// The refunds the step made, and whether it made only dry-run placeholders.
fn made_refunds(step: &RolledBackStep) -> (Vec<Refund>, bool) {
    let currency = step.output["invoice"]["currency"]
        .as_str()
        .map(str::to_owned);
    let mut out = Vec::new();
    let mut placeholders = 0;
    for call in step.stripe_calls("refunds.create") {
        if call.is_dry_run() {
            placeholders += 1;
            continue;
        }
        let r = &call.response;
        let id = r["id"].as_str().unwrap_or_default();
        if out.iter().any(|x: &Refund| x.refund_id == id) {
            continue;
        }
        out.push(Refund {
            refund_id: id.to_owned(),
            charge: r["charge"]
                .as_str()
                .or_else(|| call.params["charge"].as_str())
                .map(str::to_owned),
            amount_cents: r["amount"]
                .as_i64()
                .or_else(|| call.params["amount"].as_i64()),
            currency: r["currency"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| currency.clone()),
            status: r["status"].as_str().map(str::to_owned),
            why: WHY,
        });
    }
    // No journal entry at all: trust the step's own account (issue-refund's output).
    let refund = &step.output["refund"];
    if out.is_empty()
        && placeholders == 0
        && refund["dry_run"] != json!(true)
        && let Some(id) = refund["id"].as_str().filter(|id| !id.is_empty())
    {
        out.push(Refund {
            refund_id: id.to_owned(),
            charge: step.output["invoice"]["stripe_charge_id"]
                .as_str()
                .map(str::to_owned),
            amount_cents: refund["amount_cents"].as_i64(),
            currency,
            status: refund["status"].as_str().map(str::to_owned),
            why: WHY,
        });
    }
    let dry_run = out.is_empty() && (placeholders > 0 || refund["dry_run"] == json!(true));
    (out, dry_run)
}

fn summary(refunds: &[Refund], dry_run: bool) -> String {
    if refunds.is_empty() {
        return if dry_run {
            "dry run: no refund was made, nothing to undo".into()
        } else {
            "the step made no refund: nothing to undo".into()
        };
    }
    let list: Vec<String> = refunds
        .iter()
        .map(|r| {
            format!(
                "{} ({} {})",
                r.refund_id,
                r.amount_cents.map_or_else(|| "?".into(), |a| a.to_string()),
                r.currency.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!("not reversible: refund {} stands", list.join(", "))
}

register_plugin!(RefundCompensate);

#[cfg(test)]
mod tests {
    use super::*;

    fn step(json: &str) -> RolledBackStep {
        runbook_sdk::serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_refund_is_reported_not_reversible() {
        let s = step(
            r#"{"id": "refund", "output": {"invoice": {"currency": "usd", "stripe_charge_id": "ch_1"}},
                "calls": [{"interface": "stripe", "operation": "refunds.create", "ok": true,
                           "params": {"charge": "ch_1"},
                           "response": {"id": "re_1", "amount": 9900, "charge": "ch_1", "status": "succeeded"}}]}"#,
        );
        let (refunds, dry_run) = made_refunds(&s);
        assert!(!dry_run);
        assert_eq!(
            refunds,
            [Refund {
                refund_id: "re_1".into(),
                charge: Some("ch_1".into()),
                amount_cents: Some(9900),
                currency: Some("usd".into()),
                status: Some("succeeded".into()),
                why: WHY,
            }]
        );
        assert_eq!(
            summary(&refunds, dry_run),
            "not reversible: refund re_1 (9900 usd) stands"
        );
    }

    #[test]
    fn dry_runs_and_failed_calls_are_nothing_to_undo() {
        let s = step(
            r#"{"id": "refund", "output": {"refund": {"id": "dryrun_refund_1", "dry_run": true}},
                "calls": [{"interface": "stripe", "operation": "refunds.create", "ok": true,
                           "response": {"id": "dryrun_refund_1", "dry_run": true}}]}"#,
        );
        let (refunds, dry_run) = made_refunds(&s);
        assert!(refunds.is_empty() && dry_run);
        let s = step(
            r#"{"id": "refund", "calls": [{"interface": "stripe", "operation": "refunds.create",
                "ok": false, "response": {"error": "card_declined"}}]}"#,
        );
        let (refunds, dry_run) = made_refunds(&s);
        assert!(refunds.is_empty() && !dry_run);
        assert_eq!(
            summary(&refunds, dry_run),
            "the step made no refund: nothing to undo"
        );
    }

    #[test]
    fn without_a_journal_the_output_tells() {
        let s = step(
            r#"{"id": "refund", "output": {"invoice": {"currency": "eur", "stripe_charge_id": "ch_9"},
                "refund": {"id": "re_9", "amount_cents": 500, "dry_run": false}}}"#,
        );
        let (refunds, _) = made_refunds(&s);
        assert_eq!(refunds[0].refund_id, "re_9");
        assert_eq!(refunds[0].charge.as_deref(), Some("ch_9"));
        assert_eq!(refunds[0].amount_cents, Some(500));
    }
}
