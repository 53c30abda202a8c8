//! The outside world as the host reaches it, one service per capability that has one.
//! Built once per run from `runbook.toml` and the host's environment; secrets live in
//! these services and nowhere else.

use std::sync::Arc;

use super::email::EmailService;
use super::stripe::StripeService;
use super::webhook::WebhookService;
use crate::spec::config::Config;

#[derive(Debug)]
pub struct Services {
    pub stripe: Arc<StripeService>,
    pub webhook: Arc<WebhookService>,
    pub email: Arc<EmailService>,
}

impl Services {
    pub fn from_config(config: &Config) -> Services {
        Services {
            stripe: Arc::new(StripeService::from_config(config)),
            webhook: Arc::new(WebhookService::from_config(config)),
            email: Arc::new(EmailService::from_config(config)),
        }
    }
}
