//! What the `stripe` interface answers besides Stripe's own objects: the text of a
//! `failed` call error when Stripe itself refused ([`StripeError`]), and the placeholder a
//! dry run answers a write with ([`dry_run_placeholder`], recognised by [`is_dry_run`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The key that marks a dry run's placeholder, `true` there and absent from Stripe's
/// objects.
pub const DRY_RUN: &str = "dry_run";

/// An error answered by Stripe itself, sent as the JSON text of a `failed` call error so a
/// plugin can tell "missing" from "declined".
// Fields in sorted order: the host has always written this text through a
// `serde_json::Value`, whose keys are sorted, and serialising the struct directly must give
// the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeError {
    /// Stripe's error code (`resource_missing`, `card_declined`, ...), when it gave one.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// The request parameter at fault, when Stripe named one.
    #[serde(default)]
    pub param: Option<String>,
    /// The HTTP status (402 card declined, 404 missing, ...).
    pub status: u16,
    /// Stripe's error type: `invalid_request_error`, `card_error`, `api_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
}

impl StripeError {
    /// Reads the text of a `failed` call error; `None` when it is not a Stripe error (a
    /// timeout, a transport failure: those are plain text).
    pub fn parse(text: &str) -> Option<StripeError> {
        serde_json::from_str(text).ok()
    }

    /// The text the host puts in the call error.
    pub fn to_json(&self) -> String {
        // Only strings, numbers and options: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
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
        write!(f, ": {}", self.message.as_deref().unwrap_or_default())
    }
}

/// What a dry run answers instead of making a write: the request echoed back, marked with
/// [`DRY_RUN`], with `object` named, and an id no real object has (unless the request
/// named one). `refund` is the amount a `refunds.create` would have refunded.
pub fn dry_run_placeholder(
    params: &Map<String, Value>,
    object: &str,
    seq: i64,
    refund: Option<i64>,
) -> Value {
    let mut placeholder = params.clone();
    let id = params
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("dryrun_{object}_{seq}"), str::to_string);
    placeholder.insert("id".into(), Value::String(id));
    placeholder.insert("object".into(), Value::String(object.into()));
    placeholder.insert(DRY_RUN.into(), Value::Bool(true));
    placeholder.insert("livemode".into(), Value::Bool(false));
    if let Some(amount) = refund {
        placeholder.insert("amount".into(), Value::from(amount));
        placeholder.insert("status".into(), Value::String(DRY_RUN.into()));
    }
    Value::Object(placeholder)
}

/// Whether `response` is the placeholder a dry run answers a write with.
pub fn is_dry_run(response: &Value) -> bool {
    response.get(DRY_RUN) == Some(&Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_error_text_is_what_the_host_has_always_sent() {
        let e = StripeError {
            code: Some("resource_missing".into()),
            message: Some("No such coupon: 'LAUNCH20'".into()),
            param: Some("id".into()),
            status: 404,
            kind: "invalid_request_error".into(),
        };
        let before = json!({
            "status": 404,
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such coupon: 'LAUNCH20'",
            "param": "id",
        })
        .to_string();
        assert_eq!(e.to_json(), before);
        assert_eq!(StripeError::parse(&before), Some(e.clone()));
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "Stripe 404 invalid_request_error (resource_missing): No such coupon: 'LAUNCH20'"
        );
    }

    #[test]
    fn absent_and_null_fields_read_as_none() {
        let e = StripeError::parse(
            r#"{"status":400,"type":"invalid_request_error","code":"resource_missing"}"#,
        )
        .unwrap();
        assert!(e.is_not_found(), "the code alone means missing");
        assert_eq!((e.message, e.param), (None, None));
        let e =
            StripeError::parse(r#"{"status":404,"type":"api_error","code":null,"message":null}"#)
                .unwrap();
        assert!(e.is_not_found(), "404 alone means missing");
        assert_eq!(e.to_string(), "Stripe 404 api_error: ");
        assert_eq!(StripeError::parse("stripe refunds.create: timed out"), None);
    }

    #[test]
    fn placeholders() {
        let params = json!({"charge": "ch_1", "amount": 5})
            .as_object()
            .unwrap()
            .clone();
        let p = dry_run_placeholder(&params, "refund", 3, Some(900));
        assert_eq!(
            p,
            json!({"id": "dryrun_refund_3", "object": "refund", "charge": "ch_1", "amount": 900,
                   "status": "dry_run", "dry_run": true, "livemode": false})
        );
        assert!(is_dry_run(&p));
        let named = json!({"id": "LAUNCH20"}).as_object().unwrap().clone();
        assert_eq!(
            dry_run_placeholder(&named, "coupon", 1, None)["id"],
            "LAUNCH20"
        );
        assert!(!is_dry_run(&json!({"id": "re_1"})));
        assert!(!is_dry_run(&json!({"dry_run": "true"})));
    }
}
