//! Stripe API calls made by the host on the plugin's behalf; the plugin never sees the
//! API key. Each operation (`subscriptions.retrieve`, `refunds.create`, ...) must be
//! granted to the step. Responses are Stripe's JSON, untyped: Stripe's objects change
//! more often than plugins do, so read the fields you need.
//!
//! An error Stripe answered (a missing object, a declined card) arrives as
//! [`CallError::Failed`] whose text is JSON with Stripe's HTTP status, error type, code
//! and message; [`StripeError::from_call_error`] reads it back, and [`call_optional`]
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

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CallError;
use crate::bindings::runbook::plugin::stripe as wit;
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
    StripeError::from_call_error(error).is_some_and(|e| e.is_not_found())
}

/// Whether `response` is the placeholder a dry run answers a write with.
pub fn is_dry_run(response: &serde_json::Value) -> bool {
    response.get("dry_run") == Some(&serde_json::Value::Bool(true))
}

/// An error answered by Stripe itself, as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StripeError {
    /// The HTTP status (402 card declined, 404 missing, ...).
    pub status: u16,
    /// Stripe's error type: `invalid_request_error`, `card_error`, `api_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Stripe's error code (`resource_missing`, `card_declined`, ...), when it gave one.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
}

impl StripeError {
    /// The Stripe error inside a `failed` call error; `None` for any other error (a
    /// denial, a timeout, ...).
    pub fn from_call_error(error: &CallError) -> Option<StripeError> {
        match error {
            CallError::Failed(text) => StripeError::parse(text),
            _ => None,
        }
    }

    /// Read the host's JSON error text.
    pub fn parse(text: &str) -> Option<StripeError> {
        serde_json::from_str(text).ok()
    }

    /// The object does not exist (HTTP 404 or code `resource_missing`).
    pub fn is_not_found(&self) -> bool {
        self.status == 404 || self.code.as_deref() == Some("resource_missing")
    }
}

impl fmt::Display for StripeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stripe {} {}", self.status, self.kind)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING: &str = r#"{"status":404,"type":"invalid_request_error","code":"resource_missing","message":"No such coupon: 'LAUNCH20'"}"#;

    #[test]
    fn reads_the_hosts_error_text() {
        let e = StripeError::from_call_error(&CallError::Failed(MISSING.into())).unwrap();
        assert_eq!(e.status, 404);
        assert_eq!(e.kind, "invalid_request_error");
        assert_eq!(e.code.as_deref(), Some("resource_missing"));
        assert_eq!(e.message, "No such coupon: 'LAUNCH20'");
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "Stripe 404 invalid_request_error (resource_missing): No such coupon: 'LAUNCH20'"
        );
    }

    #[test]
    fn code_may_be_null_or_absent_and_extra_fields_are_ignored() {
        let e = StripeError::parse(
            r#"{"status":404,"type":"invalid_request_error","code":null,"message":"Not Found","param":null}"#,
        )
        .unwrap();
        assert_eq!(e.code, None);
        assert!(e.is_not_found(), "404 alone means missing");
        let e = StripeError::parse(
            r#"{"status":400,"type":"invalid_request_error","code":"resource_missing"}"#,
        )
        .unwrap();
        assert!(e.is_not_found(), "the code alone means missing");
        assert_eq!(e.message, "");
        let declined = StripeError::parse(
            r#"{"status":402,"type":"card_error","code":"card_declined","message":"Your card was declined."}"#,
        )
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
            assert_eq!(StripeError::from_call_error(&e), None, "{e}");
            assert!(!is_not_found(&e));
        }
    }

    #[test]
    fn dry_run_placeholders() {
        assert!(is_dry_run(
            &serde_json::json!({"id": "dryrun_refund_1", "dry_run": true})
        ));
        assert!(!is_dry_run(&serde_json::json!({"id": "re_1"})));
        assert!(!is_dry_run(&serde_json::json!({"dry_run": "true"})));
    }
}
