//! "Dunning Flow": perform the dunning steps due at `as_of` (see `billing::dunning`).
//!
//! For each past-due subscription, oldest failure first: a flow not yet in the database
//! is started (`dunning.started`); then each due step in order. `notice` (day 0): the
//! `payment-failure-notice` email to the billing email. `retry` (day 3): Stripe
//! `invoices.pay` on the subscription's oldest open invoice; paid, the invoice is recorded
//! paid, the subscription `active` again and the rest of its flow closed as `recovered`;
//! declined (Stripe's card error), a `payment_failed` payment event, and the flow goes on.
//! `downgrade` (day 7, Enterprise 14): Stripe `subscriptions.cancel`, the subscription
//! `canceled`, the organization moved to the tier its remaining subscriptions give it
//! (free without one). Each step completed in `dunning_events` (`done`) and audited
//! (`dunning.notice_sent`, `dunning.payment_retried`, `dunning.recovered`,
//! `dunning.downgraded`).
//!
//! A step that fails (Stripe or the mail server said no, no open invoice to retry) is
//! reported `failed`, stays pending for the next run, and holds back its subscription's
//! later steps; the other subscriptions go on. If the host refuses a call (a grant, a
//! budget) the step fails when nothing was done yet, else the rest is `not_attempted`.

mod steps;

use billing::dunning::{self, Flow};
use billing::{clock, contacts, subscription};
use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{Failure, Procedure, Timestamp, audit, log, register_plugin};
use serde::{Deserialize, Serialize};
use steps::Runner;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The instant to judge by; empty or null for the database's clock.
    #[serde(default)]
    as_of: Option<String>,
    /// Where the notice sends customers to update their payment method.
    #[serde(default)]
    billing_portal_url: Option<String>,
}

#[derive(Serialize)]
struct Output {
    as_of: Timestamp,
    past_due: usize,
    flows_started: usize,
    notices_sent: usize,
    retries_paid: usize,
    retries_declined: usize,
    downgraded: usize,
    failed: usize,
    not_attempted: usize,
    /// Why the run stopped early, if it did.
    stopped: Option<String>,
    results: Vec<SubscriptionResult>,
}

#[derive(Serialize)]
struct SubscriptionResult {
    subscription_id: i64,
    stripe_subscription_id: String,
    organization_id: i64,
    organization_name: String,
    plan_tier: String,
    past_due_since: Timestamp,
    flow_started: bool,
    actions: Vec<Action>,
}

/// One due step and what became of it.
#[derive(Serialize)]
pub struct Action {
    pub step: String,
    pub event_id: i64,
    pub scheduled_for: Timestamp,
    /// `sent`, `paid`, `declined`, `retried` (a dry run), `canceled`, `failed`, `held`
    /// (an earlier step of the subscription failed), `not_attempted`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub dry_run: bool,
    /// What the step did: message id, invoice, refund of the flow, tier change, ...
    pub detail: Value,
}

struct Dunning;

impl Procedure for Dunning {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let as_of = clock::as_of(input.as_of.as_deref())?;
        let now = clock::db_now()?;
        let mut flows: Vec<Flow> = Vec::new();
        for sub in subscription::past_due()? {
            flows.push(dunning::flow(sub)?);
        }
        flows.sort_by(|a, b| a.past_due_since.cmp(&b.past_due_since));
        let past_due = flows.len();

        let mut runner = Runner::new(
            now,
            as_of.clone(),
            input.billing_portal_url.unwrap_or_default(),
        );
        let mut results = Vec::new();
        let mut flows_started = 0;
        for flow in flows {
            let org = contacts::organization(flow.subscription.organization_id)?;
            let flow_started = flow.planned;
            let flow = dunning::start(flow).map_err(|f| runner.after_effects(f))?;
            if flow_started {
                flows_started += 1;
                audit::record_json(
                    "dunning.started",
                    &format!("subscription:{}", flow.subscription.stripe_subscription_id),
                    &json!({
                        "organization_id": org.id,
                        "past_due_since": flow.past_due_since,
                        "schedule": flow.events.iter()
                            .map(|e| json!({"step": e.step, "scheduled_for": e.scheduled_for, "event_id": e.id}))
                            .collect::<Vec<_>>(),
                    }),
                );
            }
            let actions = runner.perform(&flow, &org)?;
            results.push(SubscriptionResult {
                subscription_id: flow.subscription.id,
                stripe_subscription_id: flow.subscription.stripe_subscription_id.clone(),
                organization_id: org.id,
                organization_name: org.name.clone(),
                plan_tier: flow.subscription.plan_tier.clone(),
                past_due_since: flow.past_due_since.clone(),
                flow_started,
                actions,
            });
        }

        let count = |step: &str, outcome: &str| {
            results
                .iter()
                .flat_map(|r| &r.actions)
                .filter(|a| (step.is_empty() || a.step == step) && a.outcome == outcome)
                .count()
        };
        let output = Output {
            as_of,
            past_due,
            flows_started,
            notices_sent: count("notice", "sent"),
            retries_paid: count("retry", "paid"),
            retries_declined: count("retry", "declined"),
            downgraded: count("downgrade", "canceled"),
            failed: count("", "failed"),
            not_attempted: count("", "not_attempted"),
            stopped: runner.stopped.clone(),
            results,
        };
        log::log_with(
            log::Level::Info,
            "dunning steps performed",
            &[
                ("past_due", &output.past_due),
                ("notices_sent", &output.notices_sent),
                ("retries_paid", &output.retries_paid),
                ("downgraded", &output.downgraded),
                ("failed", &output.failed),
            ],
        );
        Ok(output)
    }
}

register_plugin!(Dunning);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [r#"{"as_of": "2026-02-30"}"#, r#"{"notify": true}"#] {
            let err = run_json::<Dunning>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}");
        }
    }
}
