//! Host implementations of the plugin API, one file per WIT interface. Each checks the
//! step's grant on every call and records what it did on the step's [`StepState`].
//!
//! [`StepState`]: crate::runtime::StepState

mod audit;
mod budget;
mod db;
mod db_journal;
mod effects;
mod email;
mod log;
mod redact;
mod services;
mod stripe;
mod stripe_operations;
mod webhook;

pub use budget::RunBudget;
pub use effects::EffectSession;
pub use email::render_template;
pub use redact::redact;
pub use services::Services;
pub use stripe_operations::{StripeOperation, stripe_operation, stripe_operation_names};

use crate::runtime::{StepState, types_bindings};

/// The `types` interface has no functions; the generated trait still needs an impl.
impl types_bindings::Host for StepState {}

/// Caps a plugin-supplied string before it is stored, so one call cannot bloat the
/// state store or the audit log.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
