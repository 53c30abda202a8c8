//! Shared fixtures of the runbook module's unit tests: a plugin catalog, sample runbook
//! text and helpers that collect diagnostics.

use std::collections::{BTreeMap, BTreeSet};

use super::parse_runbook;
use crate::capability::{DbGrant, EmailGrant, Grants, StripeGrant};
use crate::spec::manifest::PluginManifest;

pub(crate) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn manifest(name: &str, needs: Grants) -> PluginManifest {
    PluginManifest {
        name: name.to_string(),
        version: "0.1.0".to_string(),
        description: format!("{name} plugin"),
        needs,
    }
}

pub(crate) fn catalog() -> BTreeMap<String, PluginManifest> {
    let plugins = [
        manifest(
            "webhook-impact",
            Grants {
                db: Some(DbGrant {
                    select: set(&["subscription_events"]),
                    ..DbGrant::default()
                }),
                ..Grants::default()
            },
        ),
        manifest(
            "quota-reset",
            Grants {
                db: Some(DbGrant {
                    select: set(&["usage_quotas"]),
                    update: set(&["usage_quotas"]),
                    ..DbGrant::default()
                }),
                ..Grants::default()
            },
        ),
        manifest(
            "notify",
            Grants {
                email: Some(EmailGrant {
                    recipients: vec!["ops@example.com".to_string()],
                    max_per_run: None,
                    delivery: crate::capability::delivery::Delivery::AtMostOnce,
                }),
                ..Grants::default()
            },
        ),
        manifest(
            "refunder",
            Grants {
                stripe: Some(StripeGrant {
                    operations: set(&["refunds.create"]),
                    ..StripeGrant::default()
                }),
                ..Grants::default()
            },
        ),
        manifest("echo", Grants::default()),
    ];
    plugins.into_iter().map(|m| (m.name.clone(), m)).collect()
}

/// (line, column, message) of every diagnostic, in file order.
pub(crate) fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match parse_runbook("rb.toml", text, &catalog()) {
        Ok(rb) => panic!("expected errors, got {rb:#?}"),
        Err(d) => d
            .iter()
            .map(|d| {
                (
                    d.line.unwrap_or(0),
                    d.column.unwrap_or(0),
                    d.message.clone(),
                )
            })
            .collect(),
    }
}

pub(crate) fn helps(text: &str) -> Vec<Option<String>> {
    parse_runbook("rb.toml", text, &catalog())
        .unwrap_err()
        .iter()
        .map(|d| d.help.clone())
        .collect()
}

/// A minimal valid head for error tests, so each test adds only what it is about.
pub(crate) const HEAD: &str = "name = \"rb\"\ndescription = \"d\"\n";

pub(crate) const GOOD: &str = r#"name = "webhook-failure"
description = "Assess webhook processing failures and classify the root cause"

[params.window_hours]
type = "integer"
default = 24
description = "How far back to look"

[params.account]
type = "string"
required = true

[params.ratio]
type = "float"
default = 1

[[steps]]
id = "assess"
name = "Assess impact"
plugin = "webhook-impact"
when = "params.window_hours > 0"
timeout = "30s"
memory_mb = 64
fuel = 1000000000
[steps.input]
window_hours = "{{ params.window_hours }}"
label = "account {{ params.account }}"
limits = [1, 2.5, true]
nested = { deep = ["{{ params.ratio }}"] }
[steps.grants.db]
select = ["Subscription_Events"]

[[steps]]
id = "reset"
plugin = "quota-reset"
when = "steps.assess.status == 'succeeded' and steps.assess.output.count > 0"
timeout = "500ms"
[steps.input]
found = "{{ steps.assess.output }}"
[steps.grants.db]
select = ["usage_quotas"]
update = ["usage_quotas"]
[steps.grants.email]
recipients = ["*@Example.com"]
max_per_run = 10
[steps.grants.stripe]
operations = ["subscriptions.retrieve"]
"#;
