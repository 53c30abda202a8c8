//! Validation of a step's control flow: retries, `on_failure`, approval gates and
//! rollbacks (the parts of a step that are not its plugin call).

use std::time::Duration;

use serde_json::{Map, Value};

use super::grants::missing_grants;
use super::model::{Approval, Backoff, OnFailure, OnTimeout, RetryPolicy, Rollback};
use super::raw::{RawApproval, RawRetry, RawRollback, RawStep};
use super::references::{RefSite, check_references, input_value, template_error};
use super::validate::{Ctx, unknown_plugin};
use crate::capability::Grants;
use crate::spec::Diagnostics;
use crate::spec::read::{Seg, Span, SpannedList};
use crate::spec::values;

const MAX_ATTEMPTS: i64 = 10;

pub(super) struct StepControl {
    pub retry: RetryPolicy,
    pub approval: Option<Approval>,
    pub on_failure: OnFailure,
    pub rollback: Option<Rollback>,
}

pub(super) fn step_control(
    raw: &RawStep,
    step_path: &[Seg],
    refs: &RefSite<'_>,
    label: &str,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) -> StepControl {
    let mut retry = raw
        .retry
        .as_ref()
        .map_or_else(RetryPolicy::default, |r| retry_policy(r.get_ref(), diags));
    // `attempts = N` is shorthand for `[steps.retry] attempts = N`.
    if let Some(a) = &raw.attempts {
        if raw.retry.is_some() {
            diags.error(
                a.span(),
                "give `attempts` either here or in `[steps.retry]`, not both",
            );
        } else if let Some(n) = attempts(a.get_ref(), a.span(), diags) {
            retry.attempts = n;
        }
    }
    let on_failure = match &raw.on_failure {
        None => OnFailure::Rollback,
        Some(v) => match v.get_ref().as_str() {
            "rollback" => OnFailure::Rollback,
            "continue" => OnFailure::Continue,
            "abort" => OnFailure::Abort,
            other => {
                diags.error_with_help(
                    v.span(),
                    format!("invalid on_failure {other:?}"),
                    "one of \"rollback\" (undo the completed steps), \"continue\" or \"abort\"",
                );
                OnFailure::Rollback
            }
        },
    };
    let approval = raw
        .approval
        .as_ref()
        .map(|a| approval(a.get_ref(), a.span(), refs, ctx, diags));
    if let (Some(_), Some(r)) = (&raw.approval, &raw.rollback) {
        diags.error(
            r.span(),
            format!("{label} is an approval step: there is nothing to roll back"),
        );
    }
    let rollback = raw.rollback.as_ref().map(|r| {
        let mut path = step_path.to_vec();
        path.push(Seg::Key("rollback".into()));
        rollback(r.get_ref(), r.span(), &path, refs, label, ctx, diags)
    });
    StepControl {
        retry,
        approval,
        on_failure,
        rollback,
    }
}

fn attempts(v: &i64, span: Span, diags: &mut Diagnostics) -> Option<u32> {
    if (1..=MAX_ATTEMPTS).contains(v) {
        Some(*v as u32)
    } else {
        diags.error(
            span,
            format!("`attempts` must be between 1 and {MAX_ATTEMPTS}, found {v}"),
        );
        None
    }
}

fn duration(
    value: &Option<toml::Spanned<String>>,
    key: &str,
    default: Duration,
    diags: &mut Diagnostics,
) -> Duration {
    value
        .as_ref()
        .map_or(Some(default), |v| values::duration(v, key, diags))
        .unwrap_or(default)
}

fn retry_policy(raw: &RawRetry, diags: &mut Diagnostics) -> RetryPolicy {
    let defaults = RetryPolicy::default();
    let backoff = match &raw.backoff {
        None => defaults.backoff,
        Some(b) => match b.get_ref().as_str() {
            "fixed" => Backoff::Fixed,
            "exponential" => Backoff::Exponential,
            other => {
                diags.error_with_help(
                    b.span(),
                    format!("invalid backoff {other:?}"),
                    "\"fixed\" or \"exponential\"",
                );
                defaults.backoff
            }
        },
    };
    let delay = duration(&raw.delay, "delay", defaults.delay, diags);
    let max_delay = duration(
        &raw.max_delay,
        "max_delay",
        defaults.max_delay.max(delay),
        diags,
    );
    if max_delay < delay
        && let Some(m) = &raw.max_delay
    {
        diags.error(m.span(), "`max_delay` must not be shorter than `delay`");
    }
    RetryPolicy {
        attempts: raw
            .attempts
            .as_ref()
            .and_then(|a| attempts(a.get_ref(), a.span(), diags))
            .unwrap_or(defaults.attempts),
        backoff,
        delay,
        max_delay,
    }
}

fn approval(
    raw: &RawApproval,
    span: Span,
    refs: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) -> Approval {
    let message = match &raw.message {
        None => {
            diags.error_with_help(
                span.clone(),
                "an approval needs a `message`",
                "say what the approver agrees to, from earlier outputs: counts, amounts, customers",
            );
            String::new()
        }
        Some(m) => {
            match ctx.templates.string_references(m.get_ref()) {
                Ok(Some(vars)) => check_references(&vars, m.span(), refs, ctx, diags),
                Ok(None) => {}
                Err(e) => diags.error(
                    m.span(),
                    format!("template does not compile: {}", template_error(&e)),
                ),
            }
            m.get_ref().clone()
        }
    };
    let approvers = approvers(&raw.approvers, diags);
    if approvers.is_empty() {
        diags.error_with_help(
            raw.approvers.as_ref().map_or(span.clone(), |a| a.span()),
            "an approval needs `approvers`",
            "list people or groups from runbook.toml: approvers = [\"group:billing-leads\", \"alice\"]",
        );
    }
    let required = match &raw.required {
        None => 1,
        Some(r) if (1..=20).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            diags.error(
                r.span(),
                format!("`required` must be between 1 and 20, found {}", r.get_ref()),
            );
            1
        }
    };
    let on_timeout = match &raw.on_timeout {
        None => OnTimeout::Reject,
        Some(v) => match v.get_ref().as_str() {
            "reject" => OnTimeout::Reject,
            "continue" => OnTimeout::Continue,
            other => {
                diags.error_with_help(
                    v.span(),
                    format!("invalid on_timeout {other:?}"),
                    "\"reject\" (the default) or \"continue\"",
                );
                OnTimeout::Reject
            }
        },
    };
    if on_timeout == OnTimeout::Continue
        && raw.timeout.is_none()
        && let Some(v) = &raw.on_timeout
    {
        diags.error(v.span(), "`on_timeout` needs a `timeout`");
    }
    Approval {
        message,
        approvers,
        required,
        allow_self: raw.allow_self.as_ref().is_some_and(|a| *a.get_ref()),
        timeout: raw
            .timeout
            .as_ref()
            .map(|_| duration(&raw.timeout, "timeout", Duration::from_secs(86_400), diags)),
        on_timeout,
    }
}

/// People (`alice`) and groups (`group:billing-leads`) who may approve: an approval's
/// `approvers` and the runbook's `rollback_approvers` are read alike.
pub(super) fn approvers(list: &Option<SpannedList>, diags: &mut Diagnostics) -> Vec<String> {
    list.as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .filter_map(|a| {
                    let name = a.get_ref().trim();
                    let bare = name.strip_prefix("group:").unwrap_or(name);
                    if bare.is_empty() || bare.chars().any(char::is_whitespace) {
                        diags.error(a.span(), format!("invalid approver {:?}", a.get_ref()));
                        None
                    } else {
                        Some(name.to_string())
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rollback(
    raw: &RawRollback,
    span: Span,
    path: &[Seg],
    refs: &RefSite<'_>,
    label: &str,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) -> Rollback {
    let plugin = match &raw.plugin {
        None => {
            diags.error(span, format!("{label}: a rollback needs a `plugin`"));
            String::new()
        }
        Some(p) => {
            if ctx.plugins.manifest(p.get_ref()).is_none() {
                unknown_plugin(p, ctx.plugins, diags);
            }
            p.get_ref().clone()
        }
    };
    let mut input = Map::new();
    if let Some(table) = &raw.input {
        let mut path = path.to_vec();
        path.push(Seg::Key("input".into()));
        for (k, v) in table.get_ref() {
            if k == "step" {
                diags.error(
                    table.span(),
                    "`step` is given to every rollback by the host; use another key",
                );
                continue;
            }
            path.push(Seg::Key(k.clone()));
            if let Some(json) = input_value(v, &mut path, refs, ctx, diags) {
                input.insert(k.clone(), json);
            }
            path.pop();
        }
    }
    let grants = raw
        .grants
        .as_ref()
        .map_or_else(Default::default, |g| Grants::parse(g.get_ref(), diags));
    if let Some(manifest) = ctx.plugins.manifest(&plugin) {
        let at = raw.grants.as_ref().map_or_else(
            || raw.plugin.as_ref().map_or(0..0, |p| p.span()),
            |g| g.span(),
        );
        for message in missing_grants(
            &format!("{label} (rollback)"),
            &plugin,
            &manifest.needs,
            &grants,
        ) {
            diags.error_with_help(at.clone(), message.text, message.help);
        }
    }
    Rollback {
        plugin,
        input: Value::Object(input),
        grants,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::spec::runbook::fixtures::{HEAD, catalog, errors};
    use crate::spec::runbook::model::{Backoff, OnFailure, OnTimeout, RetryPolicy};
    use crate::spec::runbook::parse_runbook;

    #[test]
    fn approval_retry_and_rollback_parse_to_the_model() {
        let text = format!(
            r#"{HEAD}concurrency_key = "{{{{ params.org }}}}"
[params.org]
type = "integer"
[[steps]]
id = "reset"
plugin = "quota-reset"
on_failure = "abort"
[steps.retry]
attempts = 3
backoff = "fixed"
delay = "2s"
[steps.grants.db]
select = ["usage_quotas"]
update = ["usage_quotas"]
[steps.rollback]
plugin = "quota-reset"
[steps.rollback.input]
mode = "restore"
[steps.rollback.grants.db]
select = ["usage_quotas"]
update = ["usage_quotas"]
[[steps]]
id = "approve"
[steps.approval]
message = "Reset done for {{{{ params.org }}}}"
approvers = ["group:leads", "alice"]
required = 2
timeout = "24h"
on_timeout = "continue"
"#
        );
        let rb = parse_runbook("c.toml", &text, &catalog()).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(rb.concurrency_key.as_deref(), Some("{{ params.org }}"));
        let reset = &rb.steps[0];
        assert_eq!(reset.on_failure, OnFailure::Abort);
        assert_eq!(
            reset.retry,
            RetryPolicy {
                attempts: 3,
                backoff: Backoff::Fixed,
                delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(30),
            }
        );
        let rollback = reset.rollback.as_ref().unwrap();
        assert_eq!(rollback.plugin, "quota-reset");
        assert_eq!(rollback.input, json!({ "mode": "restore" }));
        let approve = &rb.steps[1];
        assert!(approve.plugin.is_empty());
        let approval = approve.approval.as_ref().unwrap();
        assert_eq!(approval.approvers, ["group:leads", "alice"]);
        assert_eq!(approval.required, 2);
        assert!(!approval.allow_self);
        assert_eq!(approval.timeout, Some(Duration::from_secs(86_400)));
        assert_eq!(approval.on_timeout, OnTimeout::Continue);
    }

    #[test]
    fn control_flow_mistakes_are_reported() {
        let errs = errors(&format!(
            r#"{HEAD}[[steps]]
id = "a"
plugin = "echo"
on_failure = "ignore"
attempts = 0
[[steps]]
id = "gate"
plugin = "echo"
[steps.approval]
approvers = []
[[steps]]
id = "b"
plugin = "echo"
[steps.rollback]
plugin = "nope"
"#
        ));
        let messages: Vec<&str> = errs.iter().map(|(_, _, m)| m.as_str()).collect();
        assert!(
            messages.contains(&"invalid on_failure \"ignore\""),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"`attempts` must be between 1 and 10, found 0"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"step \"gate\" is an approval step and cannot also run a plugin"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"an approval needs a `message`"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"an approval needs `approvers`"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"unknown plugin \"nope\""),
            "{messages:?}"
        );
    }
}
