//! Stripe API calls made by the host on the plugin's behalf; the plugin never sees the
//! API key. Each operation (`subscriptions.retrieve`, `refunds.create`, ...) must be
//! granted to the step. Responses are Stripe's JSON, untyped: Stripe's objects change
//! more often than plugins do, so read the fields you need.

use serde::Serialize;

use crate::CallError;
use crate::bindings::runbook::plugin::stripe as wit;
use crate::db::from_wit_error;

/// Call `operation` with `params` (serialized to a JSON object).
pub fn call<P: Serialize + ?Sized>(
    operation: &str,
    params: &P,
) -> Result<serde_json::Value, CallError> {
    let params = serde_json::to_string(params)
        .map_err(|e| CallError::Invalid(format!("stripe {operation} params: {e}")))?;
    let response = wit::call(operation, &params).map_err(from_wit_error)?;
    serde_json::from_str(&response)
        .map_err(|e| CallError::Failed(format!("stripe {operation} returned invalid JSON: {e}")))
}
