//! Writes as much as the host lets it, each call within the host's per-call limits:
//! log lines (large messages and many fields, or millions of short ones), lines on
//! stdout, audit entries (very many, or with huge details), and optionally a failure
//! whose message the state store may refuse. The host's per-step volume caps must keep
//! its memory flat and the run's outcome recordable.

use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{Failure, Procedure, audit, log, register_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Log lines to write.
    #[serde(default)]
    log_lines: u64,
    /// Bytes of each log line's message (the host keeps 8 KiB of one).
    #[serde(default)]
    message_bytes: usize,
    /// Fields per log line (the host keeps 64), each value `field_bytes` long.
    #[serde(default)]
    fields: usize,
    #[serde(default)]
    field_bytes: usize,
    /// Lines printed on stdout.
    #[serde(default)]
    stdout_lines: u64,
    /// Audit entries to write, each with a detail of `detail_bytes`.
    #[serde(default)]
    audit_entries: u64,
    #[serde(default)]
    detail_bytes: usize,
    /// Fail the step with this message instead of returning.
    #[serde(default)]
    fail_with: Option<String>,
}

struct Chatter;

impl Procedure for Chatter {
    type Input = Input;
    type Output = Value;

    fn run(input: Input) -> Result<Value, Failure> {
        for i in 0..input.stdout_lines {
            println!("stdout line {i}");
        }
        let message = "m".repeat(input.message_bytes);
        let value = "v".repeat(input.field_bytes);
        let names: Vec<String> = (0..input.fields).map(|f| format!("field{f}")).collect();
        let fields: Vec<(&str, &dyn std::fmt::Display)> = names
            .iter()
            .map(|n| (n.as_str(), &value as &dyn std::fmt::Display))
            .collect();
        for i in 0..input.log_lines {
            if input.message_bytes == 0 {
                log::log_with(log::Level::Info, format!("line {i}"), &fields);
            } else {
                log::log_with(log::Level::Info, &message, &fields);
            }
        }
        let detail = "d".repeat(input.detail_bytes);
        for i in 0..input.audit_entries {
            audit::record("chatter.said", &format!("entry:{i}"), &detail);
        }
        if let Some(message) = input.fail_with {
            return Err(Failure::new("chatter", message));
        }
        Ok(json!({ "log_lines": input.log_lines, "audit_entries": input.audit_entries }))
    }
}

register_plugin!(Chatter);
