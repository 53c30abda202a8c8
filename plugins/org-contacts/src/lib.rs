//! Look up an organization and whom billing mail goes to: its billing email and its owners'
//! and admins' emails. A runbook runs it before a step that sends email, so that step's
//! email grant can name exactly these addresses (`{{ steps.contacts.output.billing_email }}`).
//! Fails `precondition` when the organization does not exist. Read-only.

use billing::contacts;
use runbook_sdk::{Failure, Procedure, register_plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    organization_id: i64,
}

#[derive(Serialize)]
struct Output {
    organization_id: i64,
    name: String,
    plan_tier: String,
    billing_email: String,
    stripe_customer_id: Option<String>,
    /// Owners first, then admins.
    admin_emails: Vec<String>,
    /// Whom plan changes are announced to: the admins, or the billing email without any.
    plan_recipients: Vec<String>,
}

struct OrgContacts;

impl Procedure for OrgContacts {
    type Input = Input;
    type Output = Output;

    fn run(input: Input) -> Result<Output, Failure> {
        let org = contacts::organization(input.organization_id)?;
        let admin_emails = contacts::admin_emails(org.id)?;
        let plan_recipients = if admin_emails.is_empty() {
            vec![org.billing_email.clone()]
        } else {
            admin_emails.clone()
        };
        Ok(Output {
            organization_id: org.id,
            name: org.name,
            plan_tier: org.plan_tier,
            billing_email: org.billing_email,
            stripe_customer_id: org.stripe_customer_id,
            admin_emails,
            plan_recipients,
        })
    }
}

register_plugin!(OrgContacts);
