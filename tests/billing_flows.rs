//! The control-flow procedures of the seed runbooks, end to end on PostgreSQL against
//! localstripe and an SMTP sink: refund-then-downgrade with its compensations (seed 003),
//! credit grants behind an approval threshold (seed 002), and dunning (seed 001).

mod support;

use serde_json::Value;
use support::world::World;
use support::{stderr, stdout};

const PAUSED: i32 = 3;

/// Approves the run's waiting step as `who` and resumes it; returns the resumed report.
fn approve_and_resume(w: &World, run_id: &str, who: &str) -> (i32, Value) {
    let (code, _, out) = w.run_as(who, &["approve", run_id, "--comment", "checked"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let (code, report, out) = w.run_as(who, &["resume", run_id, "--json"]);
    assert!(code == 0 || code == 1, "{}\n{}", stderr(&out), stdout(&out));
    (code, report)
}

#[test]
fn refund_and_downgrade_refunds_cancels_and_downgrades_after_approval() {
    let w = World::new();
    let (code, report, out) = w.exec(&["refund-and-downgrade", "-p", "organization_id=4"]);
    assert_eq!(code, PAUSED, "{}\n{}", stderr(&out), stdout(&out));
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert!(
        w.posts_to("/v1/refunds").is_empty(),
        "nothing before the approval"
    );

    let (code, report) = approve_and_resume(&w, &run_id, "lead-a");
    assert_eq!(code, 0, "{report}");
    let driftwood = w.customer("driftwood");
    let charge = driftwood["charge"].as_str().unwrap();
    let refunds = w.stripe.get(&format!("/v1/refunds?charge={charge}"));
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "{refunds}");
    let sub = driftwood["subscription"].as_str().unwrap();
    assert_eq!(
        w.stripe.get(&format!("/v1/subscriptions/{sub}"))["status"],
        "canceled"
    );
    assert_eq!(
        w.ws.scalar_i64("SELECT COUNT(*) FROM organizations WHERE id = 4 AND plan_tier = 'free'"),
        1
    );
}

#[test]
fn refund_and_downgrade_compensates_and_says_what_cannot_be_undone() {
    let w = World::new();
    // An open dispute blocks the downgrade (seed 003: do not downgrade while disputed).
    w.ws.target_execute(
        "INSERT INTO payment_events (id, organization_id, invoice_id, stripe_charge_id, event_type, amount_cents, created_at)
         VALUES (100, 2, 1010, 'ch_demo1010', 'dispute_opened', 9900, '2026-11-20 10:00:00+00:00');",
    );
    let (code, report, _) = w.exec(&["refund-and-downgrade", "-p", "organization_id=2"]);
    assert_eq!(code, PAUSED);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let (code, report) = approve_and_resume(&w, &run_id, "lead-b");
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["state"], "rolled-back", "{report}");
    let undone: Vec<&str> = report["rollbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["cancel", "refund"], "newest first");
    // Stripe cannot take a refund back or reactivate a canceled subscription: the
    // rollbacks say so precisely instead of pretending.
    for rollback in report["rollbacks"].as_array().unwrap() {
        assert_eq!(rollback["succeeded"], true, "{rollback}");
        let text = rollback["output"].to_string();
        assert!(text.contains("not_reversible"), "{text}");
    }
    assert_eq!(
        w.ws.scalar_i64("SELECT COUNT(*) FROM organizations WHERE id = 2 AND plan_tier = 'pro'"),
        1,
        "the downgrade never happened"
    );
    let audit = w.ws.json(&["audit", "show", "--run", &run_id, "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "step.rolled_back").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"approval.granted"));
}

#[test]
fn credit_grant_needs_approval_only_above_the_threshold() {
    let w = World::new();
    let balance = |org: i64| {
        w.ws.scalar_i64(&format!(
            "SELECT CAST(COALESCE(MAX(balance), -1) AS BIGINT) FROM credit_balances WHERE organization_id = {org}"
        ))
    };
    let small_before = balance(2);
    let (code, report, out) = w.exec(&[
        "credit-grant",
        "-p",
        "organization_id=2",
        "-p",
        "amount=50",
        "-p",
        "note=webhook for credit pack failed (seed 002)",
    ]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(
        report["steps"][1]["status"], "skipped",
        "no approval for 50"
    );
    assert_eq!(balance(2), small_before + 50);

    let (code, report, out) = w.exec(&[
        "credit-grant",
        "-p",
        "organization_id=10",
        "-p",
        "set_balance=5000",
        "-p",
        "note=contract correction",
    ]);
    assert_eq!(code, PAUSED, "{}\n{}", stderr(&out), stdout(&out));
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let (code, report) = approve_and_resume(&w, &run_id, "lead-a");
    assert_eq!(code, 0, "{report}");
    assert_eq!(balance(10), 5000);
    let audit = w.ws.json(&["audit", "show", "--run", &run_id, "--json"]);
    let adjustment = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "manual.credit_adjustment")
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        adjustment["detail"]
            .as_str()
            .unwrap()
            .contains("contract correction")
    );
}

#[test]
fn dunning_plans_in_a_dry_run_and_skip_needs_approval() {
    let w = World::new();
    let pending = || {
        w.ws.scalar_i64("SELECT COUNT(*) FROM dunning_events WHERE NOT completed")
    };
    let before = pending();
    assert!(before > 0);
    let writes_before = w.posts_to("/v1/").len();
    let (code, report, out) = w.exec(&["dunning", "-p", "as_of=2026-11-21", "--dry-run"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let planned: Vec<&str> = report["plan"]["stripe"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert!(
        planned.contains(&"subscriptions.cancel"),
        "{}",
        report["plan"]
    );
    assert_eq!(pending(), before, "a dry run changes nothing");
    assert_eq!(w.posts_to("/v1/").len(), writes_before, "no Stripe writes");

    let (code, report, out) = w.exec(&[
        "dunning-skip",
        "-p",
        "reason=incident INC-1: duplicate charges",
    ]);
    assert_eq!(code, PAUSED, "{}\n{}", stderr(&out), stdout(&out));
    let run_id = report["run_id"].as_str().unwrap().to_string();
    // The operator cannot approve their own emergency skip.
    let (code, _, _) = w.run_as("test-operator", &["approve", &run_id]);
    assert_eq!(code, 2);
    let (code, report) = approve_and_resume(&w, &run_id, "lead-b");
    assert_eq!(code, 0, "{report}");
    assert_eq!(pending(), 0);
}
