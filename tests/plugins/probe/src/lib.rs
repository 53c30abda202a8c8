//! Runs the statements in its input one by one and reports each outcome as data, so
//! tests can see exactly what the host allowed, denied or returned; on request it then
//! fails or spins (to be killed), on a given attempt.

use runbook_sdk::serde_json::{Value as Json, json};
use runbook_sdk::{CallError, Failure, Procedure, Value, db, register_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    statements: Vec<Statement>,
    #[serde(default)]
    fail_after: bool,
    /// The step's attempt (`{{ run.attempt }}`), for the two fields below.
    #[serde(default)]
    attempt: u32,
    /// Loop forever after the statements on this attempt: a step in flight, for tests
    /// that kill the process.
    #[serde(default)]
    spin_on_attempt: Option<u32>,
    /// Fail (as a business failure) after the statements on these attempts.
    #[serde(default)]
    fail_on_attempts: Vec<u32>,
    /// Count this far before the statements: a step (or undo) that takes a while, for
    /// tests of what happens meanwhile.
    #[serde(default)]
    busy_iterations: u64,
}

#[derive(Deserialize)]
struct Statement {
    sql: String,
    mode: String,
    #[serde(default)]
    params: Vec<Json>,
}

struct Probe;

impl Procedure for Probe {
    type Input = Input;
    type Output = Json;

    fn run(input: Input) -> Result<Json, Failure> {
        let mut n: u64 = 0;
        while n < input.busy_iterations {
            n = std::hint::black_box(n + 1);
        }
        let mut results = Vec::new();
        for statement in &input.statements {
            let params: Vec<Value> = statement.params.iter().map(to_value).collect();
            let result = match statement.mode.as_str() {
                "query" => db::query(&statement.sql, &params).map(|rows| {
                    json!({
                        "columns": rows.columns().iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                        "rows": rows.iter().map(|r| r.values().iter().map(typed).collect::<Vec<_>>()).collect::<Vec<_>>(),
                    })
                }),
                _ => db::execute(&statement.sql, &params).map(|n| json!({ "affected": n })),
            };
            results.push(result.unwrap_or_else(
                |e: CallError| json!({ "error": { "kind": e.code(), "message": e.message() } }),
            ));
        }
        if input.spin_on_attempt == Some(input.attempt) {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if input.fail_on_attempts.contains(&input.attempt) {
            return Err(Failure::new(
                "requested",
                format!("the test asked attempt {} to fail", input.attempt),
            ));
        }
        if input.fail_after {
            return Err(Failure::new(
                "requested",
                "the test asked this step to fail after its statements",
            ));
        }
        Ok(json!({ "results": results }))
    }
}

fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)), Value::Integer),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// Values with their type, so tests can assert the host's typing.
fn typed(value: &Value) -> Json {
    match value {
        Value::Null => json!(null),
        Value::Boolean(b) => json!({ "boolean": b }),
        Value::Integer(n) => json!({ "integer": n }),
        Value::Float(f) => json!({ "float": f }),
        Value::Text(s) => json!({ "text": s }),
        Value::Bytes(b) => json!({ "bytes": b.len() }),
        Value::Timestamp(t) => json!({ "timestamp": t }),
    }
}

register_plugin!(Probe);
