//! Prepaid credits: an organization's balance (`credit_balances`, whole credits, never
//! negative) and the ledger every change to it is written to (`credit_transactions`,
//! signed amounts).

use runbook_sdk::{Failure, Timestamp, Value, db, params};
use serde::Serialize;

/// `credit_transactions.reason`.
pub const REASONS: [&str; 6] = [
    "purchase",
    "usage",
    "refund",
    "webhook_failure",
    "manual_adjustment",
    "promotion",
];

/// The ledger reason: `manual_adjustment` when none is given.
pub fn ledger_reason(reason: Option<&str>) -> Result<&'static str, Failure> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok("manual_adjustment"),
        Some(r) => REASONS.iter().copied().find(|x| *x == r).ok_or_else(|| {
            Failure::invalid_input(format!("reason {r:?}; one of {}", REASONS.join(", ")))
        }),
    }
}

/// What an adjustment asks for: add `amount` (negative: take away), or set the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    Add(i64),
    SetTo(i64),
}

/// The balance before and after an adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub before: i64,
    pub after: i64,
    /// `after - before`: the ledger amount.
    pub amount: i64,
}

impl Adjustment {
    /// Exactly one of `amount` and `set_balance`.
    pub fn from_input(
        amount: Option<i64>,
        set_balance: Option<i64>,
    ) -> Result<Adjustment, Failure> {
        match (amount, set_balance) {
            (Some(0), None) => Err(Failure::invalid_input("amount must not be 0")),
            (Some(a), None) => Ok(Adjustment::Add(a)),
            (None, Some(b)) if b < 0 => {
                Err(Failure::invalid_input("set_balance must not be negative"))
            }
            (None, Some(b)) => Ok(Adjustment::SetTo(b)),
            _ => Err(Failure::invalid_input(
                "give exactly one of amount (credits to add, negative to take away) and set_balance",
            )),
        }
    }

    /// Apply to `before`: a `precondition` failure if the balance would go negative or
    /// nothing would change.
    pub fn apply(self, before: i64) -> Result<Change, Failure> {
        let after = match self {
            Adjustment::Add(a) => before
                .checked_add(a)
                .ok_or_else(|| Failure::invalid_input("amount out of range"))?,
            Adjustment::SetTo(b) => b,
        };
        if after < 0 {
            return Err(Failure::precondition(format!(
                "the balance is {before}: taking away {} would make it negative",
                -(after - before)
            )));
        }
        if after == before {
            return Err(Failure::precondition(format!(
                "the balance is already {before}: nothing to change"
            )));
        }
        Ok(Change {
            before,
            after,
            amount: after - before,
        })
    }
}

/// The organization's balance; 0 without a `credit_balances` row.
///
/// Touches: select `credit_balances`.
pub fn balance(organization_id: i64) -> Result<(i64, bool), Failure> {
    let rows = db::query(
        "SELECT balance FROM credit_balances WHERE organization_id = $1",
        params![organization_id],
    )?;
    Ok(match rows.first() {
        Some(row) => (row.get("balance")?, true),
        None => (0, false),
    })
}

/// One ledger entry to write with a balance change.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub organization_id: i64,
    pub reason: &'a str,
    pub actor: &'a str,
    pub reference: Option<&'a str>,
}

/// Write `change` (the balance, guarded by its `before`, and the ledger entry); returns
/// the transaction's id. A `precondition` failure if the balance is no longer `before`.
///
/// Touches: select, insert, update `credit_balances`; select, insert
/// `credit_transactions`.
pub fn write(entry: &Entry<'_>, change: &Change, now: &Timestamp) -> Result<i64, Failure> {
    let (current, exists) = balance(entry.organization_id)?;
    if current != change.before {
        return Err(Failure::precondition(format!(
            "the balance changed from {} to {current} since it was checked; check again",
            change.before
        )));
    }
    if exists {
        db::execute(
            "UPDATE credit_balances SET balance = $1, updated_at = $2 \
             WHERE organization_id = $3 AND balance = $4",
            params![change.after, now, entry.organization_id, change.before],
        )?;
    } else {
        db::execute(
            "INSERT INTO credit_balances (organization_id, balance, updated_at) VALUES ($1, $2, $3)",
            params![entry.organization_id, change.after, now],
        )?;
    }
    let id: i64 = db::query(
        "SELECT COALESCE(MAX(id), 0) + 1 AS next_id FROM credit_transactions",
        &[],
    )?
    .one()?
    .get("next_id")?;
    db::execute(
        "INSERT INTO credit_transactions (id, organization_id, amount, reason, actor, reference, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            Value::from(id),
            Value::from(entry.organization_id),
            Value::from(change.amount),
            Value::from(entry.reason),
            Value::from(entry.actor),
            Value::from(entry.reference),
            Value::from(now),
        ],
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_kind_of_adjustment() {
        assert_eq!(
            Adjustment::from_input(Some(50), None),
            Ok(Adjustment::Add(50))
        );
        assert_eq!(
            Adjustment::from_input(None, Some(25)),
            Ok(Adjustment::SetTo(25))
        );
        for (a, b) in [
            (None, None),
            (Some(1), Some(1)),
            (Some(0), None),
            (None, Some(-1)),
        ] {
            assert_eq!(
                Adjustment::from_input(a, b).unwrap_err().code,
                "invalid-input"
            );
        }
    }

    #[test]
    fn ledger_reasons() {
        assert_eq!(ledger_reason(None).unwrap(), "manual_adjustment");
        assert_eq!(ledger_reason(Some(" ")).unwrap(), "manual_adjustment");
        assert_eq!(
            ledger_reason(Some("webhook_failure")).unwrap(),
            "webhook_failure"
        );
        assert_eq!(
            ledger_reason(Some("gift")).unwrap_err().code,
            "invalid-input"
        );
    }

    #[test]
    fn changes() {
        let c = Adjustment::Add(50).apply(120).unwrap();
        assert_eq!((c.before, c.after, c.amount), (120, 170, 50));
        let c = Adjustment::SetTo(25).apply(120).unwrap();
        assert_eq!(
            c.amount, -95,
            "a correction down is a negative ledger entry"
        );
        assert_eq!(Adjustment::Add(-15).apply(15).unwrap().after, 0);
        let err = Adjustment::Add(-16).apply(15).unwrap_err();
        assert_eq!(err.code, "precondition");
        assert_eq!(
            Adjustment::SetTo(15).apply(15).unwrap_err().code,
            "precondition"
        );
        assert_eq!(
            Adjustment::Add(i64::MAX).apply(1).unwrap_err().code,
            "invalid-input"
        );
    }
}
