//! Stripe API calls made by the host on the plugin's behalf; the plugin never sees the
//! API key. Each operation (`subscriptions.retrieve`, `refunds.create`, ...) must be
//! granted to the step. Responses are Stripe's JSON, untyped: Stripe's objects change
//! more often than plugins do, so read the fields you need.
//!
//! An error Stripe answered (a missing object, a declined card) arrives as
//! [`CallError::Failed`] whose text is JSON with Stripe's HTTP status, error type, code
//! and message; [`error_of`] reads it back as a [`StripeError`], and [`call_optional`]
//! turns "no such object" into `None`:
//!
//! ```no_run
//! use runbook_sdk::{stripe, serde_json::json};
//! # fn f() -> Result<(), runbook_sdk::CallError> {
//! let coupon = match stripe::call_optional("coupons.retrieve", &json!({"id": "LAUNCH20"}))? {
//!     Some(coupon) => coupon,
//!     None => stripe::call(
//!         "coupons.create",
//!         &json!({"id": "LAUNCH20", "percent_off": 20, "duration": "once"}),
//!     )?,
//! };
//! # Ok(()) }
//! ```
//!
//! In a dry run the host does not send writes (create, update, cancel, ...): it answers
//! them with a placeholder, `{"id": "dryrun_...", "object": ..., "dry_run": true, ...the
//! params}` (see [`is_dry_run`]). Plugins should not rely on fields of a write's response
//! they did not send; prefer the data they already have.
//!
//! Both the error text and the placeholder are `runbook-contract`'s shapes, the ones the
//! host writes them with.

use serde::Serialize;

use crate::__private::wit::runbook::plugin::stripe as wit;
use crate::CallError;
use crate::db::from_wit_error;

/// Call `operation` with `params` (serialized to a JSON object).
pub fn call<P: Serialize + ?Sized>(
    operation: &str,
    params: &P,
) -> Result<serde_json::Value, CallError> {
    let response = call_raw(operation, params)?;
    serde_json::from_str(&response)
        .map_err(|e| CallError::Failed(format!("stripe {operation} returned invalid JSON: {e}")))
}

/// Like [`call`], but returns Stripe's response text as it came, e.g. to pass an event on
/// unchanged.
pub fn call_raw<P: Serialize + ?Sized>(operation: &str, params: &P) -> Result<String, CallError> {
    let params = serde_json::to_string(params)
        .map_err(|e| CallError::Invalid(format!("stripe {operation} params: {e}")))?;
    wit::call(operation, &params).map_err(from_wit_error)
}

/// Like [`call`], but `Ok(None)` when Stripe says the object does not exist (HTTP 404 or
/// code `resource_missing`).
pub fn call_optional<P: Serialize + ?Sized>(
    operation: &str,
    params: &P,
) -> Result<Option<serde_json::Value>, CallError> {
    match call(operation, params) {
        Ok(value) => Ok(Some(value)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `error` is Stripe saying the object does not exist.
pub fn is_not_found(error: &CallError) -> bool {
    error_of(error).is_some_and(|e| e.is_not_found())
}

pub use runbook_contract::stripe::{StripeError, is_dry_run};

/// The Stripe error inside a `failed` call error; `None` for any other error (a denial,
/// a timeout, ...).
pub fn error_of(error: &CallError) -> Option<StripeError> {
    match error {
        CallError::Failed(text) => StripeError::parse(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING: &str = r#"{"status":404,"type":"invalid_request_error","code":"resource_missing","message":"No such coupon: 'LAUNCH20'"}"#;

    #[test]
    fn reads_the_hosts_error_text() {
        let e = error_of(&CallError::Failed(MISSING.into())).unwrap();
        assert_eq!(e.status, 404);
        assert_eq!(e.kind, "invalid_request_error");
        assert_eq!(e.code.as_deref(), Some("resource_missing"));
        assert_eq!(e.message.as_deref(), Some("No such coupon: 'LAUNCH20'"));
        let declined = error_of(&CallError::Failed(
            r#"{"status":402,"type":"card_error","code":"card_declined","message":"Your card was declined."}"#.into(),
        ))
        .unwrap();
        assert!(!declined.is_not_found());
        assert_eq!(
            declined.to_string(),
            "Stripe 402 card_error (card_declined): Your card was declined."
        );
    }

    #[test]
    fn other_errors_are_not_stripe_errors() {
        assert!(is_not_found(&CallError::Failed(MISSING.into())));
        for e in [
            CallError::Failed("stripe coupons.retrieve: timed out".into()),
            CallError::Denied(MISSING.into()),
            CallError::Unavailable("stripe is not configured".into()),
            CallError::Invalid("{}".into()),
        ] {
            assert_eq!(error_of(&e), None, "{e}");
            assert!(!is_not_found(&e));
        }
    }
}
