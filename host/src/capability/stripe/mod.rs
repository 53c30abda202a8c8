//! `runbook:plugin/stripe`: Stripe API calls on the plugin's behalf. The grant
//! (`grant.rs`) names operations and budgets; the operation table (`operations.rs`) is
//! what the host can call at all; the service (`service.rs`) holds the client and key.

mod config;
mod grant;
mod host;
mod operations;
mod service;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

pub use config::{RawStripeConfig, StripeConfig, configure};
pub use grant::{RawStripeGrant, StripeGrant};
pub use operations::{BadId, StripeOperation, stripe_operation, stripe_operation_names};
pub use service::{StripeClient, StripeService, StripeUnavailable};

use super::calls::CallSession;
use super::plan::planned_calls;
use super::{Capability, Grants, HasCapabilities, PlanSection};
use crate::contract::stripe;
use crate::state::CallRecord;

pub struct Stripe;

impl Capability for Stripe {
    fn interface(&self) -> &'static str {
        "stripe"
    }

    fn granted(&self, grants: &Grants) -> bool {
        grants.stripe.is_some()
    }

    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        stripe::add_to_linker::<T, Stripe>(linker, |t| {
            let c = t.capabilities();
            StripeHost {
                calls: &mut c.calls,
                step: &c.stripe,
            }
        })
    }

    fn plan(
        &self,
        calls: &[&CallRecord],
        step_name: &dyn Fn(i64) -> String,
    ) -> Option<PlanSection> {
        Some(planned_calls("stripe", "stripe", calls, step_name))
    }
}

impl HasData for Stripe {
    type Data<'a> = StripeHost<'a>;
}

/// The `stripe` capability's state for one step.
pub struct StripeStep {
    grant: Option<StripeGrant>,
    service: Arc<StripeService>,
}

impl StripeStep {
    pub(super) fn new(grant: Option<StripeGrant>, service: Arc<StripeService>) -> StripeStep {
        StripeStep { grant, service }
    }
}

/// What a `stripe` call sees of the store.
pub struct StripeHost<'a> {
    calls: &'a mut CallSession,
    step: &'a StripeStep,
}
