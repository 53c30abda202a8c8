//! Makes the Stripe calls and sends the emails its input lists, in order, and reports
//! each outcome as data; then, on the attempt the test names, panics, so tests can check
//! what a re-run repeats and what it answers from the call journal.

use runbook_sdk::serde_json::{Value as Json, json};
use runbook_sdk::{CallError, Failure, Procedure, email, register_plugin, stripe};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    calls: Vec<Call>,
    /// The step's attempt number (`{{ run.attempt }}`).
    #[serde(default)]
    attempt: u32,
    /// Panic after all calls when `attempt` equals this.
    #[serde(default)]
    panic_on_attempt: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Call {
    Stripe {
        stripe: String,
        #[serde(default)]
        params: Json,
    },
    Email {
        email: Vec<String>,
        template: String,
        #[serde(default)]
        context: Json,
    },
}

struct Effector;

impl Procedure for Effector {
    type Input = Input;
    type Output = Json;

    fn run(input: Input) -> Result<Json, Failure> {
        let mut results = Vec::new();
        for call in &input.calls {
            let result = match call {
                Call::Stripe { stripe: op, params } => {
                    let params = if params.is_null() {
                        json!({})
                    } else {
                        params.clone()
                    };
                    stripe::call(op, &params)
                }
                Call::Email {
                    email: to,
                    template,
                    context,
                } => {
                    let to: Vec<&str> = to.iter().map(String::as_str).collect();
                    email::send(&to, template, context).map(|id| json!({ "message_id": id }))
                }
            };
            results.push(result.map_or_else(
                |e: CallError| json!({ "error": { "kind": e.code(), "message": e.message() } }),
                |ok| json!({ "ok": ok }),
            ));
        }
        if input.panic_on_attempt == Some(input.attempt) {
            panic!(
                "fault injected after {} call(s) on attempt {}",
                results.len(),
                input.attempt
            );
        }
        Ok(json!({ "results": results, "attempt": input.attempt }))
    }
}

register_plugin!(Effector);
