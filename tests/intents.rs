//! Write-ahead intents for effects without idempotency, against a real SMTP server and a
//! real webhook receiver: a process killed right after a message left (before its
//! outcome was journaled) is resumed, and the message is not sent again (at-most-once,
//! the call shown as "unknown, possibly sent" and audited) unless the grant says
//! `delivery = "at-least-once"` (sent again with the same Message-ID).

mod support;

use serde_json::{Value, json};
use support::world::{STRIPE_KEY, WEBHOOK_SECRET, World};
use support::{stderr, stdout};

/// One `effector` step (`act`) sending one email to jordan@brightline.media; `delivery`
/// is written into its email grant when given.
fn one_email_runbook(delivery: Option<&str>) -> String {
    let context = json!({
        "organization_id": 2, "organization_name": "Brightline Media", "plan_tier": "pro",
        "new_tier": "free", "stripe_subscription_id": "sub_1", "at_period_end": false,
        "effective_date": "2026-11-22"
    });
    let delivery = delivery
        .map(|d| format!("delivery = \"{d}\"\n"))
        .unwrap_or_default();
    format!(
        r#"name = "notify"
description = "test"

[[steps]]
id = "act"
plugin = "effector"
[steps.input]
calls = [{{ email = ["jordan@brightline.media"], template = "subscription-canceled", context = {context} }}]
attempt = "{{{{ run.attempt }}}}"
[steps.grants.stripe]
operations = []
[steps.grants.email]
recipients = ["*@brightline.media"]
{delivery}"#,
        context = toml_inline(&context),
    )
}

/// A flat JSON object as a TOML inline table.
fn toml_inline(v: &Value) -> String {
    let fields: Vec<String> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

/// Runs `exec <args>` with the `after-send:<step>` failpoint (the process kills itself
/// right after the first message of `step` left), lets the dead process's lease lapse,
/// and resumes the run. Returns the run id and the resume's report.
fn crash_after_send_then_resume(w: &World, step: &str, args: &[&str]) -> (String, Value) {
    let out =
        w.ws.command()
            .env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
            .env("RUNBOOK_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RUNBOOK_FAILPOINT", format!("after-send:{step}"))
            .arg("exec")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
    assert!(
        !out.status.success(),
        "the failpoint did not fire: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("failpoint after-send"),
        "{}",
        stderr(&out)
    );
    let runs = w.ws.json(&["runs", "--json"]);
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    // The killed process cannot renew its lease; let it lapse now rather than wait.
    w.ws.state_execute(&format!(
        "UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = '{run_id}'"
    ));
    let (code, report, out) = w.run_as("ops", &["resume", &run_id, "--json"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    (run_id, report)
}

/// (attempt, decision) of each journaled call of `interface`, in order.
fn decisions(w: &World, run_id: &str, interface: &str) -> Vec<(i64, String)> {
    w.status(run_id)["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["interface"] == interface)
        .map(|c| {
            (
                c["attempt"].as_i64().unwrap(),
                c["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The audit entries of a run with `action`.
fn audited(w: &World, run_id: &str, action: &str) -> Vec<Value> {
    let audit = w.ws.json(&["audit", "show", "--run", run_id, "--json"]);
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

#[test]
fn an_email_possibly_sent_before_a_crash_is_not_sent_again() {
    let w = World::new();
    w.ws.add_runbook("notify", &one_email_runbook(None));
    let (run_id, report) = crash_after_send_then_resume(&w, "act", &["notify"]);

    let mails = w.smtp.messages();
    assert_eq!(mails.len(), 1, "received exactly once: {mails:?}");
    let message_id = mails[0].message_id.clone().unwrap();
    assert!(message_id.contains(&run_id), "{message_id}");

    // The plugin was answered as if sent, and the step went on.
    assert_eq!(report["state"], "succeeded", "{report}");
    let results = &report["steps"][0]["output"]["results"];
    assert_eq!(
        format!("<{}>", results[0]["ok"]["message_id"].as_str().unwrap()),
        message_id,
        "{results}"
    );
    // The intent the killed process left, then the resumed call shown as unknown.
    assert_eq!(
        decisions(&w, &run_id, "email"),
        [(1, "intent".to_string()), (2, "unknown".to_string())]
    );
    let unknown = audited(&w, &run_id, "email.unknown");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let detail = unknown[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("not re-sent (at-most-once)") && detail.contains(&run_id),
        "{detail}"
    );
    let text = w.ws.run(&["status", &run_id]);
    assert!(
        stdout(&text).contains("unknown, possibly sent"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn an_at_least_once_email_is_sent_again_with_the_same_message_id() {
    let w = World::new();
    w.ws.add_runbook("notify", &one_email_runbook(Some("at-least-once")));
    let (run_id, report) = crash_after_send_then_resume(&w, "act", &["notify"]);

    let mails = w.smtp.messages();
    assert_eq!(mails.len(), 2, "sent again: {mails:?}");
    assert_eq!(mails[0].message_id, mails[1].message_id, "the same message");
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(
        decisions(&w, &run_id, "email"),
        [(1, "intent".to_string()), (2, "allowed".to_string())]
    );
    let resent = audited(&w, &run_id, "email.resent");
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert!(audited(&w, &run_id, "email.unknown").is_empty());
}

/// The event ids the receiver got, sorted.
fn received_events(deliveries: &[Value]) -> Vec<String> {
    let mut received: Vec<String> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();
    received.sort();
    received
}

#[test]
fn a_webhook_possibly_delivered_before_a_crash_is_not_delivered_again() {
    let w = World::new();
    let events = w.link_failed_events();
    let (run_id, _) =
        crash_after_send_then_resume(&w, "replay", &["webhook-failure", "-p", "replay=true"]);

    // Every event reached the endpoint exactly once, each under its own delivery id.
    let deliveries = w.receiver.deliveries();
    assert_eq!(received_events(&deliveries), events, "{deliveries:?}");
    let first = deliveries[0]["delivery_id"].as_str().unwrap();
    assert!(
        first.starts_with(&format!("runbook-{run_id}-replay-")),
        "{first}"
    );

    let journal = decisions(&w, &run_id, "webhook");
    assert_eq!(
        journal
            .iter()
            .filter(|(_, d)| d == "intent" || d == "unknown")
            .collect::<Vec<_>>(),
        [&(1, "intent".to_string()), &(2, "unknown".to_string())],
        "{journal:?}"
    );
    let unknown = audited(&w, &run_id, "webhook.unknown");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0]["detail"].as_str().unwrap().contains(first),
        "{unknown:?}"
    );
}

#[test]
fn an_at_least_once_webhook_is_delivered_again_with_the_same_delivery_id() {
    let w = World::new();
    let events = w.link_failed_events();
    let shipped =
        std::fs::read_to_string(support::repo_root().join("runbooks/webhook-failure.toml"))
            .unwrap();
    let text = shipped
        .replacen(
            "name = \"webhook-failure\"",
            "name = \"webhook-failure-twice\"",
            1,
        )
        .replacen(
            "[steps.grants.webhook]\nendpoints = [\"app\"]\n",
            "[steps.grants.webhook]\nendpoints = [\"app\"]\ndelivery = \"at-least-once\"\n",
            1,
        );
    assert!(text.contains("at-least-once"), "the grant was not found");
    w.ws.add_runbook("webhook-failure-twice", &text);
    let (run_id, _) = crash_after_send_then_resume(
        &w,
        "replay",
        &["webhook-failure-twice", "-p", "replay=true"],
    );

    // The delivery the killed process made arrives again, under the same delivery id.
    let deliveries = w.receiver.deliveries();
    assert_eq!(deliveries.len(), events.len() + 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["event_id"], deliveries[1]["event_id"]);
    assert_eq!(deliveries[0]["delivery_id"], deliveries[1]["delivery_id"]);
    let mut unique = received_events(&deliveries);
    unique.dedup();
    assert_eq!(unique, events);
    assert_eq!(audited(&w, &run_id, "webhook.resent").len(), 1);
    assert!(audited(&w, &run_id, "webhook.unknown").is_empty());
}
