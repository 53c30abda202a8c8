//! Panics instead of returning a failure: the host must report it as a failed step.

use runbook_sdk::serde_json::Value;
use runbook_sdk::{Failure, Procedure, register_plugin};

struct Panicker;

impl Procedure for Panicker {
    type Input = Value;
    type Output = Value;

    fn run(input: Value) -> Result<Value, Failure> {
        if std::hint::black_box(input.is_object() || !input.is_object()) {
            panic!("the ledger does not balance");
        }
        Ok(input)
    }
}

register_plugin!(Panicker);
