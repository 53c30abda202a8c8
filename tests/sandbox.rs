//! The sandbox holds: grants are enforced per statement and audited, ungranted imports are
//! refused at load, runaway plugins are stopped, failed steps roll back, and the audit
//! chain detects tampering. Every test runs the real `runbook` binary.

mod support;

use serde_json::{Value, json};
use support::{Backend, Workspace, assert_success, stderr, stdout};

/// A runbook whose single step runs the `probe` test plugin with the given statements
/// under a grant of `select` on organizations and `update` on organizations.
fn probe_runbook(ws: &Workspace, name: &str, statements: Value, fail_after: bool) {
    let statements = toml_value(&statements);
    ws.add_runbook(
        name,
        &format!(
            r#"name = "{name}"
description = "probe the database grant"

[[steps]]
id = "probe"
plugin = "probe"
[steps.input]
statements = {statements}
fail_after = {fail_after}
[steps.grants.db]
select = ["organizations"]
update = ["organizations"]
"#
        ),
    );
}

/// JSON to a TOML inline value (the subset these tests use: arrays, objects, strings).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn audit_of_run(ws: &Workspace, run_id: &str) -> Vec<Value> {
    ws.json(&["audit", "show", "--run", run_id, "--json"])
        .as_array()
        .unwrap()
        .clone()
}

fn check_grant_enforcement(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    let denied = [
        ("direct", "SELECT * FROM subscriptions", "subscriptions"),
        (
            "join",
            "SELECT o.id FROM organizations o JOIN invoices i ON i.organization_id = o.id",
            "invoices",
        ),
        (
            "subquery",
            "SELECT id FROM organizations WHERE id IN (SELECT organization_id FROM subscriptions)",
            "subscriptions",
        ),
        (
            "cte",
            "WITH s AS (SELECT * FROM usage_quotas) SELECT count(*) FROM s",
            "usage_quotas",
        ),
        ("write", "DELETE FROM organizations", "organizations"),
    ];
    for (case, sql, table) in denied {
        let name = format!("probe-{case}");
        probe_runbook(&ws, &name, json!([{ "sql": sql, "mode": "query" }]), false);
        let (code, report, out) = ws.exec(&name, &[]);
        assert_eq!(code, 0, "{case}: {}", stderr(&out));
        let result = &report["steps"][0]["output"]["results"][0];
        assert_eq!(result["error"]["kind"], "denied", "{case}: {result}");
        assert!(
            result["error"]["message"].as_str().unwrap().contains(table),
            "{case}: {result}"
        );
        let audit = audit_of_run(&ws, report["run_id"].as_str().unwrap());
        let denial = audit
            .iter()
            .find(|e| e["action"] == "capability.denied")
            .unwrap_or_else(|| panic!("{case}: no denial audited: {audit:?}"));
        assert_eq!(denial["target"], format!("db:{table}"), "{case}");
        assert_eq!(denial["step_id"], "probe");
        assert_eq!(denial["plugin"], "probe");
        assert_eq!(denial["actor"], "test-operator");
        assert_eq!(denial["plugin_digest"].as_str().unwrap().len(), 64);
    }

    // A second statement smuggled after a granted one is refused as a whole.
    probe_runbook(
        &ws,
        "probe-two",
        json!([{ "sql": "SELECT id FROM organizations; DELETE FROM subscriptions", "mode": "execute" }]),
        false,
    );
    let (_, report, _) = ws.exec("probe-two", &[]);
    let result = &report["steps"][0]["output"]["results"][0];
    assert_eq!(result["error"]["kind"], "denied", "{result}");
    assert!(
        audit_of_run(&ws, report["run_id"].as_str().unwrap())
            .iter()
            .any(|e| e["action"] == "capability.denied")
    );
    assert!(
        ws.scalar_i64("SELECT count(*) FROM subscriptions") > 0,
        "nothing was deleted"
    );

    // What is granted works, with typed values.
    probe_runbook(
        &ws,
        "probe-ok",
        json!([{ "sql": "SELECT count(*) AS n FROM organizations WHERE id > $1", "mode": "query", "params": [0] }]),
        false,
    );
    let (code, report, out) = ws.exec("probe-ok", &[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let result = &report["steps"][0]["output"]["results"][0];
    let expected = ws.scalar_i64("SELECT count(*) FROM organizations");
    assert_eq!(
        result["rows"][0][0],
        json!({ "integer": expected }),
        "{result}"
    );
}

#[test]
fn grants_are_enforced_per_statement_and_denials_audited_sqlite() {
    check_grant_enforcement(Backend::Sqlite);
}

#[test]
fn grants_are_enforced_per_statement_and_denials_audited_postgres() {
    check_grant_enforcement(Backend::Postgres);
}

fn check_failed_step_rolls_back(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    let rename = json!([{ "sql": "UPDATE organizations SET name = 'renamed' WHERE id = 1", "mode": "execute" }]);
    probe_runbook(&ws, "rename-then-fail", rename.clone(), true);
    let (code, report, _) = ws.exec("rename-then-fail", &[]);
    assert_eq!(code, 1);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["steps"][0]["status"], "failed");
    assert_eq!(
        ws.scalar_i64("SELECT count(*) FROM organizations WHERE name = 'renamed'"),
        0
    );

    probe_runbook(&ws, "rename", rename, false);
    let (code, _, _) = ws.exec("rename", &[]);
    assert_eq!(code, 0);
    assert_eq!(
        ws.scalar_i64("SELECT count(*) FROM organizations WHERE name = 'renamed'"),
        1
    );
}

#[test]
fn a_failing_step_rolls_back_its_writes_sqlite() {
    check_failed_step_rolls_back(Backend::Sqlite);
}

#[test]
fn a_failing_step_rolls_back_its_writes_postgres() {
    check_failed_step_rolls_back(Backend::Postgres);
}

#[test]
fn a_plugin_importing_an_ungranted_interface_is_refused_at_load() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    // `sneaky`'s manifest claims only a database read, but the component imports stripe.
    ws.add_runbook(
        "sneaky",
        r#"name = "sneaky"
description = "a plugin that imports more than its step grants"
[[steps]]
id = "lookup"
plugin = "sneaky"
[steps.grants.db]
select = ["organizations"]
"#,
    );
    let (code, _, out) = ws.exec("sneaky", &[]);
    assert_eq!(code, 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("step `lookup`")
            && err.contains("plugin `sneaky`")
            && err.contains("`stripe`"),
        "{err}"
    );
    let runs = ws.json(&["runs", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 0, "nothing ran");
    let audit = ws.json(&["audit", "show", "--json"]);
    let refusal = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "plugin.refused")
        .expect("refusal audited");
    assert_eq!(refusal["target"], "plugin:sneaky");
    assert!(refusal["detail"].as_str().unwrap().contains("stripe"));

    // `runbook plugins` shows reviewers the mismatch between manifest and imports.
    let out = ws.run(&["plugins", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let plugins: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sneaky = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sneaky")
        .unwrap();
    assert_eq!(sneaky["imports"], json!(["db", "stripe"]));
    assert!(
        sneaky["problem"].as_str().unwrap().contains("Stripe"),
        "{sneaky}"
    );
}

#[test]
fn a_plugin_importing_an_interface_the_host_lacks_is_refused_and_audited() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    ws.add_runbook(
        "outsider",
        r#"name = "outsider"
description = "a plugin that imports an interface no host provides"
[[steps]]
id = "escape"
plugin = "outsider"
"#,
    );
    let (code, _, out) = ws.exec("outsider", &[]);
    assert_eq!(code, 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plugin `outsider`") && err.contains("runbook:plugin/shell"),
        "{err}"
    );
    let runs = ws.json(&["runs", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 0, "nothing ran");
    let audit = ws.json(&["audit", "show", "--json"]);
    let refusal = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "plugin.refused")
        .expect("refusal audited");
    assert_eq!(refusal["target"], "plugin:outsider");
    assert_eq!(refusal["step_id"], "escape");
    assert!(
        refusal["detail"]
            .as_str()
            .unwrap()
            .contains("runbook:plugin/shell"),
        "{refusal}"
    );
    let verify = ws.json(&["audit", "verify", "--json"]);
    assert_eq!(verify["status"], "intact", "the chain holds the refusal");
}

fn runaway_runbook(ws: &Workspace, name: &str, plugin: &str, limits: &str) {
    ws.add_runbook(
        name,
        &format!(
            r#"name = "{name}"
description = "a plugin that never stops"
[[steps]]
id = "runaway"
plugin = "{plugin}"
{limits}
[[steps]]
id = "after"
plugin = "probe"
grants.db.select = ["organizations"]
[steps.input]
statements = []
"#
        ),
    );
}

#[test]
fn runaway_plugins_are_stopped_with_a_clear_reason() {
    let ws = Workspace::new(Backend::Sqlite);
    let cases = [
        ("loop-fuel", "spin", "fuel = 50000000", "ran out of fuel"),
        (
            "loop-time",
            "spin",
            "fuel = 1000000000000\ntimeout = \"300ms\"",
            "exceeded its time limit of 300 ms",
        ),
        (
            "memory-bomb",
            "hog",
            "memory_mb = 32",
            "exceeded its memory limit of 32 MiB",
        ),
    ];
    for (name, plugin, limits, reason) in cases {
        runaway_runbook(&ws, name, plugin, limits);
        let (code, report, out) = ws.exec(name, &[]);
        assert_eq!(code, 1, "{name}: {}", stderr(&out));
        let step = &report["steps"][0];
        assert_eq!(step["status"], "failed", "{name}");
        assert!(
            step["error"].as_str().unwrap().contains(reason),
            "{name}: {step}"
        );
        assert_eq!(
            report["steps"].as_array().unwrap().len(),
            1,
            "{name}: later steps do not run"
        );
        // The engine is fine: the failure is recorded and queryable.
        let status = ws.json(&["status", report["run_id"].as_str().unwrap(), "--json"]);
        assert_eq!(status["run"]["status"], "failed");
        assert!(
            status["steps"][0]["error"]
                .as_str()
                .unwrap()
                .contains(reason)
        );
    }
}

#[test]
fn a_panicking_plugin_fails_its_step_with_the_panic_message() {
    let ws = Workspace::new(Backend::Sqlite);
    runaway_runbook(&ws, "panics", "panicker", "");
    let (code, report, _) = ws.exec("panics", &[]);
    assert_eq!(code, 1);
    let error = report["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("panicked") && error.contains("the ledger does not balance"),
        "{error}"
    );
}

#[test]
fn audit_verify_names_the_first_edited_entry() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    probe_runbook(
        &ws,
        "probe-ok",
        json!([{ "sql": "SELECT id FROM organizations", "mode": "query" }]),
        false,
    );
    for _ in 0..2 {
        assert_eq!(ws.exec("probe-ok", &[]).0, 0);
    }
    let out = ws.run(&["audit", "verify"]);
    assert_success(&out);
    assert!(stdout(&out).contains("intact"), "{}", stdout(&out));
    let verify = ws.json(&["audit", "verify", "--json"]);
    assert_eq!(verify["status"], "intact");
    assert_eq!(verify["entries"], 4, "run.started + run.finished per run");

    ws.state_execute("UPDATE audit_log SET detail = '{\"status\":\"forged\"}' WHERE seq = 3");
    let out = ws.run(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let verify: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verify["status"], "broken");
    assert_eq!(verify["first_bad_seq"], 3);
    let out = ws.run(&["audit", "verify"]);
    assert!(
        stdout(&out).contains("broken at entry #3"),
        "{}",
        stdout(&out)
    );
}

/// SQLite's second opinion: a view the grant names reads a table the grant does not.
/// The analyzer reads only the statement's text (it sees the granted view); SQLite,
/// preparing it, reports the table behind the view, and the disagreement denies the
/// statement before it runs, audited on that table. What the statement names directly
/// still works.
#[test]
fn a_table_only_sqlite_sees_is_denied_by_its_second_opinion() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    ws.target_execute("CREATE VIEW org_view AS SELECT organization_id, status FROM subscriptions");
    let statements = toml_value(&json!([
        { "sql": "SELECT count(*) FROM org_view", "mode": "query" },
        { "sql": "SELECT count(*) FROM organizations", "mode": "query" },
    ]));
    ws.add_runbook(
        "through-view",
        &format!(
            r#"name = "through-view"
description = "read through a view"

[[steps]]
id = "probe"
plugin = "probe"
[steps.input]
statements = {statements}
[steps.grants.db]
select = ["organizations", "org_view"]
"#
        ),
    );
    let (code, report, out) = ws.exec("through-view", &[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let results = &report["steps"][0]["output"]["results"];
    let error = &results[0]["error"];
    assert_eq!(error["kind"], "denied", "{results}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("the SQL analyzer and SQLite disagree")
            && message.contains("SQLite reads table `subscriptions`"),
        "{message}"
    );
    assert!(results[1]["rows"].is_array(), "{results}");
    let audit = audit_of_run(&ws, report["run_id"].as_str().unwrap());
    let denial = audit
        .iter()
        .find(|e| e["action"] == "capability.denied")
        .unwrap_or_else(|| panic!("no denial audited: {audit:?}"));
    assert_eq!(denial["target"], "db:subscriptions");
}
