//! "Apply Coupon/Discount": create the coupon in Stripe if it does not exist, apply it to
//! the organization's live subscription, and verify the discount.
//!
//! `coupons.retrieve` first. A missing coupon is created with the given id and terms
//! (`percent_off`, or `amount_off` with `currency`; `duration`, `duration_in_months` when
//! repeating). An existing coupon is used as it is, unless the terms given contradict it or
//! it is no longer valid: then nothing is applied (`precondition`). Then
//! `subscriptions.update` with `coupon`, and `subscriptions.retrieve` to check that the
//! subscription's discount is that coupon (`discount.coupon.id`, or an expanded
//! `discounts[].coupon.id`); a discount that is not there fails the step
//! (`verification-failed`) after the audit record. In a dry run nothing is sent, so nothing
//! is verified (`verified: null`). Audited as `coupon.applied` on `subscription:<id>`.

mod terms;

use billing::subscription;
use runbook_sdk::serde_json::{Value as Json, json};
use runbook_sdk::{Failure, Procedure, audit, register_plugin, stripe};
use serde::{Deserialize, Serialize};
use terms::Terms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
    coupon_id: String,
    #[serde(default)]
    percent_off: Option<f64>,
    /// Smallest currency unit.
    #[serde(default)]
    amount_off: Option<i64>,
    /// For `amount_off`; default `usd`.
    #[serde(default)]
    currency: Option<String>,
    /// `once` (default when creating), `repeating` or `forever`.
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    duration_in_months: Option<i64>,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    subscription_id: i64,
    stripe_subscription_id: String,
    coupon_id: String,
    /// The coupon did not exist and was created.
    coupon_created: bool,
    /// The coupon as Stripe has it (or as created).
    coupon: Json,
    /// The discount on the subscription after the update; null if none or not verified.
    discount: Json,
    /// Whether Stripe shows the discount; null in a dry run.
    verified: Option<bool>,
    dry_run: bool,
}

struct ApplyCoupon;

impl Procedure for ApplyCoupon {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let terms = Terms::from_input(
            input.percent_off,
            input.amount_off,
            input.currency.as_deref(),
            input.duration.as_deref(),
            input.duration_in_months,
        )?;
        let coupon_id = input.coupon_id.trim().to_owned();
        if coupon_id.is_empty()
            || coupon_id.len() > 200
            || !coupon_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Failure::invalid_input(format!(
                "coupon_id {coupon_id:?}: use letters, digits, `_` and `-`"
            )));
        }
        let sub = subscription::current(input.organization_id)?.ok_or_else(|| {
            Failure::precondition(format!(
                "organization {} has no active, past-due or trialing subscription",
                input.organization_id
            ))
        })?;

        let (coupon, coupon_created) =
            match stripe::call_optional("coupons.retrieve", &json!({ "id": coupon_id }))? {
                Some(existing) => {
                    terms.check_against(&existing)?;
                    (existing, false)
                }
                None => {
                    let params = terms.create_params(&coupon_id)?;
                    let created = stripe::call("coupons.create", &params)?;
                    // A dry run's placeholder echoes the params: the coupon as it would be.
                    (created, true)
                }
            };

        let updated = stripe::call(
            "subscriptions.update",
            &json!({ "id": sub.stripe_subscription_id, "coupon": coupon_id }),
        )?;
        let dry_run = stripe::is_dry_run(&updated);
        let (verified, discount) = if dry_run {
            (None, Json::Null)
        } else {
            let current = stripe::call(
                "subscriptions.retrieve",
                &json!({ "id": sub.stripe_subscription_id }),
            )?;
            match terms::discount_with(&current, &coupon_id) {
                Some(d) => (Some(true), d.clone()),
                None => (Some(false), current["discount"].clone()),
            }
        };

        audit::record_json(
            "coupon.applied",
            &format!("subscription:{}", sub.stripe_subscription_id),
            &json!({
                "organization_id": input.organization_id,
                "coupon_id": coupon_id,
                "coupon_created": coupon_created,
                "percent_off": coupon["percent_off"],
                "amount_off": coupon["amount_off"],
                "currency": coupon["currency"],
                "duration": coupon["duration"],
                "duration_in_months": coupon["duration_in_months"],
                "verified": verified,
                "dry_run": dry_run,
            }),
        );
        if verified == Some(false) {
            return Err(Failure::new(
                "verification-failed",
                format!(
                    "{} was updated with coupon {coupon_id}, but Stripe shows no such discount on it",
                    sub.stripe_subscription_id
                ),
            ));
        }
        Ok(Output {
            organization_id: input.organization_id,
            subscription_id: sub.id,
            stripe_subscription_id: sub.stripe_subscription_id,
            coupon_id,
            coupon_created,
            coupon,
            discount,
            verified,
            dry_run,
        })
    }
}

register_plugin!(ApplyCoupon);

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_sdk::__private::run_json;

    #[test]
    fn bad_input_fails_before_any_call() {
        for input in [
            r#"{"organization_id": 2, "coupon_id": ""}"#,
            r#"{"organization_id": 2, "coupon_id": "a/b"}"#,
            r#"{"organization_id": 2, "coupon_id": "X", "percent_off": 10, "amount_off": 100}"#,
            r#"{"organization_id": 2, "coupon_id": "X", "duration": "repeating"}"#,
        ] {
            let err = run_json::<ApplyCoupon>(input).unwrap_err();
            assert_eq!(err.code, "invalid-input", "{input}: {err}");
        }
    }
}
