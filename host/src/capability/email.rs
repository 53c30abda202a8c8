//! `runbook:plugin/email`: declared in the plugin API, not yet provided by this host.
//!
//! Like Stripe: refused at load without a grant, and `unavailable` with one, until the
//! email capability lands. Nothing is sent, and nothing claims to be.

use crate::runtime::StepState;
use crate::runtime::email_bindings::{self, Message};
use crate::runtime::types_bindings::CallError;

impl email_bindings::Host for StepState {
    async fn send(&mut self, message: Message) -> wasmtime::Result<Result<String, CallError>> {
        Ok(Err(CallError::Unavailable(format!(
            "email to {} recipient(s) with template `{}`: the email capability is not available on this host yet",
            message.to.len(),
            message.template
        ))))
    }
}
