//! Benchmark plugin: makes one kind of host call (`db` select of one row, `audit` record,
//! `log` line, or nothing) `n` times, so the micro-benchmarks can divide one step's time
//! by the number of boundary crossings (`host/benches/micro.rs`).

use runbook_sdk::{Failure, Procedure, audit, db, log, params, register_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// `select`, `audit`, `log` or `none`.
    call: String,
    n: u64,
}

/// The select the benchmark also runs directly with sqlx.
const SELECT_ONE: &str = "SELECT id, name FROM organizations WHERE id = $1";

struct Caller;

impl Procedure for Caller {
    type Input = Input;
    type Output = u64;

    fn run(input: Input) -> Result<u64, Failure> {
        let mut rows = 0;
        for i in 0..input.n {
            match input.call.as_str() {
                "select" => rows += db::query(SELECT_ONE, params![1i64])?.len() as u64,
                "audit" => audit::record("bench.call", "bench:1", "{}"),
                "log" => log::info(format!("call {i}")),
                "none" => {}
                other => {
                    return Err(Failure::new(
                        "invalid-input",
                        format!("unknown call {other:?}"),
                    ));
                }
            }
        }
        Ok(rows)
    }
}

register_plugin!(Caller);
