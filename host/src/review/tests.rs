//! Unit tests of the review: lints in the context of a runbook, the lockfile's lints,
//! and the diff of two reviews.

use std::collections::BTreeSet;

use super::*;
use crate::capability::{Interface, Severity};
use crate::spec::lock::Lockfile;
use crate::spec::runbook::fixtures::catalog;
use crate::spec::runbook::parse_runbook;

const APPROVAL: &str = r#"
[[steps]]
id = "approve"
[steps.approval]
message = "go?"
approvers = ["alice"]
"#;

const RESET: &str = r#"
[[steps]]
id = "reset"
plugin = "quota-reset"
[steps.grants.db]
select = ["usage_quotas", "organizations"]
update = ["usage_quotas"]
"#;

const DDL: &str = "ddl = [\"usage_quotas\"]\n";

const NOTIFY: &str = r#"
[[steps]]
id = "notify"
plugin = "notify"
[steps.grants.email]
recipients = ["ops@example.com", "*@example.com"]
"#;

fn inputs(body: &str, imports: &[&str], lock: Option<Lockfile>) -> Inputs {
    let text = format!("name = \"t\"\ndescription = \"d\"\n{body}");
    let runbook = parse_runbook("t.toml", &text, &catalog()).unwrap_or_else(|d| panic!("{d}"));
    let imports: BTreeSet<Interface> = imports
        .iter()
        .map(|i| Interface::from_name(i).unwrap())
        .collect();
    let plugins = catalog()
        .into_iter()
        .map(|(name, manifest)| {
            let facts = PluginFacts {
                needs: Some(manifest.needs),
                digest: Some(format!("digest-of-{name}")),
                imports: Some(imports.clone()),
            };
            (name, facts)
        })
        .collect();
    Inputs {
        runbooks: vec![RunbookSource {
            name: "t".into(),
            file: "t.toml".into(),
            loaded: Ok(runbook),
        }],
        plugins,
        settings: Settings::default(),
        lock,
        lock_path: Some("runbook.lock".into()),
        schema: None,
        notes: Vec::new(),
    }
}

fn codes(step: &StepReview) -> Vec<&str> {
    step.lints.iter().map(|l| l.code).collect()
}

#[test]
fn a_write_before_any_approval_ddl_and_unneeded_tables_are_flagged() {
    let review = review(&inputs(
        &format!("{RESET}{DDL}{APPROVAL}{NOTIFY}"),
        &["db"],
        None,
    ));
    assert_eq!(review.lints[0].code, "no-lockfile");
    assert!(review.lockfile.is_none());
    let steps = &review.runbooks[0].steps;
    let roles: Vec<(&str, Role)> = steps.iter().map(|s| (s.step.as_str(), s.role)).collect();
    assert_eq!(
        roles,
        [
            ("reset", Role::Step),
            ("approve", Role::Approval),
            ("notify", Role::Step)
        ]
    );
    let reset = &steps[0];
    assert_eq!(
        codes(reset),
        [
            "ddl-granted",
            "unneeded-grant",
            "unneeded-grant",
            "write-without-approval"
        ]
    );
    assert!(
        reset.lints[1]
            .message
            .contains("select on \"organizations\"")
    );
    assert!(reset.lints[2].message.contains("ddl on \"usage_quotas\""));
    assert_eq!(
        reset.writes,
        [
            "db update on \"usage_quotas\"",
            "db ddl on \"usage_quotas\""
        ]
    );
    assert_eq!(reset.digest.as_deref(), Some("digest-of-quota-reset"));
    assert_eq!(
        reset.declares,
        ["db select: usage_quotas", "db update: usage_quotas"]
    );
    // After the approval gate: writes are fine, the wildcard is not.
    assert_eq!(codes(&steps[2]), ["wildcard-recipient"]);

    let json = serde_json::to_value(&review).unwrap();
    let step = &json["runbooks"][0]["steps"][0];
    assert_eq!(step["role"], "step");
    assert_eq!(step["imports"], serde_json::json!(["db"]));
    assert_eq!(step["lints"][0]["severity"], "warning");
    assert!(step.get("granted").is_none());
}

#[test]
fn the_lockfile_pins_digests_and_names() {
    let mut lock = Lockfile::default();
    lock.plugins
        .insert("quota-reset".into(), "another-digest".into());
    let review = review(&inputs(
        &format!("{APPROVAL}{RESET}{NOTIFY}"),
        &["db"],
        Some(lock),
    ));
    assert!(review.lints.is_empty());
    assert_eq!(review.lockfile.as_deref(), Some("runbook.lock"));
    let steps = &review.runbooks[0].steps;
    let drift = &steps[1].lints.last().unwrap();
    assert_eq!(
        (drift.code, drift.severity),
        ("lock-drift", Severity::Error)
    );
    assert!(drift.message.contains("sha256:another-digest"));
    assert!(drift.message.contains("sha256:digest-of-quota-reset"));
    assert_eq!(steps[2].lints.last().unwrap().code, "not-locked");
}

#[test]
fn the_diff_lists_what_a_change_widens_and_narrows() {
    let old = review(&inputs(&format!("{APPROVAL}{RESET}"), &["db"], None));
    let new = review(&inputs(
        &format!("{RESET}{DDL}{APPROVAL}{NOTIFY}"),
        &["db", "email"],
        None,
    ));
    let diff = super::diff("HEAD~1", vec!["a note".into()], &old, &new);
    assert!(diff.widens());
    let reset = &diff.steps[0];
    assert_eq!(reset.step, "reset");
    assert_eq!(
        reset.widened,
        [
            "db ddl on \"usage_quotas\"",
            "imports the `email` interface",
            "no approval step comes before it any more"
        ]
    );
    let notify = &diff.steps[1];
    assert_eq!(notify.widened[0], "new entry with grants");
    assert!(
        notify
            .widened
            .contains(&"email to \"*@example.com\"".to_string())
    );

    let back = super::diff("HEAD", Vec::new(), &new, &old);
    assert!(!back.widens());
    let reset = back.steps.iter().find(|s| s.step == "reset").unwrap();
    assert!(
        reset
            .narrowed
            .contains(&"db ddl on \"usage_quotas\"".to_string())
    );
    let removed = back.steps.iter().find(|s| s.step == "notify").unwrap();
    assert_eq!(removed.narrowed[0], "removed");

    assert!(super::diff("HEAD", Vec::new(), &old, &old).steps.is_empty());
}

#[test]
fn a_weaker_approval_gate_is_a_widening() {
    let old = review(&inputs(APPROVAL, &["db"], None));
    let weaker = APPROVAL.replace(
        "approvers = [\"alice\"]",
        "approvers = [\"alice\", \"bob\"]\nallow_self = true\non_timeout = \"continue\"\ntimeout = \"1h\"",
    );
    let new = review(&inputs(&weaker, &["db"], None));
    let diff = super::diff("HEAD", Vec::new(), &old, &new);
    assert_eq!(
        diff.steps[0].widened,
        [
            "approver `bob` added",
            "the operator may now approve their own run",
            "on timeout: reject → continue"
        ]
    );
    assert_eq!(diff.steps[0].role, Role::Approval);
    let json = serde_json::to_value(&new).unwrap();
    assert_eq!(json["runbooks"][0]["steps"][0]["gate"]["required"], 1);
    let back = super::diff("HEAD", Vec::new(), &new, &old);
    assert!(!back.widens());
    assert_eq!(back.steps[0].narrowed.len(), 3);
}

#[test]
fn runbook_toml_widens_through_endpoint_urls_and_approver_groups() {
    let body = format!(
        "{}{RESET}[steps.grants.webhook]\nendpoints = [\"app\"]\n",
        APPROVAL.replace("\"alice\"", "\"group:leads\"")
    );
    let settings = |url: &str, leads: &[&str]| Settings {
        endpoints: [("app".to_string(), url.to_string())].into(),
        groups: [(
            "leads".to_string(),
            leads.iter().map(|s| s.to_string()).collect(),
        )]
        .into(),
    };
    let mut old = inputs(&body, &["db"], None);
    old.settings = settings("https://app.internal/hook", &["alice"]);
    let mut new = inputs(&body, &["db"], None);
    new.settings = settings("https://elsewhere.example/hook", &["alice", "mallory"]);
    let diff = super::diff("HEAD", Vec::new(), &review(&old), &review(&new));
    let widened: Vec<&str> = diff
        .steps
        .iter()
        .flat_map(|s| s.widened.iter().map(String::as_str))
        .collect();
    assert_eq!(
        widened,
        [
            "group `leads` gains approver `mallory`",
            "endpoint `app` now delivers to https://elsewhere.example/hook (was https://app.internal/hook)"
        ]
    );
}
