//! Email to customers about what a procedure did. Sending is best effort: by the time a
//! procedure mails, Stripe has changed, so a refused or failed email is reported in the
//! output, never a reason to fail the step (which would roll back the database's record of
//! that change).

use runbook_sdk::{email, log};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub template: String,
    pub to: Vec<String>,
    /// The host's message id when it was sent.
    pub message_id: Option<String>,
    /// Why it was not sent.
    pub error: Option<String>,
}

/// Send `template` rendered with `context` to `to`, as one message.
pub fn send<C: Serialize + ?Sized>(to: &[String], template: &str, context: &C) -> Notification {
    let recipients: Vec<&str> = to.iter().map(String::as_str).collect();
    let (message_id, error) = match email::send(&recipients, template, context) {
        Ok(id) => (Some(id), None),
        Err(e) => {
            log::warn(format!(
                "{template} email to {} not sent: {e}",
                to.join(", ")
            ));
            (None, Some(e.to_string()))
        }
    };
    Notification {
        template: template.to_owned(),
        to: to.to_vec(),
        message_id,
        error,
    }
}
