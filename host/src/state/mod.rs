//! The state store: runs, steps, the call journal and the hash-chained audit log, kept in
//! SQLite or PostgreSQL through one `Any` code path.
//!
//! [`store`] opens it, [`runs`] and [`steps`] hold the rows, [`boundary`] commits a step
//! boundary (the unit of durability), [`audit`] keeps the chain, [`codec`] reads and writes
//! columns. Every column is TEXT or BIGINT (see `migrations/state/0001_initial.sql`), so
//! the same SQL and the same decoding serve both backends.

mod abandon;
mod audit;
mod boundary;
mod codec;
mod control;
mod journal;
mod runs;
mod spool;
mod steps;
mod store;
#[cfg(test)]
pub(crate) mod testutil;
mod undo;

pub use audit::{AuditEntry, AuditVerification, GENESIS_HASH, NewAuditEntry};
pub use boundary::{RunEnd, StepFinish};
pub use control::{
    ApprovalDecision, ApprovalRecord, ApprovalRequest, Decision, Lease, RollbackRecord, RunState,
};
pub use journal::{CallDecision, CallRecord};
pub use runs::{MIN_RUN_ID_PREFIX, NewRun, RunDetail, RunFilter, RunRecord, RunStatus, RunSummary};
pub use spool::{AuditSpool, SpoolError};
pub use steps::{LogLine, StepOutcome, StepRecord, StepStart, StepStatus};
pub use store::{Backend, StateStore};
pub use undo::RollbackEnd;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("unsupported state store URL: {0}")]
    UnsupportedUrl(String),
    #[error("cannot create directory {path} for the state store: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state store {} does not exist (`runbook db init` creates it; or add `?mode=rwc` to the [state] url to create it on first use)",
        .0.display()
    )]
    Missing(std::path::PathBuf),
    #[error("SQLite did not switch to WAL journal mode (journal_mode is {0:?})")]
    WalUnavailable(String),
    #[error("state store database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("state store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("run {0} already exists")]
    RunExists(String),
    #[error(
        "run {run_id} of this runbook with the same concurrency key {key:?} is not finished yet"
    )]
    ConcurrentRun { run_id: String, key: String },
    #[error(
        "run {run_id} is being executed by {owner} (lease until {until}); it cannot be taken over"
    )]
    RunHeld {
        run_id: String,
        owner: String,
        until: String,
    },
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run {run_id} is no longer held by this process (its lease was lost)")]
    LeaseLost { run_id: String },
    #[error("run {run_id} is already {status}")]
    RunNotRunning { run_id: String, status: RunStatus },
    #[error(
        "no run {prefix:?}, and a prefix that short is not looked up: give at least {min} characters of the run id (or `last`, `last:<runbook>`)"
    )]
    RunIdTooShort { prefix: String, min: usize },
    #[error("run id prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousRunId {
        prefix: String,
        /// Some of the matching ids (at most ten), sorted.
        candidates: Vec<String>,
    },
    #[error("step {index} of run {run_id} already exists")]
    StepExists { run_id: String, index: i64 },
    #[error("step {index} of run {run_id} not found")]
    StepNotFound { run_id: String, index: i64 },
    #[error("step {index} of run {run_id} is already {status}")]
    StepNotRunning {
        run_id: String,
        index: i64,
        status: StepStatus,
    },
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: &'static str, reason: String },
    #[error("invalid {kind} status {value:?}")]
    InvalidStatus { kind: &'static str, value: String },
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("corrupt state store data at {location}: {reason}")]
    Corrupt { location: String, reason: String },
}
