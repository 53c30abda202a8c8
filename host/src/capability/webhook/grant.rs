//! The `webhook` grant: the configured endpoints, by name, a step may deliver to, read
//! from `[steps.grants.webhook]` (or a manifest's `[capabilities.webhook]`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::capability::delivery::Delivery;
use crate::capability::{GrantTable, Missing};
use crate::spec::Diagnostics;
use crate::spec::read::{SpannedList, items};

/// `[steps.grants.webhook]` as written.
#[derive(Debug, Deserialize)]
pub struct RawWebhookGrant {
    pub endpoints: Option<SpannedList>,
    /// `at-most-once` (the default) or `at-least-once`: see [`Delivery`].
    pub delivery: Option<toml::Spanned<String>>,
}

/// Configured webhook endpoints, by name, that the step may deliver to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookGrant {
    pub endpoints: BTreeSet<String>,
    /// Whether a delivery possibly made before a crash is made again on resume.
    pub delivery: Delivery,
}

impl GrantTable for WebhookGrant {
    type Raw = RawWebhookGrant;
    type RawNeeds = RawWebhookGrant;

    /// The grant the table names; endpoint names are checked here, whether runbook.toml
    /// configures them is checked when a run starts.
    fn parse(raw: &RawWebhookGrant, diags: &mut Diagnostics) -> WebhookGrant {
        let mut grant = WebhookGrant {
            delivery: Delivery::parse(&raw.delivery, diags),
            ..WebhookGrant::default()
        };
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

    /// How often to deliver is the operator's call: a manifest's `delivery` is ignored.
    fn parse_needs(raw: &RawWebhookGrant, diags: &mut Diagnostics) -> WebhookGrant {
        WebhookGrant {
            delivery: Delivery::AtMostOnce,
            ..WebhookGrant::parse(raw, diags)
        }
    }

    /// Which endpoints to grant is the operator's choice (they are named in runbook.toml);
    /// a plugin that delivers webhooks needs the table.
    fn missing(granted: Option<&WebhookGrant>, _needs: &WebhookGrant) -> Vec<Missing> {
        match granted {
            Some(_) => Vec::new(),
            None => vec![Missing {
                need: "to deliver webhooks".to_string(),
                help: "add a `[steps.grants.webhook]` table with `endpoints`".to_string(),
            }],
        }
    }

    fn describe(&self) -> Vec<String> {
        let endpoints: Vec<&str> = self.endpoints.iter().map(String::as_str).collect();
        vec![format!(
            "endpoints: {}{}",
            endpoints.join(", "),
            self.delivery.describe_suffix()
        )]
    }

    /// Endpoints are names from runbook.toml, never patterns: nothing to lint.
    fn writes(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| format!("deliveries to endpoint {e:?}"))
            .collect()
    }

    /// A manifest that declares webhook access needs whichever endpoints the operator
    /// names; without that declaration every endpoint is unneeded.
    fn unneeded(&self, needs: Option<&WebhookGrant>) -> Vec<String> {
        match needs {
            Some(_) => Vec::new(),
            None => self.writes(),
        }
    }

    fn widened(old: Option<&WebhookGrant>, new: &WebhookGrant) -> Vec<String> {
        let mut out: Vec<String> = new
            .endpoints
            .iter()
            .filter(|e| !old.is_some_and(|o| o.endpoints.contains(*e)))
            .map(|e| format!("deliveries to endpoint {e:?}"))
            .collect();
        if let Some(old) = old {
            out.extend(Delivery::widened(old.delivery, new.delivery));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_writes_and_new_ones_widen() {
        let old = WebhookGrant {
            endpoints: ["app".to_string()].into(),
            delivery: Delivery::AtMostOnce,
        };
        let new = WebhookGrant {
            endpoints: ["app".to_string(), "crm".to_string()].into(),
            delivery: Delivery::AtLeastOnce,
        };
        assert_eq!(old.writes(), ["deliveries to endpoint \"app\""]);
        assert!(old.lints().is_empty());
        assert_eq!(
            WebhookGrant::widened(Some(&old), &new),
            [
                "deliveries to endpoint \"crm\"",
                "delivery at-least-once (was at-most-once)"
            ]
        );
        assert!(new.unneeded(Some(&WebhookGrant::default())).is_empty());
        assert_eq!(new.unneeded(None).len(), 2);
    }
}
