//! What can stop a run from starting or going on, and what each means for the caller.

use crate::capability::{ImpliedError, ImpliedNeed, Interface};
use crate::runtime::RuntimeError;
use crate::state::StateError;
use crate::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("invalid parameters:\n  {}", .0.join("\n  "))]
    Params(Vec<String>),
    #[error("step `{step}`: plugin `{plugin}` is not installed (looked in the plugin folders)")]
    MissingPlugin { step: String, plugin: String },
    #[error(transparent)]
    Load(#[from] RuntimeError),
    #[error(
        "step `{step}`: plugin `{plugin}` imports the `{}` interface, which the step does not grant; refused before running anything",
        .interfaces.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("`, `")
    )]
    Refused {
        step: String,
        plugin: String,
        interfaces: Vec<Interface>,
    },
    #[error(
        "step `{step}`: plugin `{plugin}` is sha256:{actual}, but runbook.lock {}; refused before running anything (review the plugin, then `runbook plugins lock`)",
        lock_entry(.locked)
    )]
    NotLocked {
        step: String,
        plugin: String,
        /// `None`: a lockfile exists but does not name the plugin.
        locked: Option<String>,
        actual: String,
    },
    #[error(
        "step `{step}`: its `db` grant does not cover what the target database would do on its own (refused before running anything): {}",
        .needs.iter().map(|n| format!("{} also needs {} ({}); add {}", n.source, n.need, n.reason, n.help())).collect::<Vec<_>>().join("; ")
    )]
    ImpliedNotGranted {
        step: String,
        needs: Vec<ImpliedNeed>,
    },
    #[error("target database: {0}")]
    Implied(ImpliedError),
    #[error("state store: {0}")]
    State(StateError),
    #[error("the state store cannot record a new run, so nothing ran: {0}")]
    NotRecorded(StateError),
    #[error("target database: {0}")]
    Target(#[from] TargetError),
    #[error(
        "runbook `{runbook}` is already running with concurrency key {key:?}: run {run_id} (resume it, or roll it back, before starting another)"
    )]
    Concurrent {
        runbook: String,
        key: String,
        run_id: String,
    },
    #[error("no run `{0}`")]
    NoSuchRun(String),
    #[error(
        "run {run_id} was started from a different version of runbook `{runbook}`; it can only be continued with the runbook it started with"
    )]
    RunbookChanged { run_id: String, runbook: String },
    #[error("run {run_id} cannot be resumed: {reason}")]
    NotResumable { run_id: String, reason: String },
    #[error(
        "step `{step}` could not make the effects it is granted on this host: {}",
        .reasons.join("; ")
    )]
    ServiceUnavailable { step: String, reasons: Vec<String> },
    #[error("step `{step}`: approver group `{group}` is not defined in runbook.toml (`[groups]`)")]
    UnknownGroup { step: String, group: String },
    #[error("{0}")]
    NotAllowed(String),
    #[error(
        "run {run_id} is held by {owner} until {until} (its step loop, a resume or a rollback is running it); try again once that has finished or its lease has lapsed"
    )]
    Held {
        run_id: String,
        owner: String,
        until: String,
    },
    #[error(
        "run {run_id}: this process lost the run's lease (it stalled longer than the lease, and the run may have been resumed elsewhere); stopped before the next step"
    )]
    LeaseLost { run_id: String },
    #[error("{error}\nrun {run_id} was ended as failed with this reason")]
    RunEndedAfter {
        run_id: String,
        error: Box<ExecError>,
    },
    #[error(
        "{error}\nrun {run_id} could not be ended as failed either ({end_error}); {}",
        if *.lease_released {
            "its lease was released, so it shows as interrupted"
        } else {
            "it shows as interrupted once its lease lapses"
        }
    )]
    RunAbandoned {
        run_id: String,
        error: Box<ExecError>,
        end_error: StateError,
        lease_released: bool,
    },
}

/// What runbook.lock says of a plugin, for [`ExecError::NotLocked`].
fn lock_entry(locked: &Option<String>) -> String {
    match locked {
        Some(locked) => format!("has sha256:{locked}"),
        None => "does not list it".to_string(),
    }
}

impl From<StateError> for ExecError {
    fn from(e: StateError) -> ExecError {
        match e {
            StateError::LeaseLost { run_id } => ExecError::LeaseLost { run_id },
            StateError::RunHeld {
                run_id,
                owner,
                until,
            } => ExecError::Held {
                run_id,
                owner,
                until,
            },
            other => ExecError::State(other),
        }
    }
}

/// What an error means for the person who asked: the CLI's exit code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself was wrong (parameters, plugins, grants, which run): nothing ran.
    InvalidInput,
    /// The request was fine; the state store, the target database or this process's
    /// hold on the run failed (a run that had started then ends as failed, or shows
    /// as interrupted).
    Failed,
}

impl ExecError {
    /// Every variant is classified here, so a new one must be given a kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecError::Params(_)
            | ExecError::MissingPlugin { .. }
            | ExecError::Load(_)
            | ExecError::Refused { .. }
            | ExecError::NotLocked { .. }
            | ExecError::ImpliedNotGranted { .. }
            | ExecError::Concurrent { .. }
            | ExecError::NoSuchRun(_)
            | ExecError::RunbookChanged { .. }
            | ExecError::NotResumable { .. }
            | ExecError::UnknownGroup { .. }
            | ExecError::ServiceUnavailable { .. }
            | ExecError::NotRecorded(_)
            | ExecError::NotAllowed(_)
            | ExecError::Held { .. } => ErrorKind::InvalidInput,
            ExecError::State(_)
            | ExecError::Target(_)
            | ExecError::Implied(_)
            | ExecError::LeaseLost { .. }
            | ExecError::RunEndedAfter { .. }
            | ExecError::RunAbandoned { .. } => ErrorKind::Failed,
        }
    }

    /// Whether the error means nothing ran because the request itself was wrong.
    pub fn is_invalid_input(&self) -> bool {
        self.kind() == ErrorKind::InvalidInput
    }
}
