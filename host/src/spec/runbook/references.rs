//! Template references in runbook strings (step inputs, `when`, approval messages,
//! `concurrency_key`): each variable a template reads must be a declared parameter or a
//! step that runs earlier.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::validate::{Ctx, toml_to_json};
use crate::spec::Diagnostics;
use crate::spec::keys::closest;
use crate::spec::read::{Seg, Span, value_span};

/// Which step a template belongs to, for "itself" / "runs later" checks.
pub(super) struct RefSite<'a> {
    pub(super) position: usize,
    pub(super) id: &'a str,
}

pub(super) fn input_value(
    value: &toml::Value,
    path: &mut Vec<Seg>,
    refs: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let span = || value_span(ctx.tree, path).unwrap_or(0..0);
    match value {
        toml::Value::String(s) => {
            match ctx.templates.string_references(s) {
                Ok(None) => {}
                Ok(Some(vars)) => check_references(&vars, span(), refs, ctx, diags),
                Err(e) => diags.error(
                    span(),
                    format!("template does not compile: {}", template_error(&e)),
                ),
            }
            Some(Value::String(s.clone()))
        }
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(input_value(item, path, refs, ctx, diags).unwrap_or(Value::Null));
                path.pop();
            }
            Some(Value::Array(out))
        }
        toml::Value::Table(table) => {
            let mut out = Map::new();
            for (k, v) in table {
                path.push(Seg::Key(k.clone()));
                if let Some(json) = input_value(v, path, refs, ctx, diags) {
                    out.insert(k.clone(), json);
                }
                path.pop();
            }
            Some(Value::Object(out))
        }
        other => match toml_to_json(other) {
            Ok(v) => Some(v),
            Err(reason) => {
                diags.error(span(), format!("invalid input value: {reason}"));
                None
            }
        },
    }
}

pub(super) fn template_error(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Checks the variables a template reads (dotted, as minijinja reports them) against what
/// will exist when the step runs: declared params and the steps before this one.
pub(super) fn check_references(
    vars: &HashSet<String>,
    span: Span,
    site: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) {
    let mut vars: Vec<&String> = vars.iter().collect();
    vars.sort();
    for var in vars {
        let segs: Vec<&str> = var.split('.').collect();
        match segs.as_slice() {
            ["params"] | ["steps"] | ["run", ..] => {}
            ["params", name, ..] => {
                if !ctx.params.contains(*name) {
                    let help = match closest(name, ctx.params.iter().map(String::as_str)) {
                        Some(near) => format!("did you mean `params.{near}`?"),
                        None if ctx.params.is_empty() => {
                            format!("declare it in a `[params.{name}]` table")
                        }
                        None => format!(
                            "declared parameters: {}",
                            ctx.params.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    };
                    diags.error_with_help(
                        span.clone(),
                        format!("parameter `{name}` is not declared"),
                        help,
                    );
                }
            }
            ["steps", id, rest @ ..] => {
                check_step_reference(id, rest, span.clone(), site, ctx, diags);
            }
            [root, ..] => {
                let help = match closest(root, ["params", "steps", "run"].into_iter()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "templates read `params.<name>` and `steps.<id>.output`".to_string(),
                };
                diags.error_with_help(
                    span.clone(),
                    format!(
                        "unknown variable `{root}`: templates can only read `params`, `steps` and `run`"
                    ),
                    help,
                );
            }
            [] => {}
        }
    }
}

fn check_step_reference(
    id: &str,
    rest: &[&str],
    span: Span,
    site: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) {
    let earlier = |ids: &HashMap<String, usize>| -> Vec<String> {
        let mut v: Vec<(usize, String)> = ids
            .iter()
            .filter(|(_, pos)| **pos < site.position)
            .map(|(id, pos)| (*pos, id.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    };
    match ctx.step_positions.get(id) {
        None => {
            let before = earlier(&ctx.step_positions);
            // `steps.my-step.output` parses as a subtraction; the fix is the subscript form.
            let hyphenated = ctx
                .step_positions
                .keys()
                .find(|k| k.starts_with(&format!("{id}-")));
            let help = if let Some(full) = hyphenated {
                format!("an id with `-` must be written `steps[\"{full}\"]` in templates")
            } else if let Some(near) = closest(id, before.iter().map(String::as_str)) {
                format!("did you mean `steps.{near}`?")
            } else if before.is_empty() {
                "no step runs before this one".to_string()
            } else {
                format!("steps before this one: {}", before.join(", "))
            };
            diags.error_with_help(span, format!("step {id:?} does not exist"), help);
        }
        Some(&pos) if pos == site.position || id == site.id => {
            diags.error_with_help(
                span,
                format!("step {id:?} refers to its own output"),
                "a step can only read the steps that run before it",
            );
        }
        Some(&pos) if pos > site.position => {
            diags.error_with_help(
                span,
                format!(
                    "step {id:?} runs later (step {} of the runbook), so its output is not available here",
                    pos + 1
                ),
                "a step can only read the steps that run before it; move this step after it",
            );
        }
        Some(_) => {
            if let Some(field) = rest.first()
                && *field != "output"
                && *field != "status"
            {
                diags.error_with_help(
                    span,
                    format!("`steps.{id}.{field}` does not exist"),
                    format!("a step has `steps.{id}.output` and `steps.{id}.status`"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::runbook::fixtures::{HEAD, catalog, errors, helps};
    use crate::spec::runbook::parse_runbook;

    #[test]
    fn templates_that_do_not_compile() {
        let text = format!(
            r#"{HEAD}[params.x]
type = "integer"
[[steps]]
id = "a"
plugin = "echo"
when = "params.x >"
[steps.input]
broken = "{{{{ params.x "
bad_block = "{{% if params.x %}}yes"
fine = "{{{{ params.x }}}}"
"#
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 3, "{errs:?}");
        let braces =
            format!("{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\nwhen = \"{{{{ 1 }}}}\"\n");
        assert_eq!(
            errors(&braces),
            vec![(6, 8, "`when` is an expression, not a template".to_string())]
        );
        assert_eq!((errs[0].0, errs[0].1), (8, 8));
        assert!(
            errs[0]
                .2
                .starts_with("`when` does not compile: syntax error"),
            "{}",
            errs[0].2
        );
        assert_eq!((errs[1].0, errs[1].1), (10, 10));
        assert!(
            errs[1]
                .2
                .starts_with("template does not compile: syntax error")
        );
        assert_eq!((errs[2].0, errs[2].1), (11, 13));
        assert!(
            errs[2]
                .2
                .starts_with("template does not compile: syntax error")
        );
    }

    #[test]
    fn template_references_are_checked_against_params_and_earlier_steps() {
        let text = format!(
            r#"{HEAD}[params.window_hours]
type = "integer"
default = 1

[[steps]]
id = "first"
plugin = "echo"
when = "steps.second.status == 'succeeded'"
[steps.input]
me = "{{{{ steps.first.output }}}}"
ghost = "{{{{ steps.nope.output }}}}"
param = "{{{{ params.window_hour }}}}"
other = "{{{{ foo.bar }}}}"
ok = "{{{{ range(3) | list }}}} {{% for x in params.window_hours | string %}}{{{{ x }}}}{{% endfor %}}"

[[steps]]
id = "second"
plugin = "echo"
[steps.input]
ok = "{{{{ steps.first.output.count }}}} {{{{ steps.first.status }}}} {{{{ params }}}}"
field = "{{{{ steps.first.result }}}}"
"#
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec![
                (
                    10,
                    8,
                    "step \"second\" runs later (step 2 of the runbook), so its output is not available here"
                        .to_string()
                ),
                (12, 6, "step \"first\" refers to its own output".to_string()),
                (13, 9, "step \"nope\" does not exist".to_string()),
                (14, 9, "parameter `window_hour` is not declared".to_string()),
                (
                    15,
                    9,
                    "unknown variable `foo`: templates can only read `params`, `steps` and `run`".to_string()
                ),
                (23, 9, "`steps.first.result` does not exist".to_string()),
            ]
        );
        let helps = helps(&text);
        assert_eq!(helps[2].as_deref(), Some("no step runs before this one"));
        assert_eq!(
            helps[3].as_deref(),
            Some("did you mean `params.window_hours`?")
        );
    }

    #[test]
    fn hyphenated_step_ids_get_a_subscript_hint() {
        let text = format!(
            r#"{HEAD}[[steps]]
id = "find-users"
plugin = "echo"
[[steps]]
id = "b"
plugin = "echo"
[steps.input]
bad = "{{{{ steps.find-users.output }}}}"
good = "{{{{ steps['find-users'].output }}}}"
"#
        );
        let d = parse_runbook("rb.toml", &text, &catalog()).unwrap_err();
        let msgs: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert!(msgs.contains(&"step \"find\" does not exist"), "{msgs:?}");
        let hint = d
            .iter()
            .find(|d| d.message == "step \"find\" does not exist")
            .and_then(|d| d.help.clone());
        assert_eq!(
            hint.as_deref(),
            Some("an id with `-` must be written `steps[\"find-users\"]` in templates")
        );
    }
}
