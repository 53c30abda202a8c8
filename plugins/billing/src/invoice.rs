//! Open invoices of a subscription, recording a payment of one (as Stripe reports it),
//! and the `payment_events` log of payment attempts.

use runbook_sdk::serde_json::Value as Json;
use runbook_sdk::{Failure, Timestamp, Value, db, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenInvoice {
    pub id: i64,
    pub organization_id: i64,
    pub stripe_invoice_id: String,
    pub amount_due_cents: i64,
    pub currency: String,
}

/// The subscription's open invoices, oldest first.
///
/// Touches: select `invoices`.
pub fn open_of_subscription(subscription_id: i64) -> Result<Vec<OpenInvoice>, Failure> {
    let rows = db::query(
        "SELECT id, organization_id, stripe_invoice_id, amount_due_cents, currency FROM invoices \
         WHERE subscription_id = $1 AND status = 'open' ORDER BY created_at, id",
        params![subscription_id],
    )?;
    Ok(rows.decode()?)
}

/// What a Stripe invoice object says about its payment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StripePayment {
    pub paid: bool,
    pub status: Option<String>,
    pub amount_paid: Option<i64>,
    pub paid_at: Option<Timestamp>,
    /// The charge's id; Stripe may send the id or the expanded charge.
    pub charge: Option<String>,
}

/// Read a Stripe invoice object.
pub fn stripe_payment(invoice: &Json) -> StripePayment {
    let status = invoice["status"].as_str().map(str::to_owned);
    let charge = match &invoice["charge"] {
        Json::String(id) => Some(id.clone()),
        object => object["id"].as_str().map(str::to_owned),
    };
    StripePayment {
        paid: status.as_deref() == Some("paid") || invoice["paid"].as_bool() == Some(true),
        status,
        amount_paid: invoice["amount_paid"].as_i64(),
        paid_at: invoice["status_transitions"]["paid_at"]
            .as_i64()
            .and_then(Timestamp::from_unix_seconds),
        charge,
    }
}

/// Record that the invoice was paid (Stripe's amount, time and charge; `now` and the
/// amount due when Stripe gave none).
///
/// Touches: update `invoices`.
pub fn mark_paid(
    invoice: &OpenInvoice,
    payment: &StripePayment,
    now: &Timestamp,
) -> Result<(), Failure> {
    db::execute(
        "UPDATE invoices SET status = 'paid', amount_paid_cents = $1, paid_at = $2, \
         stripe_charge_id = COALESCE($3, stripe_charge_id) WHERE id = $4",
        params![
            payment.amount_paid.unwrap_or(invoice.amount_due_cents),
            payment.paid_at.clone().unwrap_or_else(|| now.clone()),
            payment.charge.clone(),
            invoice.id,
        ],
    )?;
    Ok(())
}

/// One row of `payment_events` to write.
#[derive(Debug, Clone)]
pub struct PaymentEvent<'a> {
    pub organization_id: i64,
    pub invoice_id: Option<i64>,
    pub stripe_charge_id: Option<&'a str>,
    /// `payment_succeeded`, `payment_failed`, `refunded`, ...
    pub event_type: &'a str,
    pub amount_cents: i64,
    pub failure_code: Option<&'a str>,
    pub failure_message: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
}

/// Write a `payment_events` row; returns its id.
///
/// Touches: select, insert `payment_events`.
pub fn record_payment_event(event: &PaymentEvent<'_>, now: &Timestamp) -> Result<i64, Failure> {
    let id: i64 = db::query(
        "SELECT COALESCE(MAX(id), 0) + 1 AS next_id FROM payment_events",
        &[],
    )?
    .one()?
    .get("next_id")?;
    db::execute(
        "INSERT INTO payment_events (id, organization_id, invoice_id, stripe_charge_id, event_type, \
         amount_cents, failure_code, failure_message, correlation_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            Value::from(id),
            Value::from(event.organization_id),
            Value::from(event.invoice_id),
            Value::from(event.stripe_charge_id),
            Value::from(event.event_type),
            Value::from(event.amount_cents),
            Value::from(event.failure_code),
            Value::from(event.failure_message),
            Value::from(event.correlation_id),
            Value::from(now),
        ],
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::serde_json::json;

    #[test]
    fn reads_a_paid_invoice_with_an_expanded_charge() {
        let p = stripe_payment(&json!({
            "id": "in_1", "status": "paid", "paid": true, "amount_paid": 2900,
            "status_transitions": {"paid_at": 1_791_203_696},
            "charge": {"id": "ch_1", "object": "charge"}
        }));
        assert!(p.paid);
        assert_eq!(p.amount_paid, Some(2900));
        assert_eq!(p.paid_at.unwrap().as_str(), "2026-10-05T12:34:56Z");
        assert_eq!(p.charge.as_deref(), Some("ch_1"));
    }

    #[test]
    fn reads_an_open_invoice_and_a_dry_run_placeholder() {
        let p = stripe_payment(&json!({"status": "open", "charge": "ch_2", "paid": false}));
        assert!(!p.paid);
        assert_eq!(p.charge.as_deref(), Some("ch_2"));
        let p = stripe_payment(&json!({"id": "dryrun_invoice_1", "dry_run": true}));
        assert!(!p.paid);
        assert_eq!(p.status, None);
        assert_eq!(p.charge, None);
    }
}
