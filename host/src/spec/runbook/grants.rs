//! A step's `[steps.grants]`, each table read by its capability, and what a plugin needs
//! that a step does not grant.

use toml::de::DeTable;

use super::raw::RawStep;
use crate::capability::Grants;
use crate::spec::read::{Seg, Span, key_span};

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
    grants
        .missing(needs)
        .into_iter()
        .map(|(_, missing)| Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs {}, which this step does not grant",
                missing.need
            ),
            help: missing.help,
        })
        .collect()
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
    fn trigger_and_rule_names_are_accepted_by_name() {
        let text = format!(
            r#"{HEAD}[[steps]]
id = "a"
plugin = "echo"
[steps.grants.db]
select = ["t"]
triggers = ["Audit_Change"]
rules = ["copy_drafts"]
"#
        );
        let runbook = crate::spec::runbook::parse_runbook(
            "rb.toml",
            &text,
            &crate::spec::runbook::fixtures::catalog(),
        )
        .unwrap();
        let db = runbook.steps[0].grants.db.as_ref().unwrap();
        assert_eq!(
            db.triggers,
            crate::spec::runbook::fixtures::set(&["audit_change"])
        );
        assert_eq!(
            db.rules,
            crate::spec::runbook::fixtures::set(&["copy_drafts"])
        );

        let bad = text
            .replace("\"Audit_Change\"", "\"s.t\", \"\"")
            .replace("rules =", "rule =");
        let errs: Vec<String> = errors(&bad).into_iter().map(|(_, _, m)| m).collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0], "invalid name \"s.t\" in `triggers`");
        assert_eq!(errs[1], "invalid name \"\" in `triggers`");
        assert!(errs[2].contains("`rule`"), "{errs:?}");
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
}
