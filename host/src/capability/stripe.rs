//! `runbook:plugin/stripe`: declared in the plugin API, not yet provided by this host.
//!
//! A component that imports it is refused at load unless its step grants Stripe
//! operations; with a grant, every call answers `unavailable` until the Stripe
//! capability lands. It never pretends a call was made.

use crate::runtime::StepState;
use crate::runtime::stripe_bindings;
use crate::runtime::types_bindings::CallError;

impl stripe_bindings::Host for StepState {
    async fn call(
        &mut self,
        operation: String,
        _params: String,
    ) -> wasmtime::Result<Result<String, CallError>> {
        Ok(Err(CallError::Unavailable(format!(
            "stripe `{operation}`: the Stripe capability is not available on this host yet"
        ))))
    }
}
