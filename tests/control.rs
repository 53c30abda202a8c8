//! Control flow through the real binary: approvals by the right people only, pauses and
//! resumes across processes, rollbacks in reverse order (and failing ones), retries,
//! crash-safe resume after kill -9, the concurrency key, and rollbacks that never undo a
//! step twice.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Backend, Workspace, stderr, stdout};

const PAUSED: i32 = 3;

/// A workspace with the demo schema, a scratch `ledger` table, approver groups and a
/// short lease (so a killed run is interrupted quickly).
fn workspace() -> Workspace {
    let ws = Workspace::with_demo(Backend::Sqlite);
    ws.target_execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, note TEXT NOT NULL);");
    ws.write_config(
        "\n[groups]\nleads = [\"alice\", \"bob\", \"carol\"]\n\n[runs]\nlease = \"2s\"\n",
    );
    ws
}

/// A probe step writing `note` into the ledger, undone by deleting it again (and noting
/// the undo). The probe's manifest declares a read of `organizations`.
fn ledger_step(id: &str, note: &str, extra: &str) -> String {
    format!(
        r#"
[[steps]]
id = "{id}"
plugin = "probe"
{extra}
[steps.input]
attempt = "{{{{ run.attempt }}}}"
statements = [{{ sql = "INSERT INTO ledger (note) VALUES ($1)", mode = "execute", params = ["{note}"] }}]
[steps.grants.db]
select = ["organizations"]
insert = ["ledger"]
[steps.rollback]
plugin = "probe"
[steps.rollback.input]
statements = [
  {{ sql = "DELETE FROM ledger WHERE note = $1", mode = "execute", params = ["{note}"] }},
  {{ sql = "INSERT INTO ledger (note) VALUES ($1)", mode = "execute", params = ["undo {note}"] }},
]
[steps.rollback.grants.db]
select = ["organizations"]
insert = ["ledger"]
delete = ["ledger"]
"#
    )
}

fn approval_step(id: &str, extra: &str) -> String {
    format!(
        r#"
[[steps]]
id = "{id}"
[steps.approval]
message = "Write the second note after {{{{ steps.first.output.results[0].affected }}}} row(s)"
approvers = ["group:leads"]
{extra}
"#
    )
}

fn runbook(name: &str, steps: &[String]) -> String {
    format!(
        "name = \"{name}\"\ndescription = \"control-flow test\"\n{}",
        steps.concat()
    )
}

fn notes(ws: &Workspace) -> Vec<String> {
    let url = ws.target_url.clone();
    support::block_on(async move {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar("SELECT note FROM ledger ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    })
}

fn exec_as(ws: &Workspace, who: &str, args: &[&str]) -> (i32, Value, std::process::Output) {
    let out = ws
        .command()
        .env("RUNBOOK_OPERATOR", who)
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, out)
}

fn audit_actions(ws: &Workspace, run_id: &str) -> Vec<(String, String)> {
    ws.json(&["audit", "show", "--run", run_id, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn approvals_need_the_right_people_and_a_quorum_then_resume_continues() {
    let ws = workspace();
    ws.add_runbook(
        "gated",
        &runbook(
            "gated",
            &[
                ledger_step("first", "one", ""),
                approval_step("approve", "required = 2"),
                ledger_step("second", "two", ""),
            ],
        ),
    );
    let (code, report, out) = exec_as(&ws, "alice", &["exec", "gated", "--json"]);
    assert_eq!(code, PAUSED, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(report["state"], "awaiting-approval");
    assert_eq!(
        report["awaiting"]["message"],
        "Write the second note after 1 row(s)"
    );
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert_eq!(notes(&ws), ["one"]);

    let pending = ws.json(&["runs", "--pending", "--json"]);
    assert_eq!(pending[0]["id"], run_id.as_str());

    // Not an approver; the operator themself; then a real approver (1 of 2).
    let (code, _, out) = exec_as(&ws, "mallory", &["approve", &run_id]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("not an approver"), "{}", stderr(&out));
    let (code, _, out) = exec_as(&ws, "alice", &["approve", &run_id]);
    assert_eq!(code, 2);
    assert!(
        stderr(&out).contains("started this run"),
        "{}",
        stderr(&out)
    );
    let (code, _, out) = exec_as(&ws, "bob", &["approve", &run_id, "--comment", "checked"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let (code, _, _) = exec_as(&ws, "bob", &["approve", &run_id]);
    assert_eq!(code, 2, "one decision per person");

    // One approval of two: resuming pauses again.
    let (code, report, out) = exec_as(&ws, "bob", &["resume", &run_id, "--json"]);
    assert_eq!(code, PAUSED, "{}", stderr(&out));
    assert_eq!(
        report["awaiting"]["approved_by"],
        serde_json::json!(["bob"])
    );

    let (code, _, _) = exec_as(&ws, "carol", &["approve", &run_id]);
    assert_eq!(code, 0);
    let (code, report, out) = exec_as(&ws, "carol", &["resume", &run_id, "--json"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(report["state"], "succeeded");
    assert_eq!(
        notes(&ws),
        ["one", "two"],
        "the first step was not run again"
    );

    let actions = audit_actions(&ws, &run_id);
    let granted: Vec<&str> = actions
        .iter()
        .filter(|(a, _)| a == "approval.granted")
        .map(|(_, who)| who.as_str())
        .collect();
    assert_eq!(granted, ["bob", "carol"]);
    assert!(actions.iter().any(|(a, _)| a == "approval.requested"));
    assert!(
        ws.json(&["runs", "--pending", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_rejection_fails_the_run_and_rolls_back_in_reverse_order() {
    let ws = workspace();
    ws.add_runbook(
        "gated",
        &runbook(
            "gated",
            &[
                ledger_step("first", "one", ""),
                ledger_step("second", "two", ""),
                approval_step("approve", "allow_self = true"),
                ledger_step("third", "three", ""),
            ],
        ),
    );
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "gated", "--json"]);
    assert_eq!(code, PAUSED);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let (code, _, out) = exec_as(
        &ws,
        "alice",
        &["reject", &run_id, "--reason", "wrong customer"],
    );
    assert_eq!(code, 0, "{}", stderr(&out));
    let (code, report, out) = exec_as(&ws, "alice", &["resume", &run_id, "--json"]);
    assert_eq!(code, 1, "{}", stderr(&out));
    assert_eq!(report["state"], "rolled-back", "{report}");
    let undone: Vec<&str> = report["rollbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["second", "first"]);
    assert_eq!(notes(&ws), ["undo two", "undo one"]);
    let status = ws.json(&["status", &run_id, "--json"]);
    assert_eq!(status["state"], "rolled-back");
    assert_eq!(status["rollbacks"].as_array().unwrap().len(), 2);
    let actions = audit_actions(&ws, &run_id);
    assert!(actions.contains(&("approval.rejected".into(), "alice".into())));
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _)| a == "step.rolled_back")
            .count(),
        2
    );
}

#[test]
fn a_failing_rollback_is_recorded_and_the_others_still_run() {
    let ws = workspace();
    let broken_undo = ledger_step("first", "one", "").replace(
        "[steps.rollback.input]\n",
        "[steps.rollback.input]\nfail_after = true\n",
    );
    ws.add_runbook(
        "undo",
        &runbook(
            "undo",
            &[
                ledger_step("zero", "zero", ""),
                broken_undo,
                ledger_step("boom", "boom", "")
                    .replace("[steps.input]\n", "[steps.input]\nfail_after = true\n"),
            ],
        ),
    );
    let (code, report, out) = exec_as(&ws, "alice", &["exec", "undo", "--json"]);
    assert_eq!(code, 1, "{}", stderr(&out));
    assert_eq!(report["state"], "rollback-failed", "{report}");
    let outcome: Vec<(String, bool)> = report["rollbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["step"].as_str().unwrap().to_string(),
                r["succeeded"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [("first".to_string(), false), ("zero".to_string(), true)]
    );
    // The failed undo's writes were rolled back with it; the other undo stands.
    assert_eq!(notes(&ws), ["one", "undo zero"]);
}

#[test]
fn retries_are_counted_and_timeouts_retried() {
    let ws = workspace();
    let slow_once = ledger_step("slow", "once", "timeout = \"300ms\"\nattempts = 3")
        .replace("[steps.input]\n", "[steps.input]\nspin_on_attempt = 1\n");
    let never = ledger_step("never", "never", "attempts = 2").replace(
        "[steps.input]\n",
        "[steps.input]\nfail_on_attempts = [1, 2]\n",
    );
    ws.add_runbook("retry", &runbook("retry", &[slow_once, never]));
    let (code, report, out) = exec_as(&ws, "alice", &["exec", "retry", "--json"]);
    assert_eq!(code, 1, "{}", stderr(&out));
    // A timeout is worth another attempt; a business failure is not.
    assert_eq!(report["steps"][0]["attempts"], 2, "{report}");
    assert_eq!(report["steps"][0]["status"], "succeeded");
    assert_eq!(report["steps"][1]["attempts"], 1, "{report}");
    let status = ws.json(&["status", report["run_id"].as_str().unwrap(), "--json"]);
    assert_eq!(status["steps"][0]["attempts"], 2);
    // The timed-out attempt's insert was rolled back; then the step was undone.
    assert_eq!(notes(&ws), ["undo once"]);
}

#[test]
fn an_approval_timeout_rejects_or_continues_as_configured() {
    let ws = workspace();
    ws.add_runbook(
        "strict",
        &runbook(
            "strict",
            &[
                ledger_step("first", "one", ""),
                approval_step("approve", "timeout = \"1s\""),
            ],
        ),
    );
    ws.add_runbook(
        "lenient",
        &runbook(
            "lenient",
            &[
                ledger_step("first", "uno", ""),
                approval_step("approve", "timeout = \"1s\"\non_timeout = \"continue\""),
                ledger_step("second", "dos", ""),
            ],
        ),
    );
    let (_, strict, _) = exec_as(&ws, "alice", &["exec", "strict", "--json"]);
    let (_, lenient, _) = exec_as(&ws, "alice", &["exec", "lenient", "--json"]);
    std::thread::sleep(Duration::from_millis(1200));
    let strict_id = strict["run_id"].as_str().unwrap().to_string();
    let (code, _, out) = exec_as(&ws, "bob", &["approve", &strict_id]);
    assert_eq!(code, 2, "too late: {}", stderr(&out));
    let (code, report, _) = exec_as(&ws, "bob", &["resume", &strict_id, "--json"]);
    assert_eq!(code, 1);
    assert!(
        report["error"].as_str().unwrap().contains("timed out"),
        "{report}"
    );
    assert!(
        audit_actions(&ws, &strict_id)
            .iter()
            .any(|(a, _)| a == "approval.timed_out")
    );

    let (code, report, _) = exec_as(
        &ws,
        "bob",
        &["resume", lenient["run_id"].as_str().unwrap(), "--json"],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["steps"][1]["output"]["timed_out"], true);
    assert!(notes(&ws).contains(&"dos".to_string()));
}

#[test]
fn yes_is_refused_unless_the_operator_may_approve() {
    let ws = workspace();
    ws.add_runbook(
        "gated",
        &runbook(
            "gated",
            &[
                ledger_step("first", "one", ""),
                approval_step("approve", "allow_self = true"),
            ],
        ),
    );
    let (code, _, out) = exec_as(&ws, "mallory", &["exec", "gated", "--yes"]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(notes(&ws).is_empty(), "nothing ran");
    let (code, report, out) = exec_as(&ws, "alice", &["exec", "gated", "--yes", "--json"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(
        report["steps"][1]["output"]["approvers"],
        serde_json::json!(["alice"])
    );
}

#[test]
fn a_second_run_with_the_same_concurrency_key_is_refused() {
    let ws = workspace();
    let text = runbook(
        "keyed",
        &[ledger_step("first", "one", ""), approval_step("approve", "")],
    )
    .replace(
        "description = \"control-flow test\"\n",
        "description = \"control-flow test\"\nconcurrency_key = \"{{ params.org }}\"\n[params.org]\ntype = \"integer\"\n",
    );
    ws.add_runbook("keyed", &text);
    let (code, first, _) = exec_as(&ws, "alice", &["exec", "keyed", "-p", "org=7", "--json"]);
    assert_eq!(code, PAUSED);
    let (code, _, out) = exec_as(&ws, "bob", &["exec", "keyed", "-p", "org=7"]);
    assert_eq!(code, 2);
    assert!(
        stderr(&out).contains(first["run_id"].as_str().unwrap()),
        "{}",
        stderr(&out)
    );
    let (code, _, _) = exec_as(&ws, "bob", &["exec", "keyed", "-p", "org=8", "--json"]);
    assert_eq!(code, PAUSED, "another key is another run");
}

/// Waits until `check` holds on `runbook status`, or fails after 20 s.
fn wait_for(ws: &Workspace, run_id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let out = ws.run(&["status", run_id, "--json"]);
        if let Ok(status) = serde_json::from_slice::<Value>(&out.stdout)
            && check(&status)
        {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn latest_run_id(ws: &Workspace) -> Option<String> {
    let out = ws.run(&["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
    runs[0]["id"].as_str().map(str::to_string)
}

#[test]
fn killed_mid_step_the_run_is_interrupted_and_resume_completes_it_once() {
    let ws = workspace();
    let stuck = ledger_step("second", "two", "timeout = \"60s\"")
        .replace("[steps.input]\n", "[steps.input]\nspin_on_attempt = 1\n");
    ws.add_runbook(
        "crashy",
        &runbook(
            "crashy",
            &[
                ledger_step("first", "one", ""),
                stuck,
                ledger_step("third", "three", ""),
            ],
        ),
    );
    let mut child = ws
        .command()
        .args(["exec", "crashy", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let run_id = loop {
        if let Some(id) = latest_run_id(&ws) {
            break id;
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_for(&ws, &run_id, "the second step to be in flight", |s| {
        s["steps"]
            .as_array()
            .is_some_and(|steps| steps.len() == 2 && steps[1]["status"] == "running")
    });
    Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    // Its lease runs out: the run shows as interrupted, not running forever.
    wait_for(&ws, &run_id, "the run to be interrupted", |s| {
        s["state"] == "interrupted"
    });
    assert_eq!(
        notes(&ws),
        ["one"],
        "the in-flight step's writes died with it"
    );

    let (code, report, out) = exec_as(&ws, "bob", &["resume", &run_id, "--json"]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(report["steps"][1]["attempts"], 2, "{report}");
    assert_eq!(
        notes(&ws),
        ["one", "two", "three"],
        "each change exactly once"
    );
    assert!(audit_actions(&ws, &run_id).contains(&("run.resumed".into(), "bob".into())));
}

#[test]
fn killed_between_steps_resume_runs_only_the_rest() {
    let ws = workspace();
    ws.add_runbook(
        "crashy",
        &runbook(
            "crashy",
            &[
                ledger_step("first", "one", ""),
                ledger_step("second", "two", ""),
            ],
        ),
    );
    // The failpoint kills the process right after `first` is recorded.
    let out = ws
        .command()
        .env("RUNBOOK_FAILPOINT", "after-step:first")
        .args(["exec", "crashy", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let run_id = latest_run_id(&ws).unwrap();
    wait_for(&ws, &run_id, "the run to be interrupted", |s| {
        s["state"] == "interrupted"
    });
    assert_eq!(notes(&ws), ["one"]);
    let (code, _, out) = exec_as(&ws, "alice", &["resume", &run_id, "--json"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(notes(&ws), ["one", "two"]);
    // Resuming a finished run is refused.
    let (code, _, _) = exec_as(&ws, "alice", &["resume", &run_id]);
    assert_eq!(code, 2);
}

#[test]
fn a_finished_run_is_rolled_back_on_demand_by_an_allowed_person() {
    let ws = workspace();
    let text = runbook(
        "undoable",
        &[
            ledger_step("first", "one", ""),
            ledger_step("second", "two", ""),
        ],
    )
    .replace(
        "description = \"control-flow test\"\n",
        "description = \"control-flow test\"\nrollback_approvers = [\"group:leads\"]\n",
    );
    ws.add_runbook("undoable", &text);
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "undoable", "--json"]);
    assert_eq!(code, 0);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert_eq!(notes(&ws), ["one", "two"]);

    let (code, _, out) = exec_as(&ws, "mallory", &["rollback", "--yes", &run_id]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("may not roll back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(notes(&ws), ["one", "two"]);

    let (code, report, out) = exec_as(&ws, "bob", &["rollback", "--yes", &run_id, "--json"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(report["state"], "rolled-back", "{report}");
    assert_eq!(
        ws.json(&["status", &run_id, "--json"])["state"],
        "rolled-back"
    );
    assert_eq!(notes(&ws), ["undo two", "undo one"]);
    assert!(audit_actions(&ws, &run_id).contains(&("run.rolled_back".into(), "bob".into())));
    // Twice is once: nothing is undone again, and the run is left as it is.
    let (code, report, _) = exec_as(&ws, "bob", &["rollback", &run_id, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(report["nothing_to_undo"], true, "{report}");
    assert_eq!(report["state"], "rolled-back", "{report}");
    assert_eq!(notes(&ws), ["undo two", "undo one"]);
}

#[test]
fn a_rollback_with_nothing_to_undo_says_so_and_one_without_a_terminal_needs_yes() {
    let ws = workspace();
    let without_rollback = |id: &str, note: &str| {
        let step = ledger_step(id, note, "");
        step[..step.find("[steps.rollback]").unwrap()].to_string()
    };
    ws.add_runbook(
        "mixed",
        &runbook(
            "mixed",
            &[
                ledger_step("first", "one", ""),
                without_rollback("second", "two"),
            ],
        ),
    );
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "mixed", "--json"]);
    assert_eq!(code, 0);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    // stdin is not a terminal here: without --yes nothing is undone, and it says what
    // would have been.
    let (code, _, out) = exec_as(&ws, "bob", &["rollback", &run_id]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(stderr(&out).contains("undoes first"), "{}", stderr(&out));
    assert_eq!(notes(&ws), ["one", "two"]);
    assert_eq!(
        ws.json(&["status", &run_id, "--json"])["state"],
        "succeeded"
    );

    ws.add_runbook(
        "plain",
        &runbook("plain", &[without_rollback("only", "three")]),
    );
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "plain", "--json"]);
    assert_eq!(code, 0);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let (code, _, out) = exec_as(&ws, "bob", &["rollback", &run_id]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("nothing to undo"), "{text}");
    assert!(
        text.contains("completed without a rollback: only"),
        "{text}"
    );
    assert_eq!(
        ws.json(&["status", &run_id, "--json"])["state"],
        "succeeded",
        "the run is left as it was"
    );
    assert_eq!(notes(&ws), ["one", "two", "three"]);
}

#[test]
fn a_corrupt_step_row_is_an_error_not_a_panic() {
    let ws = workspace();
    let text = runbook(
        "undoable",
        &[
            ledger_step("first", "one", ""),
            ledger_step("second", "two", ""),
        ],
    );
    ws.add_runbook("undoable", &text);
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "undoable", "--json"]);
    assert_eq!(code, 0);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    // A step index the runbook does not have (the row was edited, or the store is damaged).
    ws.state_execute(&format!(
        "UPDATE steps SET step_index = 7 WHERE run_id = '{run_id}' AND step_id = 'second'"
    ));
    let (code, _, out) = exec_as(&ws, "alice", &["rollback", "--yes", &run_id]);
    assert_eq!(code, 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// Sets the lease of `run_id` as another process holding it for a minute would.
fn hold_lease(ws: &Workspace, run_id: &str, owner: &str) {
    let until = (chrono::Utc::now() + chrono::Duration::seconds(60))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    ws.state_execute(&format!(
        "UPDATE runs SET lease_owner = '{owner}', lease_expires_at = '{until}' WHERE id = '{run_id}'"
    ));
}

#[test]
fn a_run_held_by_another_rollback_is_not_rolled_back_twice() {
    let ws = workspace();
    ws.add_runbook(
        "undoable",
        &runbook("undoable", &[ledger_step("first", "one", "")]),
    );
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "undoable", "--json"]);
    assert_eq!(code, 0);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    hold_lease(&ws, &run_id, "pid 1 (another rollback)");

    let (code, _, out) = exec_as(&ws, "bob", &["rollback", "--yes", &run_id]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another rollback"),
        "names the holder: {}",
        stderr(&out)
    );
    assert_eq!(notes(&ws), ["one"], "nothing was undone");
    assert_eq!(
        ws.json(&["status", &run_id, "--json"])["state"],
        "succeeded"
    );
}

#[test]
fn two_concurrent_rollbacks_undo_each_step_once() {
    let ws = workspace();
    // A slow undo of `first` (the probe counts to 400 million before its statements)
    // keeps the first rollback busy while the second one starts.
    let slow = ledger_step("first", "one", "timeout = \"60s\"").replace(
        "[steps.rollback.input]\n",
        "[steps.rollback.input]\nbusy_iterations = 400000000\n",
    );
    ws.add_runbook(
        "undoable",
        &runbook("undoable", &[slow, ledger_step("second", "two", "")]),
    );
    let (code, report, _) = exec_as(&ws, "alice", &["exec", "undoable", "--json"]);
    assert_eq!(code, 0);
    let run_id = report["run_id"].as_str().unwrap().to_string();

    let spawn = || {
        ws.command()
            .env("RUNBOOK_OPERATOR", "bob")
            .args(["rollback", "--yes", &run_id, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    let second = spawn();
    let outcomes: Vec<std::process::Output> = [first, second]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let codes: Vec<i32> = outcomes
        .iter()
        .map(|o| o.status.code().unwrap_or(-1))
        .collect();
    assert!(
        codes.contains(&0),
        "one rollback ran: {codes:?}\n{}\n{}",
        stderr(&outcomes[0]),
        stderr(&outcomes[1])
    );
    assert!(
        codes.iter().all(|c| *c == 0 || *c == 2),
        "the other was refused (2) or found nothing left to undo (0): {codes:?}"
    );
    assert_eq!(
        notes(&ws),
        ["undo two", "undo one"],
        "each compensation ran exactly once"
    );
    assert_eq!(
        ws.json(&["status", &run_id, "--json"])["state"],
        "rolled-back"
    );
}
