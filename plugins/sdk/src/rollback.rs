//! The input of a rollback plugin: the step to undo, as the host hands it over.
//!
//! A runbook step may name a `[steps.rollback]` plugin. When a later step fails, the host
//! runs it with `{"step": {"id", "input", "output", "calls"}, ...extra keys}`: the step's
//! input and output and its call journal, one entry per capability call in order. A
//! rollback plugin reads what the step did from there (effects first: their responses are
//! what Stripe really did), undoes what can be undone, and reports exactly what it undid
//! and what it could not.
//!
//! The shapes are `runbook-contract`'s, the crate the host builds this input with, so the
//! two sides cannot drift apart. Embed [`RolledBackStep`] in the plugin's own input:
//!
//! ```
//! use runbook_sdk::rollback::RolledBackStep;
//!
//! #[derive(serde::Deserialize)]
//! struct Input {
//!     step: RolledBackStep,
//! }
//! ```

pub use runbook_contract::rollback::{Decision, JournalCall, RollbackInput, RolledBackStep};
