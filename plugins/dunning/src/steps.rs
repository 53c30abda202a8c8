//! Performing one subscription's due dunning steps: the notice, the payment retry and the
//! downgrade, with what happens when the world (or the host) says no.

use billing::contacts::Organization;
use billing::dunning::{self, Event, Flow};
use billing::invoice::{self, PaymentEvent, StripePayment};
use billing::{after_stripe_write, money, plan, subscription};
use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{CallError, Failure, Timestamp, audit, email, stripe};
use serde::Serialize;

use crate::Action;

/// Carries what the run has done so far across subscriptions.
pub struct Runner {
    now: Timestamp,
    as_of: Timestamp,
    portal_url: String,
    /// An email was sent or Stripe was called: failing the step now would lose the
    /// database's record of it.
    effects: bool,
    pub stopped: Option<String>,
}

/// What Stripe made of a payment retry.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Retried {
    Paid(StripePayment),
    /// The card was declined (Stripe's card error), or the invoice is still unpaid.
    Declined {
        code: Option<String>,
        message: Option<String>,
        charge: Option<String>,
    },
    /// Not made: a dry run.
    DryRun,
}

impl Retried {
    fn from_response(response: &Value) -> Retried {
        if stripe::is_dry_run(response) {
            return Retried::DryRun;
        }
        let payment = invoice::stripe_payment(response);
        if payment.paid {
            return Retried::Paid(payment);
        }
        // Answered without paying: what the (expanded) charge says, if anything.
        let charge = &response["charge"];
        Retried::Declined {
            code: charge["failure_code"].as_str().map(str::to_owned),
            message: charge["failure_message"].as_str().map(str::to_owned),
            charge: payment.charge,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            Retried::Paid(_) => "paid",
            Retried::Declined { .. } => "declined",
            Retried::DryRun => "retried",
        }
    }
}

/// How one step ended, before it is written up as an [`Action`].
struct Done {
    outcome: &'static str,
    error: Option<String>,
    dry_run: bool,
    detail: Value,
}

impl Done {
    fn ok(outcome: &'static str, dry_run: bool, detail: Value) -> Done {
        Done {
            outcome,
            error: None,
            dry_run,
            detail,
        }
    }

    fn failed(error: String) -> Done {
        Done {
            outcome: "failed",
            error: Some(error),
            dry_run: false,
            detail: Value::Null,
        }
    }
}

impl Runner {
    pub fn new(now: Timestamp, as_of: Timestamp, portal_url: String) -> Runner {
        Runner {
            now,
            as_of,
            portal_url,
            effects: false,
            stopped: None,
        }
    }

    /// A database failure: after an effect, say what stands in Stripe or the mailbox.
    pub fn after_effects(&self, failure: Failure) -> Failure {
        if self.effects {
            after_stripe_write("dunning steps were performed", failure)
        } else {
            failure
        }
    }

    /// A call that did not go through: Stripe's or the mail server's answer fails only
    /// this step; the host's refusal fails the run before any effect, or stops it after.
    fn refused(&mut self, e: CallError) -> Result<Done, Failure> {
        match e {
            CallError::Failed(_) => Ok(Done::failed(
                stripe::error_of(&e).map_or_else(|| e.to_string(), |s| s.to_string()),
            )),
            e if !self.effects => Err(e.into()),
            e => {
                self.stopped = Some(e.to_string());
                Ok(Done {
                    outcome: "not_attempted",
                    error: Some(e.to_string()),
                    dry_run: false,
                    detail: Value::Null,
                })
            }
        }
    }

    pub fn perform(&mut self, flow: &Flow, org: &Organization) -> Result<Vec<Action>, Failure> {
        let mut actions = Vec::new();
        let mut held = false;
        for event in flow.due(&self.as_of) {
            let done = if self.stopped.is_some() {
                Done {
                    outcome: "not_attempted",
                    error: self.stopped.clone(),
                    dry_run: false,
                    detail: Value::Null,
                }
            } else if held {
                Done::ok(
                    "held",
                    false,
                    json!({"reason": "an earlier step of this flow failed"}),
                )
            } else {
                match event.step.as_str() {
                    "notice" => self.notice(flow, org, event)?,
                    "retry" => self.retry(flow, org, event)?,
                    _ => self.downgrade(flow, org, event)?,
                }
            };
            held |= done.outcome == "failed";
            let recovered = done.outcome == "paid";
            actions.push(Action {
                step: event.step.clone(),
                event_id: event.id,
                scheduled_for: event.scheduled_for.clone(),
                outcome: done.outcome,
                error: done.error,
                dry_run: done.dry_run,
                detail: done.detail,
            });
            if recovered {
                break;
            }
        }
        Ok(actions)
    }

    fn notice(&mut self, flow: &Flow, org: &Organization, event: &Event) -> Result<Done, Failure> {
        let open = invoice::open_of_subscription(flow.subscription.id)?;
        let downgrade_on = flow.step("downgrade").map(|e| e.scheduled_for.clone());
        // Whole days, rounded up, from the instant judged by to the downgrade.
        let days_left = downgrade_on.as_ref().map_or(0, |d| {
            ((d.unix_seconds() - self.as_of.unix_seconds()).max(0) + 86_399) / 86_400
        });
        let context = json!({
            "tenant_id": org.id,
            "organization_name": org.name,
            "invoice_id": open.first().map_or("", |i| i.stripe_invoice_id.as_str()),
            "amount": open.first().map(|i| money::format_amount(i.amount_due_cents, &i.currency)),
            "grace_days": days_left,
            "downgrade_on": downgrade_on.as_ref().map(|d| d.date().to_owned()),
            "billing_portal_url": self.portal_url,
        });
        let message_id = match email::send(
            &[org.billing_email.as_str()],
            "payment-failure-notice",
            &context,
        ) {
            Ok(id) => id,
            Err(e) => return self.refused(e),
        };
        self.effects = true;
        let record = || -> Result<(), Failure> {
            dunning::complete(event.id, dunning::DONE, &self.now)?;
            Ok(())
        };
        record().map_err(|f| self.after_effects(f))?;
        let detail =
            json!({"to": org.billing_email, "message_id": message_id, "grace_days": days_left});
        audit::record_json(
            "dunning.notice_sent",
            &format!("subscription:{}", flow.subscription.stripe_subscription_id),
            &json!({"organization_id": org.id, "event_id": event.id, "notice": detail}),
        );
        Ok(Done::ok("sent", false, detail))
    }

    fn retry(&mut self, flow: &Flow, org: &Organization, event: &Event) -> Result<Done, Failure> {
        let sub = &flow.subscription;
        let Some(open) = invoice::open_of_subscription(sub.id)?.into_iter().next() else {
            return Ok(Done::failed(format!(
                "{} has no open invoice to retry",
                sub.stripe_subscription_id
            )));
        };
        let paid = match stripe::call("invoices.pay", &json!({ "id": open.stripe_invoice_id })) {
            Ok(response) => Retried::from_response(&response),
            Err(e) => match stripe::error_of(&e).filter(|s| s.kind == "card_error") {
                Some(decline) => Retried::Declined {
                    code: decline.code,
                    message: Some(decline.message.unwrap_or_default()),
                    charge: None,
                },
                None => return self.refused(e),
            },
        };
        self.effects = true;
        let outcome = paid.outcome();
        let record = || -> Result<Value, Failure> {
            dunning::complete(event.id, dunning::DONE, &self.now)?;
            let mut payment_event = PaymentEvent {
                organization_id: org.id,
                invoice_id: Some(open.id),
                stripe_charge_id: None,
                event_type: "payment_failed",
                amount_cents: open.amount_due_cents,
                failure_code: None,
                failure_message: None,
                correlation_id: None,
            };
            match &paid {
                Retried::DryRun => Ok(Value::Null),
                Retried::Declined {
                    code,
                    message,
                    charge,
                } => {
                    payment_event.failure_code = code.as_deref();
                    payment_event.failure_message = message.as_deref();
                    payment_event.stripe_charge_id = charge.as_deref();
                    let id = invoice::record_payment_event(&payment_event, &self.now)?;
                    Ok(json!({ "payment_event_id": id }))
                }
                Retried::Paid(payment) => {
                    invoice::mark_paid(&open, payment, &self.now)?;
                    payment_event.event_type = "payment_succeeded";
                    payment_event.stripe_charge_id = payment.charge.as_deref();
                    payment_event.amount_cents =
                        payment.amount_paid.unwrap_or(open.amount_due_cents);
                    let id = invoice::record_payment_event(&payment_event, &self.now)?;
                    subscription::mark_active(sub.id, &self.now)?;
                    let closed = dunning::close(sub.id, dunning::RECOVERED, &self.now)?;
                    Ok(json!({
                        "payment_event_id": id,
                        "events_closed": closed.iter().map(|e| json!({"id": e.id, "step": e.step})).collect::<Vec<_>>(),
                    }))
                }
            }
        };
        let recorded = record().map_err(|f| self.after_effects(f))?;
        let detail = json!({
            "invoice": open.stripe_invoice_id,
            "amount_cents": open.amount_due_cents,
            "result": paid,
            "recorded": recorded,
        });
        let target = format!("subscription:{}", sub.stripe_subscription_id);
        audit::record_json(
            "dunning.payment_retried",
            &target,
            &json!({"organization_id": org.id, "event_id": event.id, "outcome": outcome, "retry": detail}),
        );
        if outcome == "paid" {
            audit::record_json(
                "dunning.recovered",
                &target,
                &json!({"organization_id": org.id, "by": "payment_retry", "invoice": open.stripe_invoice_id, "recorded": detail["recorded"]}),
            );
        }
        Ok(Done::ok(outcome, matches!(paid, Retried::DryRun), detail))
    }

    fn downgrade(
        &mut self,
        flow: &Flow,
        org: &Organization,
        event: &Event,
    ) -> Result<Done, Failure> {
        let sub = &flow.subscription;
        let response = match stripe::call(
            "subscriptions.cancel",
            &json!({ "id": sub.stripe_subscription_id }),
        ) {
            Ok(r) => r,
            Err(e) => return self.refused(e),
        };
        self.effects = true;
        let dry_run = stripe::is_dry_run(&response);
        let record = || -> Result<Value, Failure> {
            subscription::mark_canceled(sub.id, &self.now)?;
            let closed = dunning::close(sub.id, dunning::DONE, &self.now)?;
            let tier = plan::follow_subscriptions(org.id, &self.now)?;
            Ok(json!({
                "events_closed": closed.iter().map(|e| e.id).collect::<Vec<_>>(),
                "organization_tier": tier,
            }))
        };
        let detail = record().map_err(|f| {
            after_stripe_write(&format!("{} canceled", sub.stripe_subscription_id), f)
        })?;
        audit::record_json(
            "dunning.downgraded",
            &format!("subscription:{}", sub.stripe_subscription_id),
            &json!({
                "organization_id": org.id,
                "event_id": event.id,
                "plan_tier": sub.plan_tier,
                "past_due_since": flow.past_due_since,
                "organization_tier": detail["organization_tier"].as_object().map(|t| json!({
                    "before": t.get("before"), "after": t.get("after"),
                })),
                "dry_run": dry_run,
            }),
        );
        Ok(Done::ok("canceled", dry_run, detail))
    }
}
