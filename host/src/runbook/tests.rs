//! Tests of runbook-file and plugin-manifest parsing, validation, diagnostics and templating.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;
use crate::grant::{DbGrant, EmailGrant, Grants, StripeGrant};
use crate::plugin::manifest::{PluginManifest, parse_plugin_manifest};

fn set(items: &[&str]) -> BTreeSet<String> {
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

fn catalog() -> BTreeMap<String, PluginManifest> {
    let plugins = [
        manifest(
            "webhook-impact",
            Grants {
                db: DbGrant {
                    select: set(&["subscription_events"]),
                    ..DbGrant::default()
                },
                ..Grants::default()
            },
        ),
        manifest(
            "quota-reset",
            Grants {
                db: DbGrant {
                    select: set(&["usage_quotas"]),
                    update: set(&["usage_quotas"]),
                    ..DbGrant::default()
                },
                ..Grants::default()
            },
        ),
        manifest(
            "notify",
            Grants {
                email: Some(EmailGrant {
                    recipients: vec!["ops@example.com".to_string()],
                    max_per_run: None,
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
fn errors(text: &str) -> Vec<(usize, usize, String)> {
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

fn helps(text: &str) -> Vec<Option<String>> {
    parse_runbook("rb.toml", text, &catalog())
        .unwrap_err()
        .iter()
        .map(|d| d.help.clone())
        .collect()
}

/// A minimal valid head for error tests, so each test adds only what it is about.
const HEAD: &str = "name = \"rb\"\ndescription = \"d\"\n";

const GOOD: &str = r#"name = "webhook-failure"
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

#[test]
fn good_runbook_parses_to_the_expected_model() {
    let rb = parse_runbook("good.toml", GOOD, &catalog()).unwrap_or_else(|d| panic!("{d}"));
    let expected = Runbook {
        name: "webhook-failure".into(),
        description: "Assess webhook processing failures and classify the root cause".into(),
        params: vec![
            Param {
                name: "window_hours".into(),
                kind: ParamKind::Integer,
                default: Some(json!(24)),
                required: false,
                description: Some("How far back to look".into()),
            },
            Param {
                name: "account".into(),
                kind: ParamKind::String,
                default: None,
                required: true,
                description: None,
            },
            Param {
                name: "ratio".into(),
                kind: ParamKind::Float,
                default: Some(json!(1.0)),
                required: false,
                description: None,
            },
        ],
        steps: vec![
            Step {
                id: "assess".into(),
                name: Some("Assess impact".into()),
                plugin: "webhook-impact".into(),
                when: Some("params.window_hours > 0".into()),
                timeout: Some(Duration::from_secs(30)),
                memory_mb: Some(64),
                fuel: Some(1_000_000_000),
                retry: RetryPolicy::default(),
                approval: None,
                on_failure: OnFailure::Rollback,
                rollback: None,
                input: json!({
                    "window_hours": "{{ params.window_hours }}",
                    "label": "account {{ params.account }}",
                    "limits": [1, 2.5, true],
                    "nested": {"deep": ["{{ params.ratio }}"]},
                }),
                grants: Grants {
                    db: DbGrant {
                        select: set(&["subscription_events"]),
                        ..DbGrant::default()
                    },
                    ..Grants::default()
                },
            },
            Step {
                id: "reset".into(),
                name: None,
                plugin: "quota-reset".into(),
                when: Some(
                    "steps.assess.status == 'succeeded' and steps.assess.output.count > 0".into(),
                ),
                timeout: Some(Duration::from_millis(500)),
                memory_mb: None,
                fuel: None,
                retry: RetryPolicy::default(),
                approval: None,
                on_failure: OnFailure::Rollback,
                rollback: None,
                input: json!({"found": "{{ steps.assess.output }}"}),
                grants: Grants {
                    webhook: None,
                    db: DbGrant {
                        select: set(&["usage_quotas"]),
                        update: set(&["usage_quotas"]),
                        ..DbGrant::default()
                    },
                    stripe: Some(StripeGrant {
                        operations: set(&["subscriptions.retrieve"]),
                        ..StripeGrant::default()
                    }),
                    email: Some(EmailGrant {
                        recipients: vec!["*@example.com".into()],
                        max_per_run: Some(10),
                    }),
                },
            },
        ],
        source: "good.toml".into(),
        digest: hex::encode(Sha256::digest(GOOD.as_bytes())),
        concurrency_key: None,
        rollback_approvers: Vec::new(),
    };
    assert_eq!(rb, expected);
    assert_eq!(rb.digest.len(), 64);
    // The model is what `--json` and run records print.
    let v = serde_json::to_value(&rb).unwrap();
    assert_eq!(v["params"][0]["kind"], "integer");
    assert_eq!(
        v["steps"][1]["grants"]["db"]["update"],
        json!(["usage_quotas"])
    );
}

#[test]
fn load_runbook_reads_a_file_and_reports_unreadable_ones() {
    let dir = std::env::temp_dir().join(format!("runbook-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("good.toml");
    std::fs::write(&path, GOOD).unwrap();
    let rb = load_runbook(&path, &catalog()).unwrap();
    assert_eq!(rb.source, path.display().to_string());
    assert_eq!(rb.steps.len(), 2);

    let missing = dir.join("missing.toml");
    let err = load_runbook(&missing, &catalog()).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err.items()[0].message.starts_with("cannot read the file"));
    assert_eq!(err.items()[0].line, None);
    assert!(err.render(false).contains("cannot read the file"));

    let binary = dir.join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let err = load_runbook(&binary, &catalog()).unwrap_err();
    assert_eq!(err.items()[0].message, "the file is not valid UTF-8 text");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn toml_syntax_error_has_a_position() {
    let text = "name = \"rb\"\ndescription = \n[[steps]]\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    let (line, col, msg) = &errs[0];
    assert_eq!((*line, *col), (2, 15));
    assert!(msg.starts_with("TOML syntax error: "), "{msg}");

    let dup = errors("name = \"a\"\nname = \"b\"\n");
    assert_eq!(dup.len(), 1);
    assert_eq!((dup[0].0, dup[0].1), (2, 1));
    assert!(dup[0].2.contains("duplicate key"), "{}", dup[0].2);
}

#[test]
fn unknown_keys_everywhere_are_reported_with_suggestions() {
    let text = format!(
        r#"{HEAD}nmae = "x"

[params.hours]
type = "integer"
defualt = 3

[[steps]]
id = "a"
plugn = "echo"
plugin = "echo"
[steps.grants.db]
sellect = ["t"]
[steps.grants.email]
recipients = ["a@b.c"]
limit = 3
[steps.grants.fax]
number = "1"
"#
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            (3, 1, "unknown key `nmae` at the top level".to_string()),
            (7, 1, "unknown key `defualt` in `params.hours`".to_string()),
            (11, 1, "unknown key `plugn` in `steps[0]`".to_string()),
            (
                14,
                1,
                "unknown key `sellect` in `steps[0].grants.db`".to_string()
            ),
            (
                17,
                1,
                "unknown key `limit` in `steps[0].grants.email`".to_string()
            ),
            (18, 15, "unknown key `fax` in `steps[0].grants`".to_string()),
        ]
    );
    let helps = helps(&text);
    assert_eq!(helps[0].as_deref(), Some("did you mean `name`?"));
    assert_eq!(helps[1].as_deref(), Some("did you mean `default`?"));
    assert_eq!(helps[2].as_deref(), Some("did you mean `plugin`?"));
    assert_eq!(helps[3].as_deref(), Some("did you mean `select`?"));
    assert_eq!(
        helps[4].as_deref(),
        Some("allowed keys here: recipients, max_per_run")
    );
    assert_eq!(
        helps[5].as_deref(),
        Some("allowed keys here: db, stripe, email, webhook")
    );
}

#[test]
fn wrong_value_type_is_reported_with_earlier_unknown_keys() {
    let text = format!(
        "{HEAD}colour = 1\n[[steps]]\nid = \"a\"\nplugin = \"echo\"\nmemory_mb = \"big\"\n"
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            (3, 1, "unknown key `colour` at the top level".to_string()),
            (
                7,
                13,
                "wrong type: found string \"big\", expected an integer".to_string()
            ),
        ]
    );
}

#[test]
fn grants_with_non_string_tables_are_type_errors() {
    let text = format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.grants.db]\nselect = [1]\n"
    );
    assert_eq!(
        errors(&text),
        vec![(
            7,
            11,
            "wrong type: found integer `1`, expected a string".to_string()
        )]
    );
}

#[test]
fn missing_required_keys() {
    let errs = errors("[[steps]]\nname = \"x\"\n");
    assert_eq!(
        errs,
        vec![
            (1, 1, "missing required key `name`".to_string()),
            (1, 1, "missing required key `description`".to_string()),
            (1, 1, "step 1 has no `id`".to_string()),
            (1, 1, "step 1 has no `plugin`".to_string()),
        ]
    );
    let errs = errors(HEAD);
    assert_eq!(
        errs,
        vec![(1, 1, "a runbook needs at least one step".to_string())]
    );
}

#[test]
fn invalid_names_ids_and_duplicate_steps() {
    let text = r#"name = "Webhook_Failure"
description = "d"
[params.Bad-Name]
type = "text"
[[steps]]
id = "assess"
plugin = "echo"
[[steps]]
id = "Assess!"
plugin = "echo"
[[steps]]
id = "assess"
plugin = "echo"
"#;
    let errs = errors(text);
    assert_eq!(
        errs,
        vec![
            (1, 8, "invalid runbook name \"Webhook_Failure\"".to_string()),
            (3, 9, "invalid parameter name \"Bad-Name\"".to_string()),
            (4, 8, "unknown parameter type \"text\"".to_string()),
            (9, 6, "invalid step id \"Assess!\"".to_string()),
            (12, 6, "duplicate step id \"assess\"".to_string()),
        ]
    );
    let helps = helps(text);
    assert_eq!(
        helps[4].as_deref(),
        Some("step \"assess\" is first defined on line 6")
    );
}

#[test]
fn unknown_plugin_suggests_close_names_or_lists_them() {
    let text = format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"webhook-impct\"\n[[steps]]\nid = \"b\"\nplugin = \"zzz\"\n"
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            (5, 10, "unknown plugin \"webhook-impct\"".to_string()),
            (8, 10, "unknown plugin \"zzz\"".to_string()),
        ]
    );
    let helps = helps(&text);
    assert_eq!(
        helps[0].as_deref(),
        Some("did you mean \"webhook-impact\"?")
    );
    assert_eq!(
        helps[1].as_deref(),
        Some("available plugins: echo, notify, quota-reset, refunder, webhook-impact")
    );

    let none: BTreeMap<String, PluginManifest> = BTreeMap::new();
    let err = parse_runbook("rb.toml", &text, &none).unwrap_err();
    assert_eq!(
        err.items()[0].help.as_deref(),
        Some("no plugins are installed")
    );
}

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

#[test]
fn invalid_limits_and_params() {
    let text = format!(
        r#"{HEAD}[params.a]
type = "integer"
default = "three"
[params.b]
type = "boolean"
required = true
default = false
[params.c]
description = "no type"
[[steps]]
id = "s1"
plugin = "echo"
timeout = "30"
memory_mb = 0
fuel = 0
[[steps]]
id = "s2"
plugin = "echo"
timeout = "5w"
memory_mb = 5000
fuel = -3
[[steps]]
id = "s3"
plugin = "echo"
timeout = "0s"
"#
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            (
                5,
                11,
                "default for `a` must be an integer, found string".to_string()
            ),
            (
                8,
                12,
                "parameter `b` is required but also has a default".to_string()
            ),
            (10, 9, "parameter `c` has no `type`".to_string()),
            (15, 11, "invalid timeout \"30\": missing unit".to_string()),
            (
                16,
                13,
                "`memory_mb` must be between 1 and 4096, found 0".to_string()
            ),
            (17, 8, "`fuel` must be positive, found 0".to_string()),
            (
                21,
                11,
                "invalid timeout \"5w\": unknown unit `w`".to_string()
            ),
            (
                22,
                13,
                "`memory_mb` must be between 1 and 4096, found 5000".to_string()
            ),
            (23, 8, "`fuel` must be positive, found -3".to_string()),
            (
                27,
                11,
                "invalid timeout \"0s\": must be greater than zero".to_string()
            ),
        ]
    );
}

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
fn many_errors_in_one_file_are_all_reported_in_file_order() {
    let text = r#"name = "BAD NAME"
description = ""
[[steps]]
id = "a"
plugin = "nope"
timeout = "fast"
[steps.input]
x = "{{ params.missing }}"
[[steps]]
id = "a"
plugin = "quota-reset"
"#;
    let errs = errors(text);
    let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
    assert_eq!(lines, vec![1, 2, 5, 6, 8, 10, 11, 11], "{errs:#?}");
}

#[test]
fn rendered_output_has_positions_and_underlines_and_no_ansi() {
    let text = format!("{HEAD}[[steps]]\nid = \"a\"\nplugin = \"webhook-impct\"\n");
    let err = parse_runbook("file.toml", &text, &catalog()).unwrap_err();
    let out = err.render(false);
    assert!(out.contains("file.toml:5:10"), "{out}");
    assert!(out.contains("unknown plugin \"webhook-impct\""), "{out}");
    assert!(out.contains("did you mean \"webhook-impact\"?"), "{out}");
    assert!(out.contains("plugin = \"webhook-impct\""), "{out}");
    // The underline sits exactly under the value `"webhook-impct"`.
    let lines: Vec<&str> = out.lines().collect();
    let source_line = lines
        .iter()
        .position(|l| l.contains("plugin = \"webhook-impct\""))
        .unwrap_or_else(|| panic!("no snippet in:\n{out}"));
    let underline: Vec<char> = lines[source_line + 1].chars().collect();
    let source: Vec<char> = lines[source_line].chars().collect();
    let value_start = source.iter().position(|c| *c == '"').unwrap();
    assert_eq!(
        underline[value_start..value_start + "\"webhook-impct\"".len()]
            .iter()
            .collect::<String>(),
        "─".repeat("\"webhook-impct\"".len()),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.ends_with("1 error in file.toml\n"), "{out}");

    let colored = err.render(true);
    assert!(colored.contains('\x1b'));

    // Display is the compact one-line-per-error form.
    assert_eq!(
        err.to_string(),
        "file.toml:5:10: unknown plugin \"webhook-impct\" (help: did you mean \"webhook-impact\"?)"
    );
    let json = err.to_json();
    assert_eq!(json[0]["line"], 5);
    assert_eq!(json[0]["column"], 10);
    assert_eq!(json[0]["file"], "file.toml");
}

#[test]
fn rendering_survives_odd_positions() {
    // Error at end of input, multi-byte text before the error, and an empty file.
    for text in [
        "name = \"é\"\ndescription = \"ü\"\nx = ",
        "",
        "\u{feff}",
        "[[steps]]\nid = 3",
    ] {
        let err = parse_runbook("odd.toml", text, &catalog()).unwrap_err();
        let out = err.render(false);
        assert!(out.contains("odd.toml"), "{out}");
        assert!(!err.is_empty());
    }
    let text = format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\ninput = {{ \"é\" = \"{{{{ nope }}}}\" }}\n"
    );
    let err = parse_runbook("odd.toml", &text, &catalog()).unwrap_err();
    // Columns count characters, not bytes.
    let d = &err.items()[0];
    assert_eq!((d.line, d.column), (Some(6), Some(17)), "{err}");
    assert_eq!(diagnostic::line_column("aé b", 4), (1, 4));
}

// ---- parameters ----

fn params_runbook() -> Runbook {
    let text = format!(
        r#"{HEAD}[params.hours]
type = "integer"
default = 24
[params.account]
type = "string"
required = true
[params.ratio]
type = "float"
[params.dry_run]
type = "boolean"
default = true
[[steps]]
id = "a"
plugin = "echo"
"#
    );
    parse_runbook("p.toml", &text, &catalog()).unwrap()
}

#[test]
fn resolve_params_fills_defaults_and_checks_types() {
    let rb = params_runbook();
    let given = BTreeMap::from([
        ("account".to_string(), json!("acme")),
        ("ratio".to_string(), json!(2)),
    ]);
    let resolved = rb.resolve_params(&given).unwrap();
    assert_eq!(
        serde_json::Value::Object(resolved),
        json!({"hours": 24, "account": "acme", "ratio": 2.0, "dry_run": true})
    );

    let resolved = rb
        .resolve_params(&BTreeMap::from([("account".to_string(), json!("x"))]))
        .unwrap();
    assert_eq!(resolved["ratio"], serde_json::Value::Null);

    let errs = rb
        .resolve_params(&BTreeMap::from([
            ("hours".to_string(), json!("many")),
            ("bogus".to_string(), json!(1)),
        ]))
        .unwrap_err();
    assert_eq!(
        errs,
        vec![
            "unknown parameter `bogus` (this runbook takes: hours, account, ratio, dry_run)"
                .to_string(),
            "parameter `hours` must be an integer, got string \"many\"".to_string(),
            "missing required parameter `account`".to_string(),
        ]
    );
}

#[test]
fn param_kinds_parse_command_line_values() {
    assert_eq!(ParamKind::Integer.parse_value(" 42 "), Ok(json!(42)));
    assert!(ParamKind::Integer.parse_value("4.2").is_err());
    assert_eq!(ParamKind::Float.parse_value("4.5"), Ok(json!(4.5)));
    assert!(ParamKind::Float.parse_value("NaN").is_err());
    assert_eq!(ParamKind::Boolean.parse_value("TRUE"), Ok(json!(true)));
    assert!(ParamKind::Boolean.parse_value("yes").is_err());
    assert_eq!(ParamKind::String.parse_value(" a b "), Ok(json!(" a b ")));
    assert!(ParamKind::Float.accepts(&json!(1)));
    assert!(!ParamKind::Integer.accepts(&json!(1.5)));
    assert!(!ParamKind::String.accepts(&json!(1)));
    assert_eq!(
        serde_json::to_value(ParamKind::Boolean).unwrap(),
        json!("boolean")
    );
}

// ---- plugin manifests ----

#[test]
fn plugin_manifest_parses() {
    let text = r#"name = "quota-reset"
version = "0.1.0"
description = "Reset monthly API call quotas"
[capabilities.db]
select = ["usage_quotas"]
update = ["Usage_Quotas"]
[capabilities.stripe]
operations = ["subscriptions.retrieve"]
[capabilities.email]
recipients = ["*@example.com"]
"#;
    let m = parse_plugin_manifest("quota-reset.toml", text).unwrap();
    assert_eq!(m.name, "quota-reset");
    assert_eq!(m.version, "0.1.0");
    assert_eq!(m.description, "Reset monthly API call quotas");
    assert_eq!(
        m.needs,
        Grants {
            webhook: None,
            db: DbGrant {
                select: set(&["usage_quotas"]),
                update: set(&["usage_quotas"]),
                ..DbGrant::default()
            },
            stripe: Some(StripeGrant {
                operations: set(&["subscriptions.retrieve"]),
                ..StripeGrant::default()
            }),
            email: Some(EmailGrant {
                recipients: vec!["*@example.com".into()],
                max_per_run: None,
            }),
        }
    );

    let bare = parse_plugin_manifest(
        "echo.toml",
        "name = \"echo\"\nversion = \"1.2.3-rc.1\"\ndescription = \"x\"\n[capabilities.email]\n",
    )
    .unwrap();
    assert_eq!(bare.needs.db, DbGrant::default());
    assert_eq!(bare.needs.email, Some(EmailGrant::default()));
}

#[test]
fn plugin_manifest_errors() {
    let text = r#"name = "Quota Reset"
version = "1.0"
[capabilities]
db.selct = ["x"]
email.max_per_run = 3
files = true
[capabilities.stripe]
operations = ["nope"]
"#;
    let err = parse_plugin_manifest("m.toml", text).unwrap_err();
    let got: Vec<(usize, usize, String)> = err
        .iter()
        .map(|d| (d.line.unwrap(), d.column.unwrap(), d.message.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1, "missing required key `description`".to_string()),
            (1, 8, "invalid plugin name \"Quota Reset\"".to_string()),
            (2, 11, "invalid version \"1.0\"".to_string()),
            (4, 4, "unknown key `selct` in `capabilities.db`".to_string()),
            (
                5,
                7,
                "unknown key `max_per_run` in `capabilities.email`".to_string()
            ),
            (6, 1, "unknown key `files` in `capabilities`".to_string()),
            (8, 15, "invalid Stripe operation \"nope\"".to_string()),
        ]
    );

    let err = parse_plugin_manifest("m.toml", "name = [\n").unwrap_err();
    assert!(err.items()[0].message.starts_with("TOML syntax error"));
    let err = parse_plugin_manifest("m.toml", "name = 1\n").unwrap_err();
    assert_eq!(
        err.items()[0].message,
        "wrong type: found integer `1`, expected a string"
    );
}

#[test]
fn nothing_panics_on_garbage() {
    let samples = [
        "",
        "=",
        "[[steps]]\n[[steps]]\n",
        "steps = 3",
        "steps = [1, 2]",
        "params = 1",
        "[params]\nx = 1",
        "[params.x]\ntype = 1",
        "[[steps]]\ninput = 1",
        "[[steps]]\ngrants = []",
        "[[steps]]\nid = \"a\"\nplugin = \"echo\"\nwhen = \"\"\n[steps.input]\nx = \"{{}}\"\ny = \"{%%}\"\nz = \"{{ }}\"",
        "[[steps]]\nid = \"a\"\nplugin = \"echo\"\ntimeout = \"99999999999999999999999s\"",
        "[[steps]]\nid = \"a\"\nplugin = \"echo\"\ntimeout = \"999999999999999999m\"",
        "[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.input]\nf = nan\nd = 1979-05-27T07:32:00Z",
        "name = \"\u{1F600}\"\ndescription = \"\u{0}\"",
        "a.b.c.d.e.f = 1",
    ];
    for text in samples {
        if let Err(d) = parse_runbook("g.toml", text, &catalog()) {
            let _ = d.render(false);
            let _ = d.to_string();
        }
        if let Err(d) = parse_plugin_manifest("g.toml", text) {
            let _ = d.render(false);
        }
    }
}

#[test]
fn input_datetimes_become_text_and_nan_is_rejected() {
    let text = format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.input]\nd = 1979-05-27T07:32:00Z\nf = nan\n"
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![(
            8,
            5,
            "invalid input value: NaN is not a finite number (JSON has no NaN or infinity)"
                .to_string()
        )]
    );
    let ok = format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.input]\nd = 1979-05-27T07:32:00Z\n"
    );
    let rb = parse_runbook("rb.toml", &ok, &catalog()).unwrap();
    assert_eq!(rb.steps[0].input, json!({"d": "1979-05-27T07:32:00Z"}));
}

#[test]
fn email_patterns_cover_recipients() {
    use super::grants::pattern_covers;
    assert!(pattern_covers("*@example.com", "ops@example.com"));
    assert!(pattern_covers("*@example.com", "*@example.com"));
    assert!(!pattern_covers("ops@example.com", "*@example.com"));
    assert!(!pattern_covers("*@example.com", "ops@example.org"));
    assert!(pattern_covers("*", "anything"));
    assert!(pattern_covers("a*b*c", "aXXbYYc"));
    assert!(!pattern_covers("a*b*c", "aXXbYY"));
}

/// The runbooks and plugin manifests shipped in this repository validate together.
#[test]
fn shipped_runbooks_validate_against_shipped_plugins() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut plugins = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("plugins")).unwrap() {
        let manifest = entry.unwrap().path().join("plugin.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let m = parse_plugin_manifest(&manifest.display().to_string(), &text)
                .unwrap_or_else(|d| panic!("{}", d.render(false)));
            plugins.insert(m.name.clone(), m);
        }
    }
    assert!(!plugins.is_empty());
    let mut count = 0;
    for entry in std::fs::read_dir(root.join("runbooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load_runbook(&path, &plugins).unwrap_or_else(|d| panic!("{}", d.render(false)));
            count += 1;
        }
    }
    assert!(count > 0);
}

/// Every prefix of a valid file is some kind of broken file: none may panic, and each
/// that fails must say why and render.
#[test]
fn every_prefix_of_a_good_file_fails_cleanly_or_parses() {
    let with_multiline =
        format!("{GOOD}\n[params.note]\ntype = \"string\"\ndefault = \"\"\"\nline\n\"\"\"\n");
    for (end, _) in with_multiline.char_indices() {
        let text = &with_multiline[..end];
        if let Err(d) = parse_runbook("p.toml", text, &catalog()) {
            assert!(!d.is_empty());
            assert!(
                d.iter()
                    .all(|item| item.line.is_some() && item.column.is_some())
            );
            let out = d.render(false);
            assert!(out.contains("p.toml"), "{out}");
        }
    }
}

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

#[test]
fn retry_delays_grow_are_capped_and_jittered() {
    let policy = RetryPolicy {
        attempts: 5,
        backoff: Backoff::Exponential,
        delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(300),
    };
    for _ in 0..50 {
        let second = policy.delay_before(2);
        assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&second));
        let third = policy.delay_before(3);
        assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&third));
        let fifth = policy.delay_before(5);
        assert!((Duration::from_millis(150)..=Duration::from_millis(300)).contains(&fifth));
    }
}
