//! Credit Balance Issues, before the change: what granting or correcting an
//! organization's prepaid credits would do. Read-only.
//!
//! `amount` adds credits (negative takes them away); `set_balance` corrects the balance
//! to a figure ("Credit Correction"); exactly one of them. The output is what approvers
//! see and what `credit-adjust` is held to: the balance now (`balance_before`, which the
//! adjustment checks is still the balance), after, the signed ledger `amount` and its
//! `magnitude`, which the runbook compares with its approval threshold. A balance that
//! would go negative, or not change, is a `precondition` failure; an unknown ledger reason
//! or an empty `note` (why) is `invalid-input`.

use billing::contacts;
use billing::credits::{self, Adjustment, ledger_reason};
use runbook_sdk::{Failure, Procedure, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    set_balance: Option<i64>,
    /// `credit_transactions.reason`; empty for `manual_adjustment`.
    #[serde(default)]
    reason: Option<String>,
    /// Why, for the ledger's audit record; required.
    note: String,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    organization_name: String,
    balance_before: i64,
    balance_after: i64,
    /// The signed ledger amount.
    amount: i64,
    /// Its absolute value, for the approval threshold.
    magnitude: i64,
    /// `grant`, `deduction` or `correction`.
    kind: &'static str,
    reason: String,
    note: String,
    summary: String,
}

struct CreditPreview;

impl Procedure for CreditPreview {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let adjustment = Adjustment::from_input(input.amount, input.set_balance)?;
        let reason = ledger_reason(input.reason.as_deref())?;
        let note = input.note.trim();
        if note.is_empty() {
            return Err(Failure::invalid_input(
                "note is required: say why the credits change",
            ));
        }
        let org = contacts::organization(input.organization_id)?;
        let (before, _) = credits::balance(org.id)?;
        let change = adjustment.apply(before)?;
        let kind = match adjustment {
            Adjustment::SetTo(_) => "correction",
            Adjustment::Add(a) if a > 0 => "grant",
            Adjustment::Add(_) => "deduction",
        };
        Ok(Output {
            summary: format!(
                "{}: {} -> {} credits ({:+}, {kind}, {reason})",
                org.name, change.before, change.after, change.amount
            ),
            organization_id: org.id,
            organization_name: org.name,
            balance_before: change.before,
            balance_after: change.after,
            amount: change.amount,
            magnitude: change.amount.abs(),
            kind,
            reason: reason.to_owned(),
            note: note.to_owned(),
        })
    }
}

register_plugin!(CreditPreview);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [
            r#"{"organization_id": 2, "note": "ticket-1"}"#,
            r#"{"organization_id": 2, "amount": 5, "set_balance": 5, "note": "ticket-1"}"#,
            r#"{"organization_id": 2, "amount": 5, "note": " "}"#,
            r#"{"organization_id": 2, "amount": 5, "note": "x", "reason": "gift"}"#,
            r#"{"organization_id": 2, "amount": 5}"#,
        ] {
            let err = run_json::<CreditPreview>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}: {err}");
        }
    }
}
