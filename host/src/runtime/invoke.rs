//! Calling a plugin's `run` export under the step's limits, and turning every way it can
//! end (output, business failure, trap, limit) into a [`PluginOutcome`].

use std::time::Duration;

use wasmtime::{Store, Trap};

use super::limits::StepLimits;
use super::plugin::LoadedPlugin;
use super::store::StepState;
use super::{Runtime, engine::EPOCH_TICK};

/// How a plugin call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginOutcome {
    /// The plugin returned its output (JSON text).
    Returned(String),
    /// The plugin reported a business failure through its WIT result.
    Failed { code: String, message: String },
    /// The engine stopped the plugin.
    Fault(Fault),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    #[error("ran out of fuel (limit {limit} units): stopped as a runaway loop")]
    OutOfFuel { limit: u64 },
    #[error("exceeded its time limit of {limit_ms} ms")]
    Timeout { limit_ms: u128 },
    #[error("exceeded its memory limit of {limit_mib} MiB (asked for {requested_mib} MiB)")]
    Memory {
        limit_mib: usize,
        requested_mib: usize,
    },
    #[error("panicked: {message}")]
    Panic { message: String },
    #[error("trapped: {message}")]
    Trap { message: String },
    #[error("could not be instantiated: {message}")]
    Instantiate { message: String },
}

/// How long past the step's timeout a host call may take to end itself before the
/// runtime drops it. Host calls bound themselves by the step's deadline (the database
/// stops a statement at it: a cancel request and the statement's return, a second each
/// at most); the grace lets them finish and record why, so the drop is a last resort.
/// Whatever a dropped call held must not be waited on afterwards (see
/// `target::StepTransaction`).
const HOST_CALL_GRACE: Duration = Duration::from_secs(3);

impl Runtime {
    /// Runs one step's plugin in a fresh store. The state comes back so the caller can
    /// commit or roll back its transaction and persist what it recorded.
    pub async fn invoke(
        &self,
        plugin: &LoadedPlugin,
        state: StepState,
        input: &str,
        limits: StepLimits,
    ) -> (PluginOutcome, StepState) {
        let mut store = Store::new(&self.engine, state);
        if let Err(fault) = apply_limits(&mut store, &limits) {
            return (PluginOutcome::Fault(fault), store.into_data());
        }

        let call = async {
            let procedure = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (true, e))?;
            procedure
                .call_run(&mut store, input)
                .await
                .map_err(|e| (false, e))
        };
        // The epoch deadline stops guest code; this backstop also covers a host call
        // that blocks past the step's timeout.
        let backstop = limits.timeout + HOST_CALL_GRACE;
        let result = tokio::time::timeout(backstop, call).await;
        let outcome = match result {
            Err(_elapsed) => PluginOutcome::Fault(Fault::Timeout {
                limit_ms: limits.timeout.as_millis(),
            }),
            Ok(Ok(Ok(output))) => PluginOutcome::Returned(output),
            Ok(Ok(Err(failure))) => PluginOutcome::Failed {
                code: failure.code,
                message: failure.message,
            },
            Ok(Err((instantiating, error))) => {
                PluginOutcome::Fault(classify(&error, instantiating, &limits, store.data()))
            }
        };
        (outcome, store.into_data())
    }
}

impl Runtime {
    /// Instantiates `plugin` in a fresh store, as every step does before the plugin's own
    /// code runs, and drops it without calling `run`. For benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_only(
        &self,
        plugin: &LoadedPlugin,
        state: StepState,
        limits: StepLimits,
    ) -> Result<(), Fault> {
        let mut store = Store::new(&self.engine, state);
        apply_limits(&mut store, &limits)?;
        plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(|e| Fault::Instantiate {
                message: format!("{e:#}"),
            })
    }
}

/// The step's memory cap, fuel and epoch deadline. All must be in place before
/// instantiation: start-up code runs under them too.
fn apply_limits(store: &mut Store<StepState>, limits: &StepLimits) -> Result<(), Fault> {
    store.limiter(|s| &mut s.memory);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| Fault::Instantiate {
            message: format!("{e:#}"),
        })?;
    let ticks = (limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    Ok(())
}

fn classify(
    error: &wasmtime::Error,
    instantiating: bool,
    limits: &StepLimits,
    state: &StepState,
) -> Fault {
    if let Some(requested) = state.memory.refused {
        return Fault::Memory {
            limit_mib: limits.memory_bytes >> 20,
            requested_mib: requested.div_ceil(1 << 20),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Fault::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => Fault::Timeout {
            limit_ms: limits.timeout.as_millis(),
        },
        Some(Trap::UnreachableCodeReached) if !state.stderr().is_empty() => Fault::Panic {
            message: panic_message(&state.stderr()),
        },
        _ if instantiating => Fault::Instantiate {
            message: format!("{error:#}"),
        },
        _ => Fault::Trap {
            message: format!("{error:#}"),
        },
    }
}

/// Rust's panic output is `thread '<unnamed>' panicked at src/lib.rs:3:5:\nmessage`;
/// keep the location and message, drop the backtrace hint.
fn panic_message(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join(" ")
}
