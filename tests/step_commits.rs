//! One commit decides a step: a process killed right after a step's target transaction
//! committed (before the state store recorded the step) is resumed, and the step is
//! finished from its completion record in the target, never run again — against a real
//! PostgreSQL target with localstripe, and a real SQLite target. Also: no grant reaches
//! the host's table.

mod support;

use serde_json::Value;
use support::world::{STRIPE_KEY, WEBHOOK_SECRET, World};
use support::{Backend, Workspace, stderr, stdout};

/// Runs `runbook exec <args> --json` in `ws` with `RUNBOOK_FAILPOINT=after-target-commit:<step>`,
/// checks that the process died there, lets its lease lapse and resumes the run.
/// Returns the run id and the resume's report.
fn crash_after_target_commit_then_resume(
    ws: &Workspace,
    step: &str,
    args: &[&str],
) -> (String, Value) {
    let out = ws
        .command()
        .env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
        .env("RUNBOOK_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("RUNBOOK_FAILPOINT", format!("after-target-commit:{step}"))
        .arg("exec")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("failpoint after-target-commit"),
        "the failpoint did not fire: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    let runs = ws.json(&["runs", "--json"]);
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    // The state store saw the step start, never finish.
    let status = ws.json(&["status", &run_id, "--json"]);
    let recorded = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == step)
        .cloned()
        .unwrap();
    assert_eq!(recorded["status"], "running", "{status}");
    // The killed process cannot renew its lease; let it lapse now rather than wait.
    ws.state_execute(&format!(
        "UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = '{run_id}'"
    ));
    let out = ws
        .command()
        .env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
        .env("RUNBOOK_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .args(["resume", &run_id, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stderr(&out),
        stdout(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    (run_id, report)
}

/// The run's audit entries with `action`.
fn audited(ws: &Workspace, run_id: &str, action: &str) -> Vec<Value> {
    ws.json(&["audit", "show", "--run", run_id, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

fn assert_chain_intact(ws: &Workspace) {
    let out = ws.run(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn step_report<'r>(report: &'r Value, id: &str) -> &'r Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[test]
fn a_refund_whose_writes_committed_is_finished_from_its_record_not_run_again() {
    let w = World::new();
    let refunded = || {
        w.ws.scalar_i64(
            "SELECT COUNT(*) FROM payment_events WHERE event_type = 'refunded' AND organization_id = 2",
        )
    };
    let before = refunded();
    let (run_id, report) = crash_after_target_commit_then_resume(
        &w.ws,
        "refund",
        &[
            "issue-refund",
            "-p",
            "organization_id=2",
            "-p",
            "amount=1500",
        ],
    );

    assert_eq!(report["state"], "succeeded", "{report}");
    let refund = step_report(&report, "refund");
    assert_eq!(refund["status"], "succeeded", "{report}");
    assert_eq!(refund["attempts"], 1, "not run again: {report}");
    assert!(refund["output"].is_object(), "{report}");
    // One refund in Stripe, one `refunded` row, one `refund.issued` in the chain.
    assert_eq!(w.posts_to("/v1/refunds").len(), 1);
    assert_eq!(refunded(), before + 1);
    assert_eq!(audited(&w.ws, &run_id, "refund.issued").len(), 1);
    assert_chain_intact(&w.ws);
    let logs = w.status(&run_id)["steps"][1]["logs"].to_string();
    assert!(
        logs.contains("finished from its completion record"),
        "{logs}"
    );
    // The record is the host's, in the target, one per step that wrote.
    assert_eq!(
        w.ws.scalar_i64(&format!(
            "SELECT COUNT(*) FROM runbook_step_commits WHERE run_id = '{run_id}'"
        )),
        2
    );
}

/// A SQLite target with a scratch ledger and a runbook of two probe steps writing to it.
fn ledger_workspace() -> Workspace {
    let ws = Workspace::with_demo(Backend::Sqlite);
    ws.target_execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, note TEXT NOT NULL);");
    let step = |id: &str| {
        format!(
            r#"
[[steps]]
id = "{id}"
plugin = "probe"
[steps.input]
attempt = "{{{{ run.attempt }}}}"
statements = [{{ sql = "INSERT INTO ledger (note) VALUES ($1)", mode = "execute", params = ["{id}"] }}]
[steps.grants.db]
select = ["organizations"]
insert = ["ledger"]
"#
        )
    };
    ws.add_runbook(
        "ledger",
        &format!(
            "name = \"ledger\"\ndescription = \"test\"\n{}{}",
            step("first"),
            step("second")
        ),
    );
    ws
}

#[test]
fn a_sqlite_step_whose_writes_committed_is_not_run_again() {
    let ws = ledger_workspace();
    let (run_id, report) = crash_after_target_commit_then_resume(&ws, "first", &["ledger"]);
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(step_report(&report, "first")["attempts"], 1, "{report}");
    assert_eq!(
        step_report(&report, "first")["output"]["results"][0]["affected"],
        1,
        "the output is the committed attempt's: {report}"
    );
    let notes = |note: &str| {
        ws.scalar_i64(&format!(
            "SELECT COUNT(*) FROM ledger WHERE note = '{note}'"
        ))
    };
    assert_eq!((notes("first"), notes("second")), (1, 1));
    assert_chain_intact(&ws);
    let finished = audited(&ws, &run_id, "run.finished");
    assert_eq!(finished.len(), 1, "{finished:?}");
}

#[test]
fn no_grant_reaches_the_hosts_table() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    for kind in ["select", "insert", "update", "delete", "ddl"] {
        let grant = if kind == "select" {
            "select = [\"organizations\", \"runbook_step_commits\"]".to_string()
        } else {
            format!("select = [\"organizations\"]\n{kind} = [\"runbook_step_commits\"]")
        };
        ws.add_runbook(
            "peek",
            &format!(
                r#"name = "peek"
description = "test"
[[steps]]
id = "peek"
plugin = "probe"
[steps.input]
statements = [{{ sql = "SELECT * FROM runbook_step_commits", mode = "query" }}]
[steps.grants.db]
{grant}
"#
            ),
        );
        let (code, _, out) = ws.exec("peek", &[]);
        assert_eq!(code, 2, "{kind}: {}\n{}", stderr(&out), stdout(&out));
        assert!(
            stderr(&out).contains("reserved for the host"),
            "{kind}: {}",
            stderr(&out)
        );
    }
    // Nothing ran: no run was recorded.
    assert_eq!(ws.json(&["runs", "--json"]), serde_json::json!([]));
}

/// A PostgreSQL login role of the test's own, dropped when the guard goes (after the
/// workspace's database, which holds its privileges).
struct Role(String);

impl Drop for Role {
    fn drop(&mut self) {
        pg_execute(
            support::PG_ADMIN_URL,
            &format!("DROP ROLE IF EXISTS {}", self.0),
        );
    }
}

fn pg_execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    support::block_on(async move {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
}

#[test]
fn a_role_that_may_not_create_tables_needs_db_init_and_is_refused_without_it() {
    let role = Role(format!("rb_role_{}", uuid::Uuid::new_v4().simple()));
    let mut ws = Workspace::with_demo(Backend::Postgres);
    // `db init` (as the superuser) created the host's table; the runbooks' role may use
    // the tables but create none (PostgreSQL 15's default for `public`).
    ws.target_execute(&format!(
        "CREATE ROLE {r} LOGIN;
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT USAGE ON SCHEMA public TO {r};
         GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {r};",
        r = role.0
    ));
    let superuser = ws.target_url.clone();
    ws.target_url = ws
        .target_url
        .replace("postgres://postgres@", &format!("postgres://{}@", role.0));
    ws.write_config("");
    ws.add_runbook(
        "read",
        r#"name = "read"
description = "test"
[[steps]]
id = "read"
plugin = "probe"
[steps.input]
statements = [{ sql = "SELECT id FROM organizations WHERE id = 1", mode = "query" }]
[steps.grants.db]
select = ["organizations"]
"#,
    );
    let (code, report, out) = ws.exec("read", &[]);
    assert_eq!(code, 0, "{}\n{}", stderr(&out), stdout(&out));
    assert_eq!(report["state"], "succeeded", "{report}");
    // Even a read-only step's transaction commits with its record.
    assert_eq!(
        ws.scalar_i64("SELECT COUNT(*) FROM runbook_step_commits"),
        1
    );

    // Without the table, and unable to create it: refused before anything runs.
    pg_execute(&superuser, "DROP TABLE runbook_step_commits;");
    let (code, _, out) = ws.exec("read", &[]);
    assert_eq!(code, 1, "{}\n{}", stderr(&out), stdout(&out));
    let message = stderr(&out);
    assert!(
        message.contains("runbook_step_commits") && message.contains("db init"),
        "{message}"
    );
    assert_eq!(ws.json(&["runs", "--json"]).as_array().unwrap().len(), 1);
}
