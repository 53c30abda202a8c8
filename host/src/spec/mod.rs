//! Every TOML file the host reads, one way: the text is parsed with spans, deserialized
//! into raw shapes (unknown keys and wrong types reported), validated into a model, and
//! every problem lands in one [`Diagnostics`] with file:line:column.
//!
//! One folder per file kind: [`config`] (`runbook.toml`), [`runbook`] (runbook files)
//! and [`manifest`] (plugin manifests), each raw → validate → model; [`lock`]
//! (`runbook.lock`, small enough for one file). Shared here: the
//! reader ([`read`]), allowed keys and did-you-mean ([`keys`]), value
//! rules ([`values`]), the limits table of `[limits]` and `[steps.limits]` ([`limits`]) and the diagnostics themselves ([`diagnostic`]).

pub mod config;
pub mod diagnostic;
pub(crate) mod keys;
pub mod limits;
pub mod lock;
pub mod manifest;
pub(crate) mod read;
pub mod runbook;
#[cfg(test)]
mod tests;
pub mod values;

pub use diagnostic::{Diagnostic, Diagnostics};
