//! A `db` grant implies nothing: what the target database does on its own when a step
//! writes (a cascading foreign key, a trigger) must be granted too, or the run is
//! refused before anything runs (exit 2, audited), and a statement whose implicit
//! effects appeared after the preflight is denied at call time. Both backends; every
//! test runs the real `runbook` binary with the `probe` test plugin.

mod support;

use serde_json::{Value, json};
use support::{Backend, Workspace, stderr};

/// Parents, kids that go with them (ON DELETE CASCADE), and bills whose updates a
/// trigger records in `bill_changes`.
fn schema(ws: &Workspace) {
    ws.target_execute(
        "CREATE TABLE parents (id BIGINT PRIMARY KEY);
         CREATE TABLE kids (id BIGINT PRIMARY KEY,
             parent_id BIGINT NOT NULL REFERENCES parents (id) ON DELETE CASCADE);
         CREATE TABLE bills (id BIGINT PRIMARY KEY, amount BIGINT NOT NULL);
         CREATE TABLE bill_changes (bill_id BIGINT NOT NULL);
         INSERT INTO parents VALUES (1), (2), (3);
         INSERT INTO kids VALUES (10, 1), (20, 2);
         INSERT INTO bills VALUES (1, 100);",
    );
    let trigger = match ws.backend {
        Backend::Sqlite => {
            "CREATE TRIGGER bill_audit AFTER UPDATE ON bills
             BEGIN INSERT INTO bill_changes VALUES (new.id); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION record_bill() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO bill_changes VALUES (NEW.id); RETURN NEW; END $$;
             CREATE TRIGGER bill_audit AFTER UPDATE ON bills
               FOR EACH ROW EXECUTE FUNCTION record_bill();"
        }
    };
    ws.target_execute(trigger);
}

/// A runbook of one probe step running `statements` under `grant` (TOML lines; the
/// probe's manifest needs `select` on organizations, which is added unless `grant`
/// has a `select` line of its own).
fn probe(ws: &Workspace, name: &str, statements: &[&str], grant: &str) {
    let grant = if grant.contains("select =") {
        grant.to_string()
    } else {
        format!("select = [\"organizations\"]\n{grant}")
    };
    let statements: Vec<String> = statements
        .iter()
        .map(|sql| format!("{{ sql = {sql:?}, mode = \"execute\" }}"))
        .collect();
    ws.add_runbook(
        name,
        &format!(
            "name = \"{name}\"\ndescription = \"implied grants\"\n\n[[steps]]\nid = \"probe\"\nplugin = \"probe\"\n[steps.input]\nstatements = [{}]\n[steps.grants.db]\n{grant}\n",
            statements.join(", ")
        ),
    );
}

fn refusals(ws: &Workspace) -> Vec<Value> {
    ws.json(&["audit", "show", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "plugin.refused")
        .cloned()
        .collect()
}

fn check_cascade_must_be_granted(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    schema(&ws);
    probe(
        &ws,
        "purge",
        &["DELETE FROM parents WHERE id = 1"],
        "delete = [\"parents\"]",
    );
    let (code, _, out) = ws.exec("purge", &[]);
    let err = stderr(&out);
    assert_eq!(code, 2, "{backend:?}: {err}");
    assert!(
        err.contains("delete on table \"kids\"")
            && err.contains("ON DELETE CASCADE")
            && err.contains("delete = [\"kids\"]"),
        "{backend:?}: {err}"
    );
    // Nothing ran, and the refusal is in the audit chain.
    assert_eq!(ws.scalar_i64("SELECT count(*) FROM parents"), 3);
    let refused = refusals(&ws);
    assert_eq!(refused.len(), 1, "{refused:?}");
    let detail: Value = serde_json::from_str(refused[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["implied_not_granted"][0]["need"]["table"], "kids");
    assert_eq!(
        detail["implied_not_granted"][0]["source"],
        "delete on \"parents\""
    );

    // A rollback's grant is checked the same way, before anything runs.
    ws.add_runbook(
        "undoable",
        "name = \"undoable\"\ndescription = \"implied grants of a rollback\"\n\n[[steps]]\nid = \"probe\"\nplugin = \"probe\"\n[steps.input]\nstatements = []\n[steps.grants.db]\nselect = [\"organizations\"]\n[steps.rollback]\nplugin = \"probe\"\n[steps.rollback.input]\nstatements = []\n[steps.rollback.grants.db]\nselect = [\"organizations\"]\ndelete = [\"parents\"]\n",
    );
    let (code, _, out) = ws.exec("undoable", &[]);
    assert_eq!(code, 2, "{backend:?}: {}", stderr(&out));
    assert!(
        stderr(&out).contains("delete on table \"kids\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(refusals(&ws).len(), 2);

    // Granting the child too makes it run, cascade and all.
    probe(
        &ws,
        "purge-all",
        &["DELETE FROM parents WHERE id = 1"],
        "delete = [\"parents\", \"kids\"]",
    );
    let (code, report, out) = ws.exec("purge-all", &[]);
    assert_eq!(code, 0, "{backend:?}: {}", stderr(&out));
    assert_eq!(report["steps"][0]["output"]["results"][0]["affected"], 1);
    assert_eq!(ws.scalar_i64("SELECT count(*) FROM kids"), 1);
}

#[test]
fn cascade_must_be_granted_sqlite() {
    check_cascade_must_be_granted(Backend::Sqlite);
}

#[test]
fn cascade_must_be_granted_postgres() {
    check_cascade_must_be_granted(Backend::Postgres);
}

fn check_trigger_must_be_accepted(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    schema(&ws);
    let update = ["UPDATE bills SET amount = 50 WHERE id = 1"];
    probe(&ws, "rebill", &update, "update = [\"bills\"]");
    let (code, _, out) = ws.exec("rebill", &[]);
    let err = stderr(&out);
    assert_eq!(code, 2, "{backend:?}: {err}");
    assert!(
        err.contains("trigger \"bill_audit\" on \"bills\"")
            && err.contains("triggers = [\"bill_audit\"]"),
        "{backend:?}: {err}"
    );
    assert_eq!(ws.scalar_i64("SELECT count(*) FROM bill_changes"), 0);

    probe(
        &ws,
        "rebill-accepted",
        &update,
        "update = [\"bills\"]\ntriggers = [\"bill_audit\"]",
    );
    let (code, _, out) = ws.exec("rebill-accepted", &[]);
    assert_eq!(code, 0, "{backend:?}: {}", stderr(&out));
    assert_eq!(ws.scalar_i64("SELECT amount FROM bills"), 50);
    assert_eq!(ws.scalar_i64("SELECT count(*) FROM bill_changes"), 1);
}

#[test]
fn trigger_must_be_accepted_sqlite() {
    check_trigger_must_be_accepted(Backend::Sqlite);
}

#[test]
fn trigger_must_be_accepted_postgres() {
    check_trigger_must_be_accepted(Backend::Postgres);
}

/// A cascade that appears after the preflight (here: the step's own DDL) is denied at
/// call time, audited like any denial; the catalog is read once per step, again only
/// after the step's DDL.
fn check_denied_at_call_time(backend: Backend) {
    let ws = Workspace::with_demo(backend);
    schema(&ws);
    probe(
        &ws,
        "late",
        &[
            "DELETE FROM parents WHERE id = 99",
            "DELETE FROM parents WHERE id = 98",
            "CREATE TABLE late_kids (id BIGINT PRIMARY KEY, \
             parent_id BIGINT REFERENCES parents (id) ON DELETE CASCADE)",
            "DELETE FROM parents WHERE id = 3",
        ],
        "select = [\"organizations\", \"parents\"]\ndelete = [\"parents\", \"kids\"]\nddl = [\"late_kids\"]",
    );
    let out = ws
        .command()
        .env("RUST_LOG", "runbook::db=debug")
        .args(["exec", "late", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{backend:?}: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = &report["steps"][0]["output"]["results"];
    assert_eq!(results[2], json!({ "affected": 0 }), "{results}");
    let denied = &results[3]["error"];
    assert_eq!(denied["kind"], "denied", "{results}");
    let message = denied["message"].as_str().unwrap();
    assert!(
        message.contains("delete on table \"late_kids\"") && message.contains("ON DELETE CASCADE"),
        "{message}"
    );
    assert_eq!(ws.scalar_i64("SELECT count(*) FROM parents"), 3);
    let run_id = report["run_id"].as_str().unwrap();
    let audit = ws.json(&["audit", "show", "--run", run_id, "--json"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "capability.denied" && e["target"] == "db:late_kids"),
        "{audit}"
    );
    // One catalog read for the first two deletes, one more after the CREATE TABLE.
    let reads = stderr(&out)
        .matches("read the target's implied effects")
        .count();
    assert_eq!(reads, 2, "{}", stderr(&out));
}

#[test]
fn denied_at_call_time_sqlite() {
    check_denied_at_call_time(Backend::Sqlite);
}

#[test]
fn denied_at_call_time_postgres() {
    check_denied_at_call_time(Backend::Postgres);
}
