//! Host implementations of the plugin API, one file per WIT interface. Each checks the
//! step's grant on every call and records what it did on the step's [`StepState`].
//!
//! [`StepState`]: crate::runtime::StepState

mod audit;
mod db;
mod email;
mod log;
mod stripe;

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
