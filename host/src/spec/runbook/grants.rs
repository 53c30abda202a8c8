//! A step's `[steps.grants]`, each table read by its capability, and what a plugin needs
//! that a step does not grant.

use toml::de::DeTable;

use super::raw::{RawGrants, RawStep};
use crate::capability::{DbGrant, EmailGrant, Grants, StripeGrant, WebhookGrant};
use crate::spec::Diagnostics;
use crate::spec::read::{Seg, Span, key_span};

pub(super) fn grants(g: &RawGrants, diags: &mut Diagnostics) -> Grants {
    Grants {
        db: g
            .db
            .as_ref()
            .map(|db| DbGrant::parse(db.get_ref(), diags))
            .unwrap_or_default(),
        stripe: g
            .stripe
            .as_ref()
            .map(|s| StripeGrant::parse(s.get_ref(), diags)),
        email: g
            .email
            .as_ref()
            .map(|e| EmailGrant::parse(e.get_ref(), diags)),
        webhook: g
            .webhook
            .as_ref()
            .map(|w| WebhookGrant::parse(w.get_ref(), diags)),
    }
}

/// Where "needs X, which this step does not grant" points: the grants if the step has
/// some (that is what to edit), otherwise the plugin that asks for them.
pub(super) fn grants_span(tree: &DeTable<'_>, step_path: &[Seg], raw: &RawStep) -> Span {
    let mut path = step_path.to_vec();
    path.push(Seg::Key("grants".into()));
    if raw.grants.is_some()
        && let Some(span) = key_span(tree, &path)
    {
        return span;
    }
    raw.plugin.as_ref().map_or(0..0, |p| p.span())
}

pub(crate) struct Missing {
    pub text: String,
    pub help: String,
}

/// What the plugin's manifest says it needs that the step's grants do not give.
pub(crate) fn missing_grants(
    step_label: &str,
    plugin: &str,
    needs: &Grants,
    grants: &Grants,
) -> Vec<Missing> {
    let mut out = Vec::new();
    for (kind, table) in grants.db.missing(&needs.db) {
        out.push(Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs {kind} on table {table:?}, which this step does not grant"
            ),
            help: format!("add it to the step: `[steps.grants.db]` {kind} = [{table:?}]"),
        });
    }
    if let Some(needed) = &needs.stripe {
        let granted = grants.stripe.as_ref().map(|s| &s.operations);
        let missing: Vec<&String> = needed
            .operations
            .iter()
            .filter(|op| !granted.is_some_and(|g| g.contains(*op)))
            .collect();
        for op in missing {
            out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs Stripe operation {op:?}, which this step does not grant"
                ),
                help: format!("add it to the step: `[steps.grants.stripe]` operations = [{op:?}]"),
            });
        }
        if needed.operations.is_empty() && granted.is_none() {
            out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs Stripe access, which this step does not grant"
                ),
                help: "add a `[steps.grants.stripe]` table listing the operations".to_string(),
            });
        }
    }
    if needs.webhook.is_some() && grants.webhook.is_none() {
        out.push(Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs to deliver webhooks, which this step does not grant"
            ),
            help: "add a `[steps.grants.webhook]` table with `endpoints`".to_string(),
        });
    }
    if let Some(needed) = &needs.email {
        match &grants.email {
            None => out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs to send email, which this step does not grant"
                ),
                help: "add a `[steps.grants.email]` table with `recipients`".to_string(),
            }),
            Some(granted) => {
                for r in &needed.recipients {
                    if !granted.recipients.iter().any(|p| pattern_covers(p, r)) {
                        out.push(Missing {
                            text: format!(
                                "{step_label}: plugin {plugin:?} needs to email {r:?}, which this step does not grant"
                            ),
                            help: format!(
                                "add it to the step: `[steps.grants.email]` recipients = [{r:?}]"
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether the grant pattern `pattern` (`*` matches any text) covers `wanted`, which may
/// itself be a pattern: its `*` is matched as a literal, so `*@a.com` covers `*@a.com`
/// and `x@a.com` but `x@a.com` does not cover `*@a.com`.
pub(crate) fn pattern_covers(pattern: &str, wanted: &str) -> bool {
    crate::capability::glob_match(pattern, wanted)
}

#[cfg(test)]
mod tests {
    use crate::spec::runbook::fixtures::{HEAD, errors, helps};

    #[test]
    fn invalid_grant_entries() {
        let text = format!(
            r#"{HEAD}[[steps]]
id = "a"
plugin = "echo"
[steps.grants.db]
select = ["bad name", "*", "public.ok"]
[steps.grants.stripe]
operations = ["refund"]
[steps.grants.email]
recipients = ["nobody", "*@example.com"]
max_per_run = 0
"#
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec![
                (
                    7,
                    11,
                    "invalid table name \"bad name\" in `select`".to_string()
                ),
                (7, 23, "invalid table name \"*\" in `select`".to_string()),
                (9, 15, "invalid Stripe operation \"refund\"".to_string()),
                (11, 15, "invalid recipient pattern \"nobody\"".to_string()),
                (
                    12,
                    15,
                    "`max_per_run` must be between 1 and 4294967295, found 0".to_string()
                ),
            ]
        );
    }

    #[test]
    fn grants_the_plugin_needs_but_the_step_does_not_give() {
        let text = format!(
            r#"{HEAD}[[steps]]
id = "reset"
plugin = "quota-reset"

[[steps]]
id = "reset2"
plugin = "quota-reset"
[steps.grants.db]
select = ["usage_quotas"]

[[steps]]
id = "mail"
plugin = "notify"

[[steps]]
id = "mail2"
plugin = "notify"
grants.email.recipients = ["*@other.com"]

[[steps]]
id = "refund"
plugin = "refunder"
"#
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec![
                (
                    5,
                    10,
                    "step \"reset\": plugin \"quota-reset\" needs select on table \"usage_quotas\", which this step does not grant"
                        .to_string()
                ),
                (
                    5,
                    10,
                    "step \"reset\": plugin \"quota-reset\" needs update on table \"usage_quotas\", which this step does not grant"
                        .to_string()
                ),
                (
                    10,
                    8,
                    "step \"reset2\": plugin \"quota-reset\" needs update on table \"usage_quotas\", which this step does not grant"
                        .to_string()
                ),
                (
                    15,
                    10,
                    "step \"mail\": plugin \"notify\" needs to send email, which this step does not grant"
                        .to_string()
                ),
                (
                    20,
                    1,
                    "step \"mail2\": plugin \"notify\" needs to email \"ops@example.com\", which this step does not grant"
                        .to_string()
                ),
                (
                    24,
                    10,
                    "step \"refund\": plugin \"refunder\" needs Stripe operation \"refunds.create\", which this step does not grant"
                        .to_string()
                ),
            ]
        );
        let helps = helps(&text);
        assert_eq!(
            helps[2].as_deref(),
            Some("add it to the step: `[steps.grants.db]` update = [\"usage_quotas\"]")
        );
    }

    #[test]
    fn email_patterns_cover_recipients() {
        use super::pattern_covers;
        assert!(pattern_covers("*@example.com", "ops@example.com"));
        assert!(pattern_covers("*@example.com", "*@example.com"));
        assert!(!pattern_covers("ops@example.com", "*@example.com"));
        assert!(!pattern_covers("*@example.com", "ops@example.org"));
        assert!(pattern_covers("*", "anything"));
        assert!(pattern_covers("a*b*c", "aXXbYYc"));
        assert!(!pattern_covers("a*b*c", "aXXbYY"));
    }
}
