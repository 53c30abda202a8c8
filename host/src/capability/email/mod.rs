//! `runbook:plugin/email`: messages rendered by the host from its templates
//! (`render.rs`) and sent to recipients the step's grant allows (`grant.rs`), through SMTP
//! or into an outbox folder of `.eml` files (`service.rs`). In a dry run they are
//! rendered and planned, not sent.

mod config;
mod grant;
mod host;
mod render;
mod service;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

pub use config::{
    EmailConfig, EmailDelivery, RawEmailConfig, RawSmtpConfig, SmtpConfig, SmtpTls, configure,
};
pub use grant::{EmailGrant, RawEmailGrant, RawEmailNeeds, glob_match};
pub use service::{EmailService, MailTransport};

use super::calls::CallSession;
use super::{Capability, Grants, HasCapabilities};
use crate::contract::email;

pub struct Email;

impl Capability for Email {
    fn interface(&self) -> &'static str {
        "email"
    }

    fn granted(&self, grants: &Grants) -> bool {
        grants.email.is_some()
    }

    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        email::add_to_linker::<T, Email>(linker, |t| {
            let c = t.capabilities();
            EmailHost {
                calls: &mut c.calls,
                step: &c.email,
            }
        })
    }
}

impl HasData for Email {
    type Data<'a> = EmailHost<'a>;
}

/// The `email` capability's state for one step.
pub struct EmailStep {
    grant: Option<EmailGrant>,
    service: Arc<EmailService>,
}

impl EmailStep {
    pub(super) fn new(grant: Option<EmailGrant>, service: Arc<EmailService>) -> EmailStep {
        EmailStep { grant, service }
    }
}

/// What an `email` call sees of the store.
pub struct EmailHost<'a> {
    calls: &'a mut CallSession,
    step: &'a EmailStep,
}
