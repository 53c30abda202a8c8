//! Sends one granted statement that never ends (a recursive CTE touching no table), so
//! only the step's deadline, enforced in the database, can stop it.

use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{Failure, Procedure, db, register_plugin};
use serde::Deserialize;

/// Counts an endless sequence: the same text runs on PostgreSQL and SQLite, reads no
/// table, and produces one row only when it ends, which it never does by itself.
const ENDLESS: &str =
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";

#[derive(Deserialize)]
struct Input {
    /// Another never-ending statement, if the test has one.
    #[serde(default)]
    sql: Option<String>,
}

struct Forever;

impl Procedure for Forever {
    type Input = Input;
    type Output = Value;

    fn run(input: Input) -> Result<Value, Failure> {
        let sql = input.sql.as_deref().unwrap_or(ENDLESS);
        // Reaching past the call means the host handed the plugin an answer instead of
        // ending the step at its deadline: report that as its own failure, so a test
        // can tell it from a timeout.
        match db::query(sql, &[]) {
            Ok(rows) => Err(Failure::new(
                "returned",
                format!("the endless statement returned {} rows", rows.len()),
            )),
            Err(e) => Ok(json!({ "error": { "kind": e.code(), "message": e.message() } })),
        }
    }
}

register_plugin!(Forever);
