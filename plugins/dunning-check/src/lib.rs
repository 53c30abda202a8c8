//! Dunning state, read-only: every past-due subscription's flow as of `as_of` (see
//! `billing::dunning`) with the steps due, and every dunning event still pending.
//!
//! The `dunning` runbook runs it first: `recipients` (the billing emails of organizations
//! whose notice is due) becomes the next step's email grant, and `as_of` is passed on so
//! both steps judge by the same instant. `dunning-override` and `dunning-skip` show it to
//! their approvers. With `organization_id` only that organization's subscriptions and
//! events are listed, and having no past-due subscription is a `precondition` failure.

use billing::dunning::{self, Event, Flow};
use billing::{clock, contacts, invoice, subscription};
use runbook_sdk::{Failure, Procedure, Timestamp, db, params, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The instant to judge by; empty or null for the database's clock.
    #[serde(default)]
    as_of: Option<String>,
    /// Only this organization; null for all.
    #[serde(default)]
    organization_id: Option<i64>,
}

#[derive(Serialize)]
struct Output {
    as_of: Timestamp,
    organization_id: Option<i64>,
    /// Past-due subscriptions listed.
    past_due: usize,
    /// Of those, how many have a step due.
    count: usize,
    subscriptions: Vec<Entry>,
    /// The listed subscriptions' ids.
    subscription_ids: Vec<i64>,
    /// Names of the organizations listed, comma-separated.
    past_due_names: String,
    /// Names of the organizations with a step due, comma-separated.
    names: String,
    /// Billing emails of the organizations whose notice is due.
    recipients: Vec<String>,
    /// Dunning events not completed yet (of any subscription, or the organization's).
    pending_events: usize,
    pending_event_ids: Vec<i64>,
    pending: Vec<Pending>,
    /// `organization (step), ...` of the pending events, for an approver.
    pending_summary: String,
}

#[derive(Serialize)]
struct Entry {
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    organization_name: String,
    billing_email: String,
    plan_tier: String,
    past_due_since: Timestamp,
    /// The flow is not in the database yet; `dunning` will start it.
    planned: bool,
    steps: Vec<Event>,
    due: Vec<String>,
    /// The open invoice a retry would pay (`in_...`).
    open_invoice: Option<String>,
}

#[derive(Serialize)]
struct Pending {
    id: i64,
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    organization_name: String,
    subscription_status: String,
    step: String,
    scheduled_for: Timestamp,
}

struct DunningCheck;

impl Procedure for DunningCheck {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let as_of = clock::as_of(input.as_of.as_deref())?;
        let mut past_due = subscription::past_due()?;
        if let Some(id) = input.organization_id {
            let org = contacts::organization(id)?;
            past_due.retain(|s| s.organization_id == org.id);
            if past_due.is_empty() {
                return Err(Failure::precondition(format!(
                    "organization {} ({}) has no past-due subscription",
                    org.id, org.name
                )));
            }
        }

        let mut subscriptions = Vec::new();
        let mut recipients: Vec<String> = Vec::new();
        for sub in past_due {
            let org = contacts::organization(sub.organization_id)?;
            let open_invoice = invoice::open_of_subscription(sub.id)?
                .pop()
                .map(|i| i.stripe_invoice_id);
            let flow: Flow = dunning::flow(sub)?;
            let due: Vec<String> = flow.due(&as_of).iter().map(|e| e.step.clone()).collect();
            if due.iter().any(|s| s == "notice") && !recipients.contains(&org.billing_email) {
                recipients.push(org.billing_email.clone());
            }
            subscriptions.push(Entry {
                subscription_id: flow.subscription.id,
                stripe_subscription_id: flow.subscription.stripe_subscription_id,
                organization_id: org.id,
                organization_name: org.name,
                billing_email: org.billing_email,
                plan_tier: flow.subscription.plan_tier,
                past_due_since: flow.past_due_since,
                planned: flow.planned,
                steps: flow.events,
                due,
                open_invoice,
            });
        }

        let mut pending = Vec::new();
        for event in dunning::pending()? {
            let p = describe(event)?;
            if input
                .organization_id
                .is_none_or(|id| id == p.organization_id)
            {
                pending.push(p);
            }
        }

        let with_due: Vec<&Entry> = subscriptions.iter().filter(|e| !e.due.is_empty()).collect();
        Ok(Output {
            as_of,
            organization_id: input.organization_id,
            past_due: subscriptions.len(),
            count: with_due.len(),
            names: join_unique(with_due.iter().map(|e| e.organization_name.as_str())),
            past_due_names: join_unique(subscriptions.iter().map(|e| e.organization_name.as_str())),
            subscription_ids: subscriptions.iter().map(|e| e.subscription_id).collect(),
            recipients,
            pending_events: pending.len(),
            pending_event_ids: pending.iter().map(|p| p.id).collect(),
            pending_summary: pending
                .iter()
                .map(|p| {
                    format!(
                        "{} ({} {})",
                        p.organization_name, p.stripe_subscription_id, p.step
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            pending,
            subscriptions,
        })
    }
}

/// `a, b` without repeats, in order.
fn join_unique<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique.join(", ")
}

fn describe(event: Event) -> Result<Pending, Failure> {
    let row = db::query(
        "SELECT s.stripe_subscription_id, s.status, o.id AS organization_id, o.name \
         FROM subscriptions s JOIN organizations o ON o.id = s.organization_id WHERE s.id = $1",
        params![event.subscription_id],
    )?;
    let row = row.one()?;
    Ok(Pending {
        id: event.id,
        subscription_id: event.subscription_id,
        stripe_subscription_id: row.get("stripe_subscription_id")?,
        organization_id: row.get("organization_id")?,
        organization_name: row.get("name")?,
        subscription_status: row.get("status")?,
        step: event.step,
        scheduled_for: event.scheduled_for,
    })
}

register_plugin!(DunningCheck);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn names_are_listed_once() {
        let names = ["Ember & Oak", "Fjord Travel Guides", "Ember & Oak"];
        assert_eq!(
            join_unique(names.into_iter()),
            "Ember & Oak, Fjord Travel Guides"
        );
        assert_eq!(join_unique(std::iter::empty()), "");
    }

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [
            r#"{"as_of": "soon"}"#,
            r#"{"organization_id": "six"}"#,
            r#"{"org": 6}"#,
        ] {
            let err = run_json::<DunningCheck>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}");
        }
    }
}
