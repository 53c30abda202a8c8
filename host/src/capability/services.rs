//! The outside world as the host reaches it, one service per capability that has one.
//! Built once per run from `runbook.toml` and the host's environment; secrets live in
//! these services and nowhere else.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::email::{EmailConfig, EmailService};
use super::stripe::{StripeConfig, StripeService};
use super::webhook::{WebhookConfig, WebhookService};

/// What the services are built from: each capability's own section of `runbook.toml`,
/// as that capability's `configure` made it. The configuration implements this, so no
/// capability sees the rest of the file.
pub trait ServiceConfig {
    fn stripe(&self) -> &StripeConfig;
    fn webhooks(&self) -> &BTreeMap<String, WebhookConfig>;
    fn email(&self) -> &EmailConfig;
    /// The email templates' folder (`[paths] templates`).
    fn email_templates(&self) -> &Path;
}

#[derive(Debug)]
pub struct Services {
    pub stripe: Arc<StripeService>,
    pub webhook: Arc<WebhookService>,
    pub email: Arc<EmailService>,
}

impl Services {
    /// Why the services `grants` call on cannot be used on this host (a missing Stripe
    /// key or webhook secret, unusable mail settings), one line each; empty when all can.
    pub fn unavailable_for(&self, grants: &super::Grants) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(grant) = &grants.stripe {
            reasons.extend(self.stripe.unavailable_for(grant));
        }
        if let Some(grant) = &grants.webhook {
            reasons.extend(self.webhook.unavailable_for(grant));
        }
        if grants.email.is_some() {
            reasons.extend(self.email.unavailable());
        }
        reasons
    }

    pub fn from_config(config: &impl ServiceConfig) -> Services {
        Services {
            stripe: Arc::new(StripeService::from_config(config.stripe())),
            webhook: Arc::new(WebhookService::from_config(config.webhooks())),
            email: Arc::new(EmailService::from_config(
                config.email(),
                config.email_templates(),
            )),
        }
    }
}
