//! Tries to make the host buffer far more than the plugin's own memory: an endless
//! result of small rows, an endless result of large rows, a statement of tens of MB and a
//! parameter of tens of MB. The host must refuse each call, not buffer it.

use runbook_sdk::serde_json::{Value as Json, json};
use runbook_sdk::{Failure, Procedure, Value, db, register_plugin};
use serde::Deserialize;

/// Rows without end, touching no table; `{pad}` is an expression for each row's payload.
fn endless(pad: &str) -> String {
    format!(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n, {pad} AS pad FROM r"
    )
}

#[derive(Deserialize)]
struct Input {
    /// `rows`, `bytes`, `statement` or `param`.
    mode: String,
    /// Size of the giant statement or parameter, in MiB.
    #[serde(default = "default_mib")]
    mib: usize,
}

fn default_mib() -> usize {
    24
}

struct Bloat;

impl Procedure for Bloat {
    type Input = Input;
    type Output = Json;

    fn run(input: Input) -> Result<Json, Failure> {
        let dialect = db::dialect();
        let size = input.mib << 20;
        let result = match input.mode.as_str() {
            // Tiny rows: only a cap on the row count stops it.
            "rows" => db::query(&endless("1"), &[]),
            // 64 KiB per row: the cap on result bytes stops it long before the row cap.
            "bytes" => {
                let pad = dialect.pick("repeat('x', 65536)", "hex(zeroblob(32768))");
                db::query(&endless(pad), &[])
            }
            "statement" => {
                let mut sql = String::with_capacity(size + 64);
                sql.push_str("SELECT '");
                sql.extend(std::iter::repeat_n('x', size));
                sql.push_str("' AS pad");
                db::query(&sql, &[])
            }
            "param" => {
                let text = "x".repeat(size);
                db::query("SELECT length($1) AS n", &[Value::Text(text)])
            }
            other => return Err(Failure::new("input", format!("unknown mode {other:?}"))),
        };
        // A refused call is what the test expects; the plugin reports it and fails, so the
        // run's outcome says the step did not get its data.
        match result {
            Ok(rows) => Err(Failure::new(
                "returned",
                format!("the host returned {} rows", rows.len()),
            )),
            Err(e) => Err(Failure::new(
                "refused",
                json!({ "kind": e.code(), "message": e.message() }).to_string(),
            )),
        }
    }
}

register_plugin!(Bloat);
