//! Rollback of a cancel step (`cancel-subscription`, `grace-period-expirations`,
//! `dunning`...): undoes what Stripe allows, reports the rest.
//!
//! From the step's call journal: a `subscriptions.update` that set
//! `cancel_at_period_end=true` is undone with `subscriptions.update
//! cancel_at_period_end=false`, and the flag is cleared in `subscriptions` again. A
//! `subscriptions.cancel` cannot be undone (Stripe does not reactivate a canceled
//! subscription): reported `not_reversible` with the subscription, and the organization's
//! tier stays where the step put it, since the subscription really is canceled. Audited
//! as `subscription.rollback`. Fails (`undo-failed`) only when an undo it attempted
//! failed, naming those that did go through.
//!
//! The input is what the host sends a rollback: `{"step": {"id", "input", "output",
//! "calls"}}`; other keys are ignored.

use billing::clock;
use runbook_sdk::rollback::RolledBackStep;
use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{Failure, Procedure, audit, db, params, register_plugin, stripe};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    step: RolledBackStep,
}

#[derive(Serialize)]
struct Output {
    step_id: String,
    undone: Vec<Undone>,
    not_reversible: Vec<NotReversible>,
    /// Only dry-run placeholders were found: nothing happened in Stripe.
    dry_run: bool,
    summary: String,
}

#[derive(Serialize)]
struct Undone {
    stripe_subscription_id: String,
    action: &'static str,
    dry_run: bool,
}

#[derive(Serialize, Debug, PartialEq)]
struct NotReversible {
    stripe_subscription_id: String,
    action: &'static str,
    why: String,
}

/// What the step did to one subscription.
#[derive(Debug, PartialEq)]
enum Effect {
    CanceledNow(String),
    CancelAtPeriodEnd(String),
}

struct CancelCompensate;

impl Procedure for CancelCompensate {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let (effects, placeholders) = effects(&input.step);
        let tier = &input.step.output["organization_tier"];
        let mut undone = Vec::new();
        let mut not_reversible = Vec::new();
        let mut failed = Vec::new();
        for effect in effects {
            match effect {
                Effect::CanceledNow(id) => not_reversible.push(NotReversible {
                    why: canceled_why(tier),
                    stripe_subscription_id: id,
                    action: "canceled immediately",
                }),
                Effect::CancelAtPeriodEnd(id) => {
                    match stripe::call(
                        "subscriptions.update",
                        &json!({ "id": id, "cancel_at_period_end": false }),
                    ) {
                        Ok(response) => undone.push(Undone {
                            stripe_subscription_id: id,
                            action: "cancel_at_period_end set back to false",
                            dry_run: stripe::is_dry_run(&response),
                        }),
                        Err(e) => failed.push(format!(
                            "{id}: {}",
                            stripe::error_of(&e).map_or_else(|| e.to_string(), |s| s.to_string())
                        )),
                    }
                }
            }
        }
        let undone_ids: Vec<&str> = undone
            .iter()
            .map(|u| u.stripe_subscription_id.as_str())
            .collect();
        if !failed.is_empty() {
            return Err(Failure::new(
                "undo-failed",
                format!(
                    "could not undo cancel_at_period_end of {}{}",
                    failed.join("; "),
                    if undone_ids.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (undone in Stripe, not in the database: {}; resync with subscription-state-mismatch)",
                            undone_ids.join(", ")
                        )
                    }
                ),
            ));
        }
        if !undone.is_empty() {
            let now = clock::db_now()?;
            for u in &undone {
                db::execute(
                    "UPDATE subscriptions SET cancel_at_period_end = FALSE, updated_at = \
                     CASE WHEN status = 'past_due' THEN updated_at ELSE $1 END \
                     WHERE stripe_subscription_id = $2",
                    params![&now, &u.stripe_subscription_id],
                )?;
            }
        }
        for (target, detail) in undone
            .iter()
            .map(|u| {
                (
                    &u.stripe_subscription_id,
                    json!({"undone": u.action, "dry_run": u.dry_run}),
                )
            })
            .chain(not_reversible.iter().map(|n| {
                (
                    &n.stripe_subscription_id,
                    json!({"not_reversible": n.action, "why": n.why}),
                )
            }))
        {
            let mut detail = detail;
            detail["step"] = json!(input.step.id);
            audit::record_json(
                "subscription.rollback",
                &format!("subscription:{target}"),
                &detail,
            );
        }
        let dry_run = undone.is_empty() && not_reversible.is_empty() && placeholders > 0;
        let summary = summary(&undone, &not_reversible, dry_run);
        Ok(Output {
            step_id: input.step.id,
            undone,
            not_reversible,
            dry_run,
            summary,
        })
    }
}

fn truthy(v: &Value) -> bool {
    v == &json!(true) || v == &json!("true")
}

/// What the step did in Stripe, and how many of its writes were dry-run placeholders.
fn effects(step: &RolledBackStep) -> (Vec<Effect>, usize) {
    let mut out = Vec::new();
    let mut placeholders = 0;
    for call in step.stripe_effects() {
        let id = call.params["id"].as_str().unwrap_or_default().to_owned();
        let effect = match call.operation.as_str() {
            "subscriptions.cancel" => Effect::CanceledNow(id),
            "subscriptions.update" if truthy(&call.params["cancel_at_period_end"]) => {
                Effect::CancelAtPeriodEnd(id)
            }
            _ => continue,
        };
        if call.is_dry_run() {
            placeholders += 1;
        } else if !out.contains(&effect) {
            out.push(effect);
        }
    }
    (out, placeholders)
}

fn canceled_why(tier: &Value) -> String {
    let mut why =
        "Stripe cannot reactivate a canceled subscription; subscribe the customer again".to_owned();
    match (tier["before"].as_str(), tier["after"].as_str()) {
        (Some(before), Some(after)) => why.push_str(&format!(
            "; the organization stays on {after} (was {before}) since the subscription is canceled"
        )),
        _ => why.push_str(
            "; the step did not change the organization's tier: it keeps it until downgraded",
        ),
    }
    why
}

fn summary(undone: &[Undone], not_reversible: &[NotReversible], dry_run: bool) -> String {
    if dry_run {
        return "dry run: nothing was canceled, nothing to undo".into();
    }
    let mut parts = Vec::new();
    if !undone.is_empty() {
        let ids: Vec<&str> = undone
            .iter()
            .map(|u| u.stripe_subscription_id.as_str())
            .collect();
        parts.push(format!(
            "undone: cancel at period end of {}",
            ids.join(", ")
        ));
    }
    if !not_reversible.is_empty() {
        let ids: Vec<&str> = not_reversible
            .iter()
            .map(|n| n.stripe_subscription_id.as_str())
            .collect();
        parts.push(format!(
            "not reversible: {} canceled immediately",
            ids.join(", ")
        ));
    }
    if parts.is_empty() {
        "the step canceled nothing: nothing to undo".into()
    } else {
        parts.join("; ")
    }
}

register_plugin!(CancelCompensate);

#[cfg(test)]
mod tests {
    use super::*;

    fn step(calls: &str) -> RolledBackStep {
        runbook_sdk::serde_json::from_str(&format!(r#"{{"id": "cancel", "calls": {calls}}}"#))
            .unwrap()
    }

    #[test]
    fn reads_what_the_step_did() {
        let s = step(
            r#"[{"interface": "db", "operation": "execute", "ok": true},
                {"interface": "stripe", "operation": "subscriptions.cancel", "ok": true,
                 "params": {"id": "sub_1"}, "response": {"id": "sub_1", "status": "canceled"}},
                {"interface": "stripe", "operation": "subscriptions.update", "ok": true,
                 "params": {"id": "sub_2", "cancel_at_period_end": true}, "response": {"id": "sub_2"}},
                {"interface": "stripe", "operation": "subscriptions.update", "ok": true,
                 "params": {"id": "sub_3", "coupon": "X"}, "response": {"id": "sub_3"}},
                {"interface": "stripe", "operation": "subscriptions.cancel", "ok": false,
                 "params": {"id": "sub_4"}, "response": {}}]"#,
        );
        let (effects, placeholders) = effects(&s);
        assert_eq!(
            effects,
            [
                Effect::CanceledNow("sub_1".into()),
                Effect::CancelAtPeriodEnd("sub_2".into())
            ]
        );
        assert_eq!(placeholders, 0);
    }

    #[test]
    fn dry_run_placeholders_are_not_effects() {
        let s = step(
            r#"[{"interface": "stripe", "operation": "subscriptions.cancel", "ok": true,
                 "params": {"id": "sub_1"}, "response": {"id": "dryrun_1", "dry_run": true}}]"#,
        );
        let (effects, placeholders) = effects(&s);
        assert!(effects.is_empty());
        assert_eq!(placeholders, 1);
        assert_eq!(
            summary(&[], &[], true),
            "dry run: nothing was canceled, nothing to undo"
        );
    }

    #[test]
    fn reports_say_what_stands() {
        let why = canceled_why(&json!({"before": "pro", "after": "free"}));
        assert!(why.ends_with(
            "the organization stays on free (was pro) since the subscription is canceled"
        ));
        assert!(canceled_why(&Value::Null).ends_with("it keeps it until downgraded"));
        let nr = [NotReversible {
            stripe_subscription_id: "sub_1".into(),
            action: "canceled immediately",
            why,
        }];
        let undone = [Undone {
            stripe_subscription_id: "sub_2".into(),
            action: "cancel_at_period_end set back to false",
            dry_run: false,
        }];
        assert_eq!(
            summary(&undone, &nr, false),
            "undone: cancel at period end of sub_2; not reversible: sub_1 canceled immediately"
        );
        assert_eq!(
            summary(&[], &[], false),
            "the step canceled nothing: nothing to undo"
        );
    }
}
