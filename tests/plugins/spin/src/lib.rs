//! Never returns and never calls the host: only fuel or the epoch deadline can stop it.

use runbook_sdk::serde_json::Value;
use runbook_sdk::{Failure, Procedure, register_plugin};

struct Spin;

impl Procedure for Spin {
    type Input = Value;
    type Output = Value;

    fn run(_input: Value) -> Result<Value, Failure> {
        let mut counter: u64 = 0;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

register_plugin!(Spin);
