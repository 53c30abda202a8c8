//! The `webhook` grant: the configured endpoints, by name, a step may deliver to.

use std::collections::BTreeSet;

use serde::Serialize;

/// Configured webhook endpoints, by name, that the step may deliver to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookGrant {
    pub endpoints: BTreeSet<String>,
}
