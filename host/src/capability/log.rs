//! `runbook:plugin/log`: structured log lines into the step's log and `tracing`.

use wasmtime::component::Linker;

use super::calls::CallSession;
use super::{CallsView, Capability, Grants, HasCapabilities, truncate};
use crate::contract::log::{self, Level};
use crate::state::LogLine;

/// Always granted, like `audit`.
pub struct Log;

impl Capability for Log {
    fn interface(&self) -> &'static str {
        "log"
    }

    fn granted(&self, _: &Grants) -> bool {
        true
    }

    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        log::add_to_linker::<T, CallsView>(linker, |t| &mut t.capabilities().calls)
    }
}

impl log::Host for CallSession {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let message = truncate(&message, 8 * 1024);
        // Once the step's log is full, lines are only counted: a plugin that keeps
        // logging must not flood the host's own output either.
        if !self.recording.log.is_full() {
            let (plugin, step) = (&self.context.plugin, &self.context.step_id);
            match level {
                Level::Trace => {
                    tracing::trace!(target: "runbook::plugin", %plugin, %step, "{message}")
                }
                Level::Debug => {
                    tracing::debug!(target: "runbook::plugin", %plugin, %step, "{message}")
                }
                Level::Info => {
                    tracing::info!(target: "runbook::plugin", %plugin, %step, "{message}")
                }
                Level::Warn => {
                    tracing::warn!(target: "runbook::plugin", %plugin, %step, "{message}")
                }
                Level::Error => {
                    tracing::error!(target: "runbook::plugin", %plugin, %step, "{message}")
                }
            }
        }
        let name = level_name(level);
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
