//! The `webhook` grant: the configured endpoints, by name, a step may deliver to, read
//! from `[steps.grants.webhook]` (or a manifest's `[capabilities.webhook]`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::spec::Diagnostics;
use crate::spec::read::{SpannedList, items};

/// `[steps.grants.webhook]` as written.
#[derive(Debug, Deserialize)]
pub struct RawWebhookGrant {
    pub endpoints: Option<SpannedList>,
}

/// Configured webhook endpoints, by name, that the step may deliver to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookGrant {
    pub endpoints: BTreeSet<String>,
}

impl WebhookGrant {
    /// The grant the table names; endpoint names are checked here, whether runbook.toml
    /// configures them is checked when a run starts.
    pub fn parse(raw: &RawWebhookGrant, diags: &mut Diagnostics) -> WebhookGrant {
        let mut grant = WebhookGrant::default();
        for endpoint in items(&raw.endpoints) {
            let name = endpoint.get_ref().trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                diags.error_with_help(
                    endpoint.span(),
                    format!("invalid webhook endpoint name {:?}", endpoint.get_ref()),
                    "name an endpoint from `[webhooks.<name>]` in runbook.toml, like \"app\"",
                );
            } else {
                grant.endpoints.insert(name.to_string());
            }
        }
        grant
    }
}
