//! Credit Balance Issues, the change: grant or correct an organization's prepaid credits
//! ("Manual Credit Grant", "Credit Correction") and leave the audit trail the seed asks
//! for ("Log manual credit adjustment").
//!
//! Takes the same `amount` / `set_balance`, `reason` and `note` as `credit-preview`, and
//! that step's `balance_before` as `expected_balance`: if the balance is no longer that
//! (a purchase or claim landed since it was shown, or approved) it is a `precondition`
//! failure and nothing changes. Writes the balance (`credit_balances`, created for an
//! organization without one) and the signed ledger entry (`credit_transactions`: reason,
//! `actor` = the operator, `reference`), then the audit record
//! `manual.credit_adjustment` on `organization:<id>` with amount, reason, `admin` (who)
//! and `why`.

use billing::clock;
use billing::contacts;
use billing::credits::{self, Adjustment, Entry, ledger_reason};
use runbook_sdk::serde_json::json;
use runbook_sdk::{Failure, Procedure, Timestamp, audit, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    set_balance: Option<i64>,
    /// The balance the change was computed from (`credit-preview`'s `balance_before`).
    expected_balance: i64,
    #[serde(default)]
    reason: Option<String>,
    /// Why; required.
    note: String,
    /// A ticket, a checkout session, ...
    #[serde(default)]
    reference: Option<String>,
    /// Who made the change (`credit_transactions.actor`): the operator.
    actor: String,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    organization_name: String,
    balance_before: i64,
    balance_after: i64,
    amount: i64,
    reason: String,
    actor: String,
    reference: Option<String>,
    transaction_id: i64,
    adjusted_at: Timestamp,
}

struct CreditAdjust;

impl Procedure for CreditAdjust {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let adjustment = Adjustment::from_input(input.amount, input.set_balance)?;
        let reason = ledger_reason(input.reason.as_deref())?;
        let note = input.note.trim();
        let actor = input.actor.trim();
        if note.is_empty() {
            return Err(Failure::invalid_input(
                "note is required: say why the credits change",
            ));
        }
        if actor.is_empty() {
            return Err(Failure::invalid_input(
                "actor is required: who makes the change",
            ));
        }
        let reference = input
            .reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let change = adjustment.apply(input.expected_balance)?;
        let org = contacts::organization(input.organization_id)?;
        let now = clock::db_now()?;
        let entry = Entry {
            organization_id: org.id,
            reason,
            actor,
            reference,
        };
        let transaction_id = credits::write(&entry, &change, &now)?;
        audit::record_json(
            "manual.credit_adjustment",
            &format!("organization:{}", org.id),
            &json!({
                "organization_id": org.id,
                "amount": change.amount,
                "reason": reason,
                "admin": actor,
                "why": note,
                "reference": reference,
                "balance_before": change.before,
                "balance_after": change.after,
                "transaction_id": transaction_id,
            }),
        );
        Ok(Output {
            organization_id: org.id,
            organization_name: org.name,
            balance_before: change.before,
            balance_after: change.after,
            amount: change.amount,
            reason: reason.to_owned(),
            actor: actor.to_owned(),
            reference: reference.map(str::to_owned),
            transaction_id,
            adjusted_at: now,
        })
    }
}

register_plugin!(CreditAdjust);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        let ok = r#""organization_id": 2, "expected_balance": 120, "note": "ticket-9", "actor": "alice""#;
        for input in [
            format!(r#"{{{ok}}}"#),
            format!(r#"{{{ok}, "amount": 0}}"#),
            format!(r#"{{{ok}, "amount": 5, "reason": "bonus"}}"#),
            r#"{"organization_id": 2, "amount": 5, "expected_balance": 120, "note": "x", "actor": " "}"#.into(),
            r#"{"organization_id": 2, "amount": 5, "note": "x", "actor": "alice"}"#.into(),
        ] {
            let err = run_json::<CreditAdjust>(&input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}: {err}");
        }
    }

    #[test]
    fn impossible_changes_fail_before_any_call() {
        let input = r#"{"organization_id": 4, "amount": -16, "expected_balance": 15, "note": "x", "actor": "alice"}"#;
        assert_eq!(
            run_json::<CreditAdjust>(input).unwrap_err().code,
            "precondition"
        );
    }
}
