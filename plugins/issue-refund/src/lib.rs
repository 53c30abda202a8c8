//! "Issue Refund": refund the charge of an organization's latest paid invoice (or of the
//! invoice named), in full or in part.
//!
//! What is left to refund is the invoice's `amount_paid_cents` less the refunds already
//! recorded for its charge; asking for more is a `precondition` failure, before Stripe is
//! called. `refunds.create` gets the charge, the amount (omitted for a full refund: Stripe
//! refunds what is left), the reason and `metadata.organization_id`. The refund is recorded
//! where the schema keeps what happened to payments: a `payment_events` row of type
//! `refunded` (amount, charge, invoice, and the Stripe refund id as `correlation_id`, to
//! match the `charge.refunded` webhook). Audited as `refund.issued` on `charge:<id>`; with
//! `notify`, the `refund-issued` email goes to the billing email (best effort).

use billing::notify::{self, Notification};
use billing::{after_stripe_write, clock, contacts, money};
use runbook_sdk::serde_json::{Map, json};
use runbook_sdk::{
    Failure, Procedure, Timestamp, Value, audit, db, params, register_plugin, stripe,
};
use serde::{Deserialize, Serialize};

const REASONS: [&str; 3] = ["requested_by_customer", "duplicate", "fraudulent"];

const INVOICE: &str = "SELECT id, stripe_invoice_id, stripe_charge_id, amount_paid_cents, \
     currency, paid_at FROM invoices \
     WHERE organization_id = $1 AND status = 'paid' AND stripe_charge_id IS NOT NULL";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    /// Smallest currency unit; null refunds everything not yet refunded.
    #[serde(default)]
    amount: Option<i64>,
    /// `requested_by_customer`, `duplicate` or `fraudulent`; none when empty.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    notify: bool,
    /// This invoice (`in_...`) instead of the latest paid one.
    #[serde(default)]
    stripe_invoice_id: Option<String>,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    invoice: Invoice,
    refund: Refund,
    /// The `payment_events` row recording the refund.
    payment_event_id: i64,
    notification: Option<Notification>,
}

#[derive(Serialize)]
struct Invoice {
    invoice_id: i64,
    stripe_invoice_id: String,
    stripe_charge_id: String,
    amount_paid_cents: i64,
    currency: String,
    paid_at: Timestamp,
    refunded_before_cents: i64,
}

#[derive(Serialize)]
struct Refund {
    /// Stripe's refund id (`re_...`; a placeholder in a dry run).
    id: String,
    amount_cents: i64,
    full_refund: bool,
    reason: String,
    status: Option<String>,
    dry_run: bool,
}

struct IssueRefund;

impl Procedure for IssueRefund {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        // Empty: no reason is sent (Stripe's own default).
        let reason = match input.reason.as_deref().map(str::trim) {
            None | Some("") => "",
            Some(r) => *REASONS.iter().find(|x| **x == r).ok_or_else(|| {
                Failure::invalid_input(format!("reason {r:?}; one of {}", REASONS.join(", ")))
            })?,
        };
        if input.amount.is_some_and(|a| a <= 0) {
            return Err(Failure::invalid_input(
                "amount must be positive (smallest currency unit)",
            ));
        }
        let org = contacts::organization(input.organization_id)?;
        let invoice = find_invoice(org.id, input.stripe_invoice_id.as_deref())?;
        let left = invoice.amount_paid_cents - invoice.refunded_before_cents;
        if left <= 0 {
            return Err(Failure::precondition(format!(
                "invoice {} is already refunded in full",
                invoice.stripe_invoice_id
            )));
        }
        let amount = input.amount.unwrap_or(left);
        if amount > left {
            return Err(Failure::precondition(format!(
                "invoice {}: {} left to refund, {amount} asked",
                invoice.stripe_invoice_id, left
            )));
        }

        let mut params = Map::new();
        params.insert("charge".into(), json!(invoice.stripe_charge_id));
        if input.amount.is_some() {
            params.insert("amount".into(), json!(amount));
        }
        if !reason.is_empty() {
            params.insert("reason".into(), json!(reason));
        }
        params.insert(
            "metadata".into(),
            json!({ "organization_id": org.id.to_string(), "invoice": invoice.stripe_invoice_id }),
        );
        let response = stripe::call("refunds.create", &params)?;
        let refund = Refund {
            id: response["id"].as_str().unwrap_or_default().to_owned(),
            amount_cents: if stripe::is_dry_run(&response) {
                amount
            } else {
                response["amount"].as_i64().unwrap_or(amount)
            },
            full_refund: amount == left,
            reason: reason.to_owned(),
            status: response["status"].as_str().map(str::to_owned),
            dry_run: stripe::is_dry_run(&response),
        };

        let payment_event_id = record(org.id, &invoice, &refund).map_err(|f| {
            after_stripe_write(
                &format!(
                    "refund {} of charge {} issued",
                    refund.id, invoice.stripe_charge_id
                ),
                f,
            )
        })?;
        audit::record_json(
            "refund.issued",
            &format!("charge:{}", invoice.stripe_charge_id),
            &json!({
                "organization_id": org.id,
                "stripe_invoice_id": invoice.stripe_invoice_id,
                "refund_id": refund.id,
                "amount_cents": refund.amount_cents,
                "currency": invoice.currency,
                "full_refund": refund.full_refund,
                "reason": reason,
                "payment_event_id": payment_event_id,
                "dry_run": refund.dry_run,
            }),
        );

        let notification = input.notify.then(|| {
            notify::send(
                std::slice::from_ref(&org.billing_email),
                "refund-issued",
                &json!({
                    "organization_id": org.id,
                    "organization_name": org.name,
                    "amount": money::format_amount(refund.amount_cents, &invoice.currency),
                    "amount_cents": refund.amount_cents,
                    "currency": invoice.currency.to_uppercase(),
                    "invoice_id": invoice.stripe_invoice_id,
                    "refund_id": refund.id,
                    "reason": reason,
                    "full_refund": refund.full_refund,
                }),
            )
        });
        Ok(Output {
            organization_id: org.id,
            invoice,
            refund,
            payment_event_id,
            notification,
        })
    }
}

fn find_invoice(organization_id: i64, stripe_invoice_id: Option<&str>) -> Result<Invoice, Failure> {
    let named = stripe_invoice_id.map(str::trim).filter(|s| !s.is_empty());
    let order = "ORDER BY paid_at DESC, id DESC LIMIT 1";
    let rows = match named {
        None => db::query(&format!("{INVOICE} {order}"), params![organization_id])?,
        Some(id) => db::query(
            &format!("{INVOICE} AND stripe_invoice_id = $2 {order}"),
            params![organization_id, id],
        )?,
    };
    let row = rows.first().ok_or_else(|| {
        Failure::precondition(match named {
            None => format!("organization {organization_id} has no paid invoice with a charge"),
            Some(id) => format!(
                "invoice {id} is not a paid invoice of organization {organization_id} with a charge"
            ),
        })
    })?;
    let charge: String = row.get("stripe_charge_id")?;
    let refunded: i64 = db::query(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) AS refunded FROM payment_events \
         WHERE stripe_charge_id = $1 AND event_type = 'refunded'",
        params![&charge],
    )?
    .one()?
    .get("refunded")?;
    Ok(Invoice {
        invoice_id: row.get("id")?,
        stripe_invoice_id: row.get("stripe_invoice_id")?,
        stripe_charge_id: charge,
        amount_paid_cents: row.get("amount_paid_cents")?,
        currency: row.get("currency")?,
        paid_at: row.get("paid_at")?,
        refunded_before_cents: refunded,
    })
}

/// The `payment_events` row for the refund; returns its id.
fn record(organization_id: i64, invoice: &Invoice, refund: &Refund) -> Result<i64, Failure> {
    let now = clock::db_now()?;
    let id: i64 = db::query(
        "SELECT COALESCE(MAX(id), 0) + 1 AS next_id FROM payment_events",
        &[],
    )?
    .one()?
    .get("next_id")?;
    db::execute(
        "INSERT INTO payment_events (id, organization_id, invoice_id, stripe_charge_id, \
         event_type, amount_cents, correlation_id, created_at) \
         VALUES ($1, $2, $3, $4, 'refunded', $5, $6, $7)",
        &[
            Value::from(id),
            Value::from(organization_id),
            Value::from(invoice.invoice_id),
            Value::from(&invoice.stripe_charge_id),
            Value::from(refund.amount_cents),
            Value::from(&refund.id),
            Value::from(now),
        ],
    )?;
    Ok(id)
}

register_plugin!(IssueRefund);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [
            r#"{"organization_id": 2, "reason": "changed_my_mind"}"#,
            r#"{"organization_id": 2, "amount": 0}"#,
            r#"{"organization_id": 2, "amount": -100}"#,
            r#"{"amount": 100}"#,
        ] {
            let err = run_json::<IssueRefund>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}: {err}");
        }
    }
}
