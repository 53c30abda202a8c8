//! The reference billing schema's shared rules, for the plugins that change plans: tiers
//! and what each includes ([`tier`]), the moment a procedure acts at ([`clock`]),
//! organizations and whom to tell ([`contacts`]), subscriptions ([`subscription`]) and
//! what Stripe says of one ([`stripe_state`]), grace periods ([`grace`]), the dunning flow
//! ([`dunning`]), invoices and payment events ([`invoice`]), prepaid credits ([`credits`]),
//! moving an organization to a tier with its quotas and entitlements ([`plan`]), open
//! disputes ([`disputes`]), money in emails ([`money`]), telling customers ([`notify`]) and
//! the webhook event log's failed events and alert thresholds ([`webhooks`]).
//!
//! Every function that talks to the database says which tables it touches, per statement
//! kind: a plugin's `plugin.toml` (and its runbook steps) must grant all of them.

pub mod clock;
pub mod contacts;
pub mod credits;
pub mod disputes;
pub mod dunning;
pub mod grace;
pub mod invoice;
pub mod money;
pub mod notify;
pub mod plan;
pub mod stripe_state;
pub mod subscription;
pub mod tier;
pub mod webhooks;

use runbook_sdk::Failure;

/// A failure after Stripe was already changed: says so, because the step's database writes
/// roll back while Stripe's change stands (resync subscriptions with the
/// `subscription-state-mismatch` runbook).
pub fn after_stripe_write(done: &str, failure: Failure) -> Failure {
    Failure::new(
        failure.code,
        format!(
            "{done} in Stripe, but the database was not updated: {}",
            failure.message
        ),
    )
}
