//! Stripe, webhook and email capabilities against real servers on 127.0.0.1 (localstripe,
//! an SMTP server, a webhook receiver that checks signatures with Stripe's own library):
//! grants and budgets, idempotent re-runs answered from the call journal, secrets kept
//! out of every record, and dry runs that change nothing and plan everything.

mod support;

use serde_json::{Value, json};
use support::world::{STRIPE_KEY, WEBHOOK_SECRET, World};
use support::{Backend, Workspace, assert_success, stderr, stdout};

/// A runbook with one `effector` step making `calls`. The plugin imports both Stripe
/// and email, so a step must grant both interfaces (possibly nothing within them).
fn effector_runbook(grants: &str, calls: Value, extra: &str) -> String {
    let mut grants = grants.to_string();
    if !grants.contains("[steps.grants.stripe]") {
        grants.push_str("\n[steps.grants.stripe]\noperations = []\n");
    }
    if !grants.contains("[steps.grants.email]") {
        grants.push_str("\n[steps.grants.email]\nrecipients = []\n");
    }
    format!(
        r#"name = "effects"
description = "test"

[[steps]]
id = "act"
plugin = "effector"
{extra}
[steps.input]
calls = {calls}
attempt = "{{{{ run.attempt }}}}"
{grants}
"#,
        calls = toml_value(&calls)
    )
}

/// JSON written as a TOML inline value.
fn toml_value(v: &Value) -> String {
    match v {
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

#[test]
fn a_step_rerun_after_a_fault_does_not_repeat_the_refund() {
    let w = World::new();
    let charge = w.customer("brightline")["charge"]
        .as_str()
        .unwrap()
        .to_string();
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "panic_on_attempt = 1\n[steps.grants.stripe]\noperations = [\"refunds.create\"]\nmax_refund_amount = 5000",
            json!([{ "stripe": "refunds.create", "params": { "charge": charge, "amount": 1200 } }]),
            "attempts = 2",
        ),
    );
    let (code, report, out) = w.exec(&["effects"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(report["steps"][0]["attempts"], 2, "{report}");
    assert_eq!(
        report["steps"][0]["output"]["results"][0]["ok"]["amount"],
        1200
    );

    // Stripe saw one refund request, with the key derived from run, step and call number.
    let posts = w.posts_to("/v1/refunds");
    assert_eq!(posts.len(), 1, "{posts:?}");
    let key = format!("runbook-{run_id}-act-0");
    assert_eq!(posts[0].idempotency_key.as_deref(), Some(key.as_str()));
    let refunds = w.stripe.get(&format!("/v1/refunds?charge={charge}"));
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "{refunds}");

    // The journal shows the call made on attempt 1 and answered from the journal on 2,
    // under the same key.
    let status = w.status(run_id);
    let calls: Vec<&Value> = status["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["interface"] == "stripe")
        .collect();
    assert_eq!(calls.len(), 2, "{status}");
    assert_eq!(
        (&calls[0]["attempt"], &calls[0]["decision"]),
        (&json!(1), &json!("allowed"))
    );
    assert_eq!(
        (&calls[1]["attempt"], &calls[1]["decision"]),
        (&json!(2), &json!("replayed"))
    );
    for call in calls {
        assert_eq!(call["idempotency_key"], key.as_str());
    }
}

#[test]
fn transient_stripe_errors_are_retried_with_the_same_idempotency_key() {
    let w = World::new();
    let charge = w.customer("brightline")["charge"]
        .as_str()
        .unwrap()
        .to_string();
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "[steps.grants.stripe]\noperations = [\"refunds.create\"]",
            json!([{ "stripe": "refunds.create", "params": { "charge": charge, "amount": 700 } }]),
            "",
        ),
    );
    w.stripe.fail_next("POST", "/v1/refunds", 500, 1);
    let (code, report, out) = w.exec(&["effects"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let posts = w.posts_to("/v1/refunds");
    assert_eq!(posts.len(), 2, "one failure, one retry: {posts:?}");
    assert!(posts[0].idempotency_key.is_some());
    assert_eq!(posts[0].idempotency_key, posts[1].idempotency_key);
    let refunds = w.stripe.get(&format!("/v1/refunds?charge={charge}"));
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1);
    assert_eq!(report["status"], "succeeded");
}

#[test]
fn a_refund_whose_answer_was_lost_is_made_once() {
    let w = World::new();
    let charge = w.customer("brightline")["charge"]
        .as_str()
        .unwrap()
        .to_string();
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "[steps.grants.stripe]\noperations = [\"refunds.create\"]",
            json!([{ "stripe": "refunds.create", "params": { "charge": charge, "amount": 900 } }]),
            "",
        ),
    );
    // Stripe makes the refund, and the answer is lost on the way back (a 502 from a
    // proxy, say): the host retries with the same key and gets the first answer.
    w.stripe.lose_next_answers("POST", "/v1/refunds", 502, 1);
    let (code, report, out) = w.exec(&["effects"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let posts = w.posts_to("/v1/refunds");
    assert_eq!(posts.len(), 2, "the lost answer, then the retry: {posts:?}");
    assert_eq!(posts[0].idempotency_key, posts[1].idempotency_key);
    let refunds = w.stripe.get(&format!("/v1/refunds?charge={charge}"));
    let refunds = refunds["data"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "one refund at Stripe: {refunds:?}");
    assert_eq!(
        report["steps"][0]["output"]["results"][0]["ok"]["id"], refunds[0]["id"],
        "the plugin was told about the refund that was made"
    );
}

#[test]
fn refunds_over_budget_are_denied_audited_and_never_sent() {
    let w = World::new();
    let charge = w.customer("brightline")["charge"]
        .as_str()
        .unwrap()
        .to_string();
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "[steps.grants.stripe]\noperations = [\"refunds.create\"]\nmax_refund_amount = 5000\nmax_refund_total = 6000",
            json!([
                // Over the per-call limit.
                { "stripe": "refunds.create", "params": { "charge": charge, "amount": 6000 } },
                // A full refund of the 9900 charge: the host looks the amount up itself.
                { "stripe": "refunds.create", "params": { "charge": charge } },
                // Within both limits.
                { "stripe": "refunds.create", "params": { "charge": charge, "amount": 4000 } },
                // Within the per-call limit, but over the run's total.
                { "stripe": "refunds.create", "params": { "charge": charge, "amount": 2500 } },
                // Not granted at all.
                { "stripe": "customers.delete", "params": { "id": w.customer("brightline")["id"] } },
            ]),
            "",
        ),
    );
    let (code, report, out) = w.exec(&["effects"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let results = &report["steps"][0]["output"]["results"];
    let kinds: Vec<&str> = (0..5)
        .map(|i| {
            results[i]["error"]["kind"]
                .as_str()
                .unwrap_or(if results[i]["ok"].is_object() {
                    "ok"
                } else {
                    "?"
                })
        })
        .collect();
    assert_eq!(
        kinds,
        ["denied", "denied", "ok", "denied", "denied"],
        "{results}"
    );
    assert_eq!(w.posts_to("/v1/refunds").len(), 1);
    assert!(w.stripe.requests().iter().all(|r| r.method != "DELETE"));

    let audit = w.ws.json(&[
        "audit",
        "show",
        "--run",
        report["run_id"].as_str().unwrap(),
        "--json",
    ]);
    let denied: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "capability.denied")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        denied,
        [
            "stripe:refunds.create",
            "stripe:refunds.create",
            "stripe:refunds.create",
            "stripe:customers.delete"
        ]
    );
}

#[test]
fn email_goes_only_to_granted_recipients() {
    let w = World::new();
    let context = json!({
        "organization_id": 2, "organization_name": "Brightline Media", "plan_tier": "pro",
        "new_tier": "free", "stripe_subscription_id": "sub_1", "at_period_end": false,
        "effective_date": "2026-11-22"
    });
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "[steps.grants.email]\nrecipients = [\"*@brightline.media\"]\nmax_per_run = 1",
            json!([
                { "email": ["jordan@brightline.media"], "template": "subscription-canceled", "context": context },
                { "email": ["attacker@elsewhere.example"], "template": "subscription-canceled", "context": context },
                { "email": ["riley@brightline.media"], "template": "subscription-canceled", "context": context },
            ]),
            "",
        ),
    );
    let (code, report, out) = w.exec(&["effects"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let results = &report["steps"][0]["output"]["results"];
    assert!(results[0]["ok"]["message_id"].is_string(), "{results}");
    assert_eq!(results[1]["error"]["kind"], "denied", "outside the grant");
    assert_eq!(results[2]["error"]["kind"], "denied", "over max_per_run");

    let mails = w.smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["jordan@brightline.media"]);
    assert!(
        mails[0].subject.contains("Brightline Media"),
        "{}",
        mails[0].subject
    );
    let audit = w.ws.json(&[
        "audit",
        "show",
        "--run",
        report["run_id"].as_str().unwrap(),
        "--json",
    ]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "capability.denied"
                && e["target"] == "email:attacker@elsewhere.example"),
        "{audit}"
    );
}

#[test]
fn the_stripe_key_and_webhook_secret_appear_in_no_record() {
    let w = World::new();
    let charge = w.customer("brightline")["charge"]
        .as_str()
        .unwrap()
        .to_string();
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "[steps.grants.stripe]\noperations = [\"refunds.create\", \"charges.retrieve\"]",
            json!([
                { "stripe": "charges.retrieve", "params": { "id": charge } },
                { "stripe": "refunds.create", "params": { "charge": charge, "amount": 100 } },
            ]),
            "",
        ),
    );
    let mut cmd = w.ws.command();
    let out = cmd
        .env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
        .env("RUST_LOG", "trace")
        .args(["exec", "effects"])
        .output()
        .unwrap();
    assert_success(&out);
    let (_, report, out2) = w.exec(&["effects"]);
    let run_id = report["run_id"].as_str().unwrap();
    let mut haystack = Vec::new();
    haystack.extend_from_slice(&out.stdout);
    haystack.extend_from_slice(&out.stderr);
    haystack.extend_from_slice(&out2.stdout);
    haystack.extend_from_slice(&out2.stderr);
    haystack.extend_from_slice(w.ws.run(&["status", run_id, "--json"]).stdout.as_slice());
    haystack.extend_from_slice(w.ws.run(&["audit", "show", "--json"]).stdout.as_slice());
    for entry in std::fs::read_dir(w.ws.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("state.db")
        {
            haystack.extend(std::fs::read(&path).unwrap());
        }
    }
    let text = String::from_utf8_lossy(&haystack);
    assert!(text.contains("refunds.create"), "the records were read");
    assert!(!text.contains(STRIPE_KEY), "the Stripe key leaked");
    assert!(!text.contains(WEBHOOK_SECRET), "the webhook secret leaked");
}

#[test]
fn a_dry_run_changes_nothing_anywhere_and_plans_every_effect() {
    let w = World::new();
    let count = |table: &str| w.ws.scalar_i64(&format!("SELECT COUNT(*) FROM {table}"));
    let before = (count("payment_events"), count("subscriptions"));
    let seeded = w.stripe.requests().len();
    let (code, report, out) = w.exec(&[
        "issue-refund",
        "--dry-run",
        "-p",
        "organization_id=2",
        "-p",
        "amount=2500",
        "-p",
        "notify=true",
    ]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(report["dry_run"], true);
    let plan = &report["plan"];
    assert_eq!(plan["stripe"][0]["operation"], "refunds.create", "{plan}");
    assert_eq!(plan["stripe"][0]["params"]["amount"], 2500);
    assert!(
        plan["db"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["table"] == "payment_events"
                && c["statement"] == "insert"
                && c["rows"] == 1),
        "{plan}"
    );
    assert_eq!(
        plan["emails"][0]["to"],
        json!(["billing@brightline.media"]),
        "{plan}"
    );

    // Nothing changed: the database, Stripe, the mail server.
    assert_eq!((count("payment_events"), count("subscriptions")), before);
    let during = w.stripe.requests().split_off(seeded);
    assert!(during.iter().all(|r| r.method == "GET"), "{during:?}");
    let charge = w.customer("brightline")["charge"].as_str().unwrap();
    assert_eq!(
        w.stripe.get(&format!("/v1/refunds?charge={charge}"))["data"],
        json!([])
    );
    assert!(w.smtp.messages().is_empty());
    assert_eq!(
        w.status(report["run_id"].as_str().unwrap())["run"]["dry_run"],
        true
    );
}

#[test]
fn issue_refund_refunds_the_latest_paid_invoice_and_records_it() {
    let w = World::new();
    let (code, report, out) = w.exec(&[
        "issue-refund",
        "-p",
        "organization_id=2",
        "-p",
        "amount=1500",
        "-p",
        "notify=true",
    ]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let charge = w.customer("brightline")["charge"].as_str().unwrap();
    let refunds = w.stripe.get(&format!("/v1/refunds?charge={charge}"));
    assert_eq!(refunds["data"][0]["amount"], 1500, "{refunds}");
    assert_eq!(
        w.ws.scalar_i64("SELECT COUNT(*) FROM payment_events WHERE event_type = 'refunded'"),
        1
    );
    let mails = w.smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["billing@brightline.media"]);

    // Over the runbook's budget (50000 per refund) is refused before Stripe sees it.
    let (code, report2, _) = w.exec(&[
        "issue-refund",
        "-p",
        "organization_id=10",
        "-p",
        "amount=60000",
    ]);
    assert_eq!(code, 1, "{report2}");
    assert_eq!(w.posts_to("/v1/refunds").len(), 1);
    let _ = report;
}

#[test]
fn cancel_subscription_at_period_end_and_immediately() {
    let w = World::new();
    let (code, _, out) = w.exec(&["cancel-subscription", "-p", "organization_id=2"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let sub = w.customer("brightline")["subscription"].as_str().unwrap();
    let stripe_sub = w.stripe.get(&format!("/v1/subscriptions/{sub}"));
    assert_eq!(stripe_sub["cancel_at_period_end"], true, "{stripe_sub}");
    assert_eq!(
        w.ws.scalar_i64("SELECT COUNT(*) FROM organizations WHERE id = 2 AND plan_tier = 'pro'"),
        1,
        "still pro until the period ends"
    );

    let (code, _, out) = w.exec(&[
        "cancel-subscription",
        "-p",
        "organization_id=10",
        "-p",
        "at_period_end=false",
    ]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let sub = w.customer("juniper")["subscription"].as_str().unwrap();
    assert_eq!(
        w.stripe.get(&format!("/v1/subscriptions/{sub}"))["status"],
        "canceled"
    );
    assert_eq!(
        w.ws.scalar_i64("SELECT COUNT(*) FROM organizations WHERE id = 10 AND plan_tier = 'free'"),
        1
    );
    assert_eq!(
        w.ws.scalar_i64(
            "SELECT COUNT(*) FROM subscriptions WHERE organization_id = 10 AND status = 'canceled'"
        ),
        1
    );
}

#[test]
fn subscription_state_mismatch_resyncs_the_database_from_stripe() {
    let w = World::new();
    // The app missed the upgrade: Stripe says enterprise, the database says starter.
    w.ws.target_execute(
        "UPDATE subscriptions SET plan_tier = 'starter' WHERE organization_id = 10;
         UPDATE organizations SET plan_tier = 'starter' WHERE id = 10;",
    );
    let (code, report, out) = w.exec(&["subscription-state-mismatch", "-p", "organization_id=10"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(
        w.ws.scalar_i64(
            "SELECT COUNT(*) FROM organizations WHERE id = 10 AND plan_tier = 'enterprise'"
        ),
        1,
        "{report}"
    );
    let audit = w.ws.json(&[
        "audit",
        "show",
        "--run",
        report["run_id"].as_str().unwrap(),
        "--json",
    ]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "subscription.synced"),
        "{audit}"
    );
}

#[test]
fn grace_period_expirations_cancel_downgrade_and_notify_admins() {
    let w = World::new();
    // Organizations 5 (starter) and 6 (pro) are past due since early November in the demo
    // data; give 6 a real Stripe subscription too.
    let driftwood = w.customer("driftwood")["subscription"].as_str().unwrap();
    w.ws.target_execute(&format!(
        "UPDATE subscriptions SET stripe_subscription_id = 'sub_demo104' WHERE id = 104;
         UPDATE subscriptions SET stripe_subscription_id = '{driftwood}' WHERE id = 106;"
    ));
    let (code, report, out) = w.exec(&["grace-period-expirations", "-p", "as_of=2026-11-22"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(
        w.stripe.get(&format!("/v1/subscriptions/{driftwood}"))["status"],
        "canceled"
    );
    assert_eq!(
        w.ws.scalar_i64(
            "SELECT COUNT(*) FROM organizations WHERE id IN (5, 6) AND plan_tier = 'free'"
        ),
        2,
        "{report}"
    );
    let mails = w.smtp.messages();
    assert!(!mails.is_empty(), "{report}");
    assert!(
        mails.iter().all(|m| m
            .to
            .iter()
            .all(|a| a.ends_with("@fjordtravel.no") || a.ends_with("@emberandoak.com"))),
        "{mails:?}"
    );
}

#[test]
fn apply_coupon_creates_the_missing_coupon() {
    let w = World::new();
    let (_, report, _) = w.exec(&[
        "apply-coupon",
        "-p",
        "organization_id=2",
        "-p",
        "coupon_id=WINBACK20",
        "-p",
        "percent_off=20",
        "-p",
        "duration=once",
    ]);
    // localstripe has no subscription discounts, so applying it is refused by the test
    // server; the coupon itself must exist, created exactly once.
    let coupon = w.stripe.get("/v1/coupons/WINBACK20");
    assert_eq!(coupon["percent_off"], 20.0, "{coupon} {report}");
    assert_eq!(w.posts_to("/v1/coupons").len(), 1);
}

#[test]
fn webhook_failure_replays_failed_events_signed_like_stripe() {
    let w = World::new();
    let events = w.link_failed_events();
    let (code, report, out) = w.exec(&["webhook-failure", "-p", "replay=true"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let deliveries = w.receiver.wait_for_deliveries(events.len());
    assert_eq!(deliveries.len(), events.len(), "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d["verified"] == true),
        "{deliveries:?}"
    );
    let replay = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "replay")
        .unwrap();
    assert_eq!(replay["output"]["redelivered"], events.len(), "{replay}");
}

#[test]
fn without_smtp_mail_lands_in_the_outbox_as_eml_files() {
    // Embedded defaults: no servers, no Stripe key.
    let ws = Workspace::with_demo(Backend::Sqlite);
    let context = json!({
        "organization_id": 4, "organization_name": "Driftwood Blog", "plan_tier": "starter",
        "new_tier": "free", "stripe_subscription_id": "sub_1", "at_period_end": true,
        "effective_date": "2026-12-11"
    });
    let email = json!({ "email": ["billing@driftwood.blog"], "template": "subscription-canceled", "context": context });
    let mail_grant = "[steps.grants.email]\nrecipients = [\"billing@driftwood.blog\"]";
    ws.add_runbook(
        "effects",
        &effector_runbook(mail_grant, json!([email.clone()]), ""),
    );
    let (code, report, out) = ws.exec("effects", &[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let results = &report["steps"][0]["output"]["results"];
    assert!(results[0]["ok"]["message_id"].is_string(), "{results}");
    let outbox = ws.path().join(".runbook/outbox");
    let files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let files = files();
    assert_eq!(files.len(), 1, "{files:?}");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("To: billing@driftwood.blog"), "{eml}");
    assert!(eml.contains("Subject: "), "{eml}");
    assert!(eml.contains("Driftwood Blog"), "{eml}");

    // A Stripe write granted, but Stripe not configured on this host: refused before
    // anything runs, naming what is missing — not a step failing later, after approvals.
    // (A read alone is answered `unavailable` to the plugin, which may carry on.)
    ws.add_runbook(
        "effects",
        &effector_runbook(
            &format!(
                "{mail_grant}\n[steps.grants.stripe]\noperations = [\"subscriptions.retrieve\", \"subscriptions.cancel\"]"
            ),
            json!([email, { "stripe": "subscriptions.cancel", "params": { "id": "sub_1" } }]),
            "",
        ),
    );
    let (code, _, out) = ws.exec("effects", &[]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("STRIPE_API_KEY"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&outbox).unwrap().count(),
        1,
        "nothing was sent"
    );
    // A dry run sends nothing and needs no key.
    let out = ws.run(&["exec", "effects", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A read granted without a key: the plugin is told, not faked.
    ws.add_runbook(
        "reads",
        &effector_runbook(
            "[steps.grants.stripe]\noperations = [\"subscriptions.retrieve\"]",
            json!([{ "stripe": "subscriptions.retrieve", "params": { "id": "sub_1" } }]),
            "",
        ),
    );
    let (code, report, out) = ws.exec("reads", &[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let error = &report["steps"][0]["output"]["results"][0]["error"];
    assert_eq!(error["kind"], "unavailable", "{report}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("STRIPE_API_KEY"),
        "{report}"
    );
}

#[test]
fn a_step_is_retried_when_stripe_keeps_failing_and_refunds_once() {
    let w = World::new();
    // Three 500s exhaust the capability's own attempts (max_attempts = 3): the plugin
    // fails, the failure is transient, and the step's retry policy runs it again.
    w.stripe.fail_next("POST", "/v1/refunds", 500, 3);
    let (code, report, out) = w.exec(&[
        "issue-refund",
        "-p",
        "organization_id=2",
        "-p",
        "amount=900",
    ]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    let refund_step = &report["steps"][1];
    assert_eq!(refund_step["attempts"], 2, "{report}");
    let posts = w.posts_to("/v1/refunds");
    assert_eq!(posts.len(), 4, "{posts:?}");
    assert!(
        posts
            .iter()
            .all(|p| p.idempotency_key == posts[0].idempotency_key)
    );
    let charge = w.customer("brightline")["charge"].as_str().unwrap();
    let refunds = w.stripe.get(&format!("/v1/refunds?charge={charge}"));
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "{refunds}");
    // The runbook allows one Stripe write: the retried write is the same write.
    assert_eq!(
        w.ws.scalar_i64("SELECT COUNT(*) FROM payment_events WHERE event_type = 'refunded'"),
        1
    );
}

#[test]
fn a_parameterless_write_sends_no_body_and_carries_its_key() {
    let w = World::new();
    let invoice = w.customer("ember")["invoice"].as_str().unwrap().to_string();
    w.ws.add_runbook(
        "effects",
        &effector_runbook(
            "[steps.grants.stripe]\noperations = [\"invoices.pay\"]",
            json!([{ "stripe": "invoices.pay", "params": { "id": invoice } }]),
            "",
        ),
    );
    let (code, report, out) = w.exec(&["effects"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let result = &report["steps"][0]["output"]["results"][0];
    assert_eq!(result["ok"]["id"], invoice.as_str(), "{result}");
    let posts = w.posts_to(&format!("/v1/invoices/{invoice}/pay"));
    assert_eq!(posts.len(), 1);
    assert!(
        posts[0]
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("runbook-")
    );
}
