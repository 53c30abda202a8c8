//! A memory bomb: keeps allocating 8 MiB blocks and touching them.

use runbook_sdk::serde_json::Value;
use runbook_sdk::{Failure, Procedure, register_plugin};

struct Hog;

impl Procedure for Hog {
    type Input = Value;
    type Output = Value;

    fn run(_input: Value) -> Result<Value, Failure> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(vec![1u8; 8 << 20]);
            std::hint::black_box(&blocks);
        }
    }
}

register_plugin!(Hog);
