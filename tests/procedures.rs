//! The shipped billing procedures, run end to end by the real binary against the demo
//! data on SQLite and on PostgreSQL, with their effects checked in the database itself.

mod support;

use serde_json::Value;
use support::{Backend, Workspace, stderr};

fn exec_ok(ws: &Workspace, runbook: &str, params: &[&str]) -> Value {
    let (code, report, out) = ws.exec(runbook, params);
    assert_eq!(
        code,
        0,
        "{runbook} on {:?}: {}\n{report}",
        ws.backend,
        stderr(&out)
    );
    assert_eq!(report["status"], "succeeded");
    report
}

fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {report}"))
}

fn audit_actions(ws: &Workspace, run_id: &str) -> Vec<String> {
    ws.json(&["audit", "show", "--run", run_id, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn check_webhook_failure(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    let failed = ws.scalar_i64("SELECT count(*) FROM subscription_events WHERE processed_at IS NULL OR processing_error IS NOT NULL");
    let total = ws.scalar_i64("SELECT count(*) FROM subscription_events");
    let report = exec_ok(&ws, "webhook-failure", &[]);

    let impact = &step(&report, "impact")["output"];
    assert_eq!(impact["failed_events"], failed);
    assert_eq!(impact["total_events"], total);
    let by_type: i64 = impact["by_event_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["failed"].as_i64().unwrap())
        .sum();
    assert_eq!(by_type, failed);

    let root_cause = &step(&report, "root_cause")["output"];
    let signature_failures = ws.scalar_i64(
        "SELECT count(*) FROM subscription_events WHERE processing_error LIKE '%signature%'",
    );
    assert_eq!(root_cause["dominant_cause"], "signature");
    let signature = root_cause["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"] == "signature")
        .unwrap();
    assert_eq!(signature["count"], signature_failures);
    assert!(
        signature["recommended_action"]
            .as_str()
            .unwrap()
            .contains("WEBHOOK_SECRET")
    );

    let incident = &step(&report, "report")["output"];
    assert_eq!(incident["severity"], "high", "{incident}");
    assert!(
        audit_actions(&ws, report["run_id"].as_str().unwrap())
            .contains(&"incident.assessed".to_string())
    );

    // Filtering to one event type only counts that type.
    let only = exec_ok(
        &ws,
        "webhook-failure",
        &["event_type=invoice.payment_failed"],
    );
    let expected = ws.scalar_i64("SELECT count(*) FROM subscription_events WHERE event_type = 'invoice.payment_failed' AND (processed_at IS NULL OR processing_error IS NOT NULL)");
    assert_eq!(step(&only, "impact")["output"]["failed_events"], expected);
}

#[test]
fn webhook_failure_assesses_and_classifies_the_incident_sqlite() {
    check_webhook_failure(Backend::Sqlite);
}

#[test]
fn webhook_failure_assesses_and_classifies_the_incident_postgres() {
    check_webhook_failure(Backend::Postgres);
}

fn check_quota_reset(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    let other_usage = "SELECT CAST(COALESCE(SUM(current_usage), 0) AS BIGINT) FROM usage_quotas WHERE dimension <> 'api_calls'";
    let others_before = ws.scalar_i64(other_usage);
    let in_use = ws.scalar_i64(
        "SELECT count(*) FROM usage_quotas WHERE dimension = 'api_calls' AND current_usage > 0",
    );
    let api_rows = ws.scalar_i64("SELECT count(*) FROM usage_quotas WHERE dimension = 'api_calls'");
    assert!(in_use > 0, "the demo data has usage to reset");

    let report = exec_ok(&ws, "quota-reset", &[]);
    let reset = &step(&report, "reset")["output"];
    assert_eq!(reset["rows_reset"], api_rows);
    assert_eq!(reset["organizations_in_use"], in_use);
    assert_eq!(step(&report, "verify")["output"]["ok"], true);

    assert_eq!(
        ws.scalar_i64(
            "SELECT count(*) FROM usage_quotas WHERE dimension = 'api_calls' AND current_usage <> 0"
        ),
        0
    );
    assert_eq!(ws.scalar_i64("SELECT count(*) FROM usage_quotas WHERE dimension = 'api_calls' AND last_reset_at IS NULL"), 0);
    assert_eq!(
        ws.scalar_i64(other_usage),
        others_before,
        "other dimensions untouched"
    );
    assert!(
        audit_actions(&ws, report["run_id"].as_str().unwrap()).contains(&"quota.reset".to_string())
    );
}

#[test]
fn quota_reset_resets_api_calls_only_sqlite() {
    check_quota_reset(Backend::Sqlite);
}

#[test]
fn quota_reset_resets_api_calls_only_postgres() {
    check_quota_reset(Backend::Postgres);
}

fn billing_report(backend: Backend) -> Value {
    let ws = Workspace::with_demo(backend);
    let report = exec_ok(&ws, "billing-report", &["as_of=2026-11", "months=6"]);
    let output = step(&report, "report")["output"].clone();
    let mrr = ws.scalar_i64(
        "SELECT CAST(SUM(CASE WHEN billing_cycle = 'annual' THEN amount_cents / 12 ELSE amount_cents END) AS BIGINT) \
         FROM subscriptions WHERE status = 'active'",
    );
    assert_eq!(output["mrr"]["total_mrr_cents"], mrr, "{output}");
    let by_tier: i64 = output["mrr"]["by_tier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["mrr_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(by_tier, mrr);
    let months: Vec<&str> = output["revenue"]["by_month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["month"].as_str().unwrap())
        .collect();
    assert_eq!(
        months,
        [
            "2026-11", "2026-10", "2026-09", "2026-08", "2026-07", "2026-06"
        ]
    );
    output
}

#[test]
fn billing_report_is_correct_and_identical_on_both_backends() {
    let sqlite = billing_report(Backend::Sqlite);
    let postgres = billing_report(Backend::Postgres);
    assert_eq!(sqlite, postgres);
}

#[test]
fn the_second_run_compiles_nothing() {
    let mut ws = Workspace::with_demo(Backend::Sqlite);
    let cache = ws.use_private_cache();
    let first = exec_ok(&ws, "webhook-failure", &[]);
    let second = exec_ok(&ws, "webhook-failure", &[]);
    let origins = |report: &Value| -> Vec<String> {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["plugin_cache"].as_str().unwrap().to_string())
            .collect()
    };
    // Every step's plugin is loaded (and grant-checked) before the run, skipped or not.
    let steps = first["steps"].as_array().unwrap().len();
    assert_eq!(steps, 5);
    assert_eq!(origins(&first), vec!["compiled"; steps]);
    assert_eq!(origins(&second), vec!["hit"; steps]);
    // One entry per plugin, named by the component's sha256.
    let mut entries: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let mut digests: Vec<String> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["plugin_digest"].as_str().unwrap().to_string())
        .collect();
    digests.sort();
    assert_eq!(entries.len(), steps, "{entries:?}");
    for (entry, digest) in entries.iter().zip(&digests) {
        assert!(
            entry.starts_with(digest.as_str()) && entry.ends_with(".cwasm"),
            "{entry} for {digest}"
        );
    }
}

/// A dry run sends nothing, so it needs no secret: a refund is planned without a Stripe
/// key (the workspace's commands run without STRIPE_API_KEY), and nothing is written.
#[test]
fn a_refund_is_planned_without_a_stripe_key() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let before = ws.scalar_i64("SELECT COUNT(*) FROM payment_events");
    let out = ws.run(&[
        "exec",
        "issue-refund",
        "-p",
        "organization_id=2",
        "-p",
        "amount=1500",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = &report["plan"]["stripe"][0];
    assert_eq!(planned["operation"], "refunds.create", "{report}");
    assert_eq!(planned["params"]["amount"], 1500, "{report}");
    assert_eq!(ws.scalar_i64("SELECT COUNT(*) FROM payment_events"), before);
}
