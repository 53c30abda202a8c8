//! The JSON shapes the host and plugins exchange inside the WIT's JSON strings, written
//! once and compiled into both sides (the host by path, plugins through `runbook-sdk`), as
//! Zed's extension API shares its `settings.rs` between host and guest.
//!
//! The WIT says "a string"; this crate says which JSON: the input of a rollback plugin
//! ([`rollback`]) and what the `stripe` interface answers besides Stripe's own objects
//! ([`stripe`]: the error text and the dry-run placeholder).
//!
//! Compatibility rules, because a plugin may be built against an older copy than the host
//! runs: readers ignore unknown fields (serde's default; never `deny_unknown_fields` here),
//! fields a plugin reads default when absent, and a new enum value reads as `Unknown`
//! rather than failing the whole input.

pub mod rollback;
pub mod stripe;

pub use rollback::{Decision, JournalCall, RollbackInput, RolledBackStep};
pub use stripe::StripeError;
