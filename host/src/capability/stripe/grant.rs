//! The `stripe` grant: operations, and the budgets that bound what they may move.

use std::collections::BTreeSet;

use serde::Serialize;

/// Stripe operations such as `refunds.create`, and the budgets that bound what they may
/// move. Budgets count per run across every step that shares them (see `capability::budget`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StripeGrant {
    pub operations: BTreeSet<String>,
    /// Largest refund one `refunds.create` may make, in the smallest currency unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_refund_amount: Option<i64>,
    /// Largest total of all refunds of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_refund_total: Option<i64>,
    /// Most Stripe write calls (create, update, delete, cancel) of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_writes: Option<u32>,
}
