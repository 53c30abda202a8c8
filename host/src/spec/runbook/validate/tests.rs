//! Validation of runbooks, parameters and steps, through `parse_runbook`.

use std::collections::BTreeMap;

use serde_json::json;

use crate::spec::manifest::PluginManifest;
use crate::spec::runbook::fixtures::{HEAD, catalog, errors, helps};
use crate::spec::runbook::parse_runbook;

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
fn step_limits_table_overrides_sizes_and_reports_each_problem_at_its_value() {
    let text = format!(
        r#"{HEAD}[[steps]]
id = "a"
plugin = "echo"
timeout = "5s"
[steps.limits]
timeout = "9s"
max_result_rows = 0
max_result_bytes = "16XB"
max_statement_bytes = -1
max_param_bytes = "0KiB"
max_reslt_bytes = 1
"#
    );
    let errs = errors(&text);
    assert_eq!(
        errs[..5],
        [
            (
                8,
                11,
                "`timeout` is set twice: as a step key and in the step's `limits`".to_string()
            ),
            (9, 19, "`max_result_rows` must be positive, found 0".to_string()),
            (
                10,
                20,
                "invalid max_result_bytes \"16XB\": unknown unit `XB` (use B, KB, MB, GB, KiB, MiB or GiB)"
                    .to_string()
            ),
            (
                11,
                23,
                "invalid max_statement_bytes -1: must be greater than zero".to_string()
            ),
            (
                12,
                19,
                "invalid max_param_bytes \"0KiB\": must be greater than zero".to_string()
            ),
        ],
        "{errs:#?}"
    );
    assert_eq!(
        errs[5..],
        [(
            13,
            1,
            "unknown key `max_reslt_bytes` in `steps[0].limits`".to_string()
        )]
    );
    // A wrong type stops deserialization, so it is reported on its own.
    let errs = errors(&format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.limits]\nmax_audit_entries = \"many\"\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!((errs[0].0, errs[0].1), (7, 21), "{errs:#?}");
    assert!(errs[0].2.starts_with("wrong type: "), "{errs:#?}");
}

#[test]
fn step_limits_accept_integers_and_units_and_keep_the_flat_keys() {
    let text = format!(
        r#"{HEAD}[[steps]]
id = "a"
plugin = "echo"
memory_mb = 64
[steps.limits]
fuel = 5000
max_result_rows = 10
max_result_bytes = "512KiB"
max_statement_bytes = 2048
max_params_bytes = "1MB"
max_log_bytes = "1MiB"
max_audit_entries = 7
max_audit_bytes = "2GiB"
"#
    );
    let rb = parse_runbook("rb.toml", &text, &catalog()).unwrap_or_else(|d| panic!("{d}"));
    let limits = rb.steps[0].limits;
    assert_eq!(limits.memory_mb, Some(64));
    assert_eq!(limits.fuel, Some(5000));
    assert_eq!(limits.timeout, None);
    assert_eq!(limits.max_result_rows, Some(10));
    assert_eq!(limits.max_result_bytes, Some(512 << 10));
    assert_eq!(limits.max_statement_bytes, Some(2048));
    assert_eq!(limits.max_param_bytes, None);
    assert_eq!(limits.max_params_bytes, Some(1_000_000));
    assert_eq!(limits.max_log_bytes, Some(1 << 20));
    assert_eq!(limits.max_audit_entries, Some(7));
    assert_eq!(limits.max_audit_bytes, Some(2 << 30));
    let base = crate::runtime::StepLimits::default();
    let applied = limits.apply(base);
    assert_eq!(applied.memory_bytes, 64 << 20);
    assert_eq!(applied.max_result_rows, 10);
    assert_eq!(applied.max_param_bytes, base.max_param_bytes);
    assert_eq!(applied.timeout, base.timeout);
}
