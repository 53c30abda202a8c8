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
use super::plan::to_json;
use super::{Capability, Grants, HasCapabilities, PlanEntry, PlanSection};
use crate::contract::email;
use crate::state::{CallDecision, CallRecord};

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

    /// Each mail a dry run rendered: to whom, with which subject.
    fn plan(
        &self,
        calls: &[&CallRecord],
        step_name: &dyn Fn(i64) -> String,
    ) -> Option<PlanSection> {
        let entries = calls
            .iter()
            .filter(|call| call.decision == CallDecision::DryRun)
            .map(|call| {
                let text = |key: &str| call.params[key].as_str().unwrap_or_default().to_string();
                let mail = PlannedEmail {
                    step: step_name(call.step_index),
                    to: call.params["to"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    subject: text("subject"),
                    template: text("template"),
                };
                PlanEntry {
                    line: format!("to {} \"{}\"", mail.to.join(", "), mail.subject),
                    detail: format!("template {} · step {}", mail.template, mail.step),
                    json: to_json(&mail),
                }
            })
            .collect();
        Some(PlanSection {
            key: "emails",
            title: "email",
            note: "rendered, not sent",
            entries,
        })
    }
}

/// A mail a dry run would have sent.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct PlannedEmail {
    pub step: String,
    pub to: Vec<String>,
    pub subject: String,
    pub template: String,
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
