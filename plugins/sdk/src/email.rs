//! Email to people, rendered by the host from one of its templates. Recipients must match
//! the step's grant.

use serde::Serialize;

use crate::__private::wit::runbook::plugin::email as wit;
use crate::CallError;
use crate::db::from_wit_error;

/// Send `template` rendered with `context` to `to`; returns the message id.
pub fn send<C: Serialize + ?Sized>(
    to: &[&str],
    template: &str,
    context: &C,
) -> Result<String, CallError> {
    let context = serde_json::to_string(context)
        .map_err(|e| CallError::Invalid(format!("email context: {e}")))?;
    wit::send(&wit::Message {
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        template: template.to_owned(),
        context,
    })
    .map_err(from_wit_error)
}
