//! `runbook:plugin/webhook`: redelivery of events to the application's own webhook
//! endpoints, signed the way Stripe signs. The grant names endpoints; the service
//! (`service.rs`, from `[webhooks.<name>]` in runbook.toml) holds their URLs and secrets,
//! which plugins never see.

mod config;
mod grant;
mod host;
mod service;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

pub use config::{RawWebhookEndpoint, RawWebhooksConfig, WebhookConfig, configure};
pub use grant::{RawWebhookGrant, WebhookGrant};
pub use service::{MissingSecret, WebhookEndpoint, WebhookService};

use super::calls::CallSession;
use super::plan::planned_calls;
use super::{Capability, Grants, HasCapabilities, PlanSection};
use crate::contract::webhook;
use crate::state::CallRecord;

pub struct Webhook;

impl Capability for Webhook {
    fn interface(&self) -> &'static str {
        "webhook"
    }

    fn granted(&self, grants: &Grants) -> bool {
        grants.webhook.is_some()
    }

    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        webhook::add_to_linker::<T, Webhook>(linker, |t| {
            let c = t.capabilities();
            WebhookHost {
                calls: &mut c.calls,
                step: &c.webhook,
            }
        })
    }

    fn plan(
        &self,
        calls: &[&CallRecord],
        step_name: &dyn Fn(i64) -> String,
    ) -> Option<PlanSection> {
        Some(planned_calls("webhooks", "webhooks", calls, step_name))
    }
}

impl HasData for Webhook {
    type Data<'a> = WebhookHost<'a>;
}

/// The `webhook` capability's state for one step.
pub struct WebhookStep {
    grant: Option<WebhookGrant>,
    service: Arc<WebhookService>,
}

impl WebhookStep {
    pub(super) fn new(grant: Option<WebhookGrant>, service: Arc<WebhookService>) -> WebhookStep {
        WebhookStep { grant, service }
    }
}

/// What a `webhook` call sees of the store.
pub struct WebhookHost<'a> {
    calls: &'a mut CallSession,
    step: &'a WebhookStep,
}
