//! `runbook:plugin/log`: structured log lines into the step's log and `tracing`.

use super::truncate;
use crate::runtime::StepState;
use crate::runtime::log_bindings::{self, Level};
use crate::state::LogLine;

impl log_bindings::Host for StepState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let message = truncate(&message, 8 * 1024);
        let (name, plugin, step) = (
            level_name(level),
            &self.context.plugin,
            &self.context.step_id,
        );
        match level {
            Level::Trace => tracing::trace!(target: "runbook::plugin", %plugin, %step, "{message}"),
            Level::Debug => tracing::debug!(target: "runbook::plugin", %plugin, %step, "{message}"),
            Level::Info => tracing::info!(target: "runbook::plugin", %plugin, %step, "{message}"),
            Level::Warn => tracing::warn!(target: "runbook::plugin", %plugin, %step, "{message}"),
            Level::Error => tracing::error!(target: "runbook::plugin", %plugin, %step, "{message}"),
        }
        self.push_log(LogLine {
            at: chrono::Utc::now(),
            level: name.to_string(),
            stream: "log".into(),
            message,
            fields: fields
                .into_iter()
                .take(64)
                .map(|(k, v)| (truncate(&k, 100), truncate(&v, 2048)))
                .collect(),
        });
        Ok(())
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}
